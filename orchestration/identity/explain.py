"""Why an identifier belongs to its customer: the identifiers, links and evidence rows.

Reads the identity models the dbt build wrote (schema ``identity``); used by ``tessera explain``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from orchestration.identity import IDENTIFIER_TYPES
from orchestration.warehouse import Warehouse

# A phone typed by hand ("(415) 555-0100") still finds the stored E.164 value by its digits.
_MIN_PHONE_DIGITS = 7


class ExplainError(LookupError):
    """The identifier is not in the identity graph; the message says what was searched."""


@dataclass
class Explanation:
    identifier_type: str
    identifier_value: str
    customer_id: str | None
    blocked_reason: str | None = None
    identifiers: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    cut_links: list[tuple[Any, ...]] = field(default_factory=list)
    overrides: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)


def _candidates(warehouse: Warehouse, text: str) -> list[tuple[str, str]]:
    """Identifiers matching what the user typed: ``type:value`` or a bare value."""
    wanted_type, _, value = text.partition(":")
    if wanted_type not in IDENTIFIER_TYPES or not value:
        wanted_type, value = "", text
    value = value.strip()
    mark = warehouse.placeholder
    sql = (
        "select identifier_type, identifier_value from identity.identity_identifiers "
        f"where lower(identifier_value) = lower({mark})"
    )
    params: list[Any] = [value]
    digits = re.sub(r"\D", "", value)
    if len(digits) >= _MIN_PHONE_DIGITS and re.fullmatch(r"[\d\s()+.\-]+", value):
        sql += f" or (identifier_type = 'phone' and identifier_value like {mark})"
        params.append(f"%{digits}")
    rows = warehouse.query(sql + " order by 1, 2", params)
    return [(t, v) for t, v in rows if not wanted_type or t == wanted_type]


def find_identifier(warehouse: Warehouse, text: str) -> tuple[str, str]:
    """The one identifier of the graph that ``text`` (``type:value`` or a bare value, typed as
    a person would) names, or ExplainError saying what matched."""
    matches = _candidates(warehouse, text)
    if not matches:
        raise ExplainError(f"no identifier matches {text!r} (try type:value, e.g. email:a@b.com)")
    if len(matches) > 1:
        listed = ", ".join(f"{t}:{v}" for t, v in matches)
        raise ExplainError(
            f"{text!r} matches several identifiers: {listed}; name one as type:value"
        )
    return matches[0]


def explain(warehouse: Warehouse, text: str) -> Explanation:
    """The customer behind identifier ``text`` and the evidence that joins its identifiers."""
    if not warehouse.relation_exists("identity", "identity_customer_map"):
        raise ExplainError(
            f"{warehouse.describe()} has no identity models yet: run `tessera run` first"
        )
    return explain_identifier(warehouse, *find_identifier(warehouse, text))


def explain_identifier(
    warehouse: Warehouse, identifier_type: str, identifier_value: str
) -> Explanation:
    """``explain`` for an identifier named exactly, as the graph stores it."""
    mark = warehouse.placeholder
    blocked = warehouse.query(
        "select blocked_reason from identity.identity_blocked_identifiers "
        f"where identifier_type = {mark} and identifier_value = {mark}",
        [identifier_type, identifier_value],
    )
    if blocked:
        return Explanation(identifier_type, identifier_value, None, blocked_reason=blocked[0][0])
    customer = warehouse.query(
        "select customer_id from identity.identity_customer_map "
        f"where identifier_type = {mark} and identifier_value = {mark}",
        [identifier_type, identifier_value],
    )
    customer_id = customer[0][0]
    members = f"""
        select identifier_type, identifier_value from identity.identity_customer_map
        where customer_id = {mark}
    """
    result = Explanation(identifier_type, identifier_value, customer_id)
    result.identifiers = warehouse.query(
        f"""
        select ids.identifier_type, ids.identifier_value, ids.first_seen_at, ids.last_seen_at,
            ids.observation_count, ids.source_count
        from ({members}) as members
        inner join identity.identity_identifiers as ids
            on members.identifier_type = ids.identifier_type
            and members.identifier_value = ids.identifier_value
        order by 1, 2
        """,
        [customer_id],
    )
    # Links whose both ends belong to the customer, and the cut ones with at least one end in it.
    edge_columns = """
        edges.identifier_type_a, edges.identifier_value_a, edges.identifier_type_b,
        edges.identifier_value_b, edges.first_source_table, edges.first_source_row_id,
        edges.first_observed_at, edges.evidence_count
    """
    result.links = warehouse.query(
        f"""
        select {edge_columns}
        from identity.identity_edges as edges
        inner join ({members}) as side_a
            on edges.identifier_type_a = side_a.identifier_type
            and edges.identifier_value_a = side_a.identifier_value
        inner join ({members}) as side_b
            on edges.identifier_type_b = side_b.identifier_type
            and edges.identifier_value_b = side_b.identifier_value
        order by edges.first_observed_at, 1, 2, 3, 4
        """,
        [customer_id, customer_id],
    )
    result.cut_links = warehouse.query(
        f"""
        select violations.identifier_type_a, violations.identifier_value_a,
            violations.identifier_type_b, violations.identifier_value_b, violations.reason,
            violations.first_source_table, violations.first_source_row_id
        from identity.identity_violations as violations
        where exists (
            select 1 from ({members}) as members
            where (members.identifier_type = violations.identifier_type_a
                and members.identifier_value = violations.identifier_value_a)
            or (members.identifier_type = violations.identifier_type_b
                and members.identifier_value = violations.identifier_value_b)
        )
        order by 1, 2, 3, 4
        """,
        [customer_id],
    )
    if warehouse.relation_exists("identity", "identity_override_requests"):
        result.overrides = warehouse.query(
            f"""
            select overrides.action, overrides.identifier_type, overrides.identifier_value,
                overrides.other_identifier_type, overrides.other_identifier_value,
                overrides.created_by, overrides.reason
            from identity.identity_override_requests as overrides
            where overrides.refused_reason is null
                and overrides.action <> 'ignore'
                and exists (
                    select 1 from ({members}) as members
                    where (members.identifier_type = overrides.identifier_type
                        and members.identifier_value = overrides.identifier_value)
                    or (members.identifier_type = overrides.other_identifier_type
                        and members.identifier_value = overrides.other_identifier_value)
                )
            order by 1, 2, 3, 4, 5
            """,
            [customer_id],
        )
    result.history = warehouse.query(
        f"""
        select logged_at, event_type, customer_id, previous_customer_id, identifiers_moved
        from identity.identity_merge_log
        where customer_id = {mark} or previous_customer_id = {mark}
        order by logged_at
        """,
        [customer_id, customer_id],
    )
    return result


def _when(value: Any) -> str:
    return "-" if value is None else str(value)[:19]


def format_explanation(found: Explanation) -> str:
    """The explanation as the text ``tessera explain`` prints."""
    head = f"{found.identifier_type} {found.identifier_value}"
    if found.blocked_reason is not None:
        return f"{head} is blocked from linking people: {found.blocked_reason}"
    lines = [
        f"{head} belongs to customer {found.customer_id}",
        "",
        f"identifiers ({len(found.identifiers)})",
        f"  {'type':<18}{'value':<40}{'first seen':<21}{'last seen':<21}{'rows':>6}",
    ]
    lines += [
        f"  {t:<18}{v:<40}{_when(first):<21}{_when(last):<21}{rows:>6}"
        for t, v, first, last, rows, _ in found.identifiers
    ]
    lines += ["", f"links ({len(found.links)}): each with the first source row that shows it"]
    lines += [
        f"  {ta}:{va} -- {tb}:{vb}   {table} row {row_id} at {_when(at)}"
        + (f" (+{count - 1} more rows)" if count > 1 else "")
        for ta, va, tb, vb, table, row_id, at, count in found.links
    ]
    if found.cut_links:
        lines += ["", f"links cut by identity limits and overrides ({len(found.cut_links)})"]
        lines += [
            f"  {ta}:{va} -- {tb}:{vb}   {table} row {row_id}: {reason}"
            for ta, va, tb, vb, reason, table, row_id in found.cut_links
        ]
    if found.overrides:
        lines += ["", f"overrides ({len(found.overrides)})"]
        lines += [
            f"  {action} {ta}:{va} -- {tb}:{vb}   by {who}: {why}"
            for action, ta, va, tb, vb, who, why in found.overrides
        ]
    if found.history:
        lines += ["", "history"]
        lines += [
            f"  {_when(at)}  {event:<10} {previous} -> {customer or '(none)'} ({moved} identifiers)"
            for at, event, customer, previous, moved in found.history
        ]
    return "\n".join(lines)
