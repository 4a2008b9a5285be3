"""Per-type limits and the identifier cap split customers, and every cut link is logged."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.identity.explain import ExplainError, explain, format_explanation
from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import BUILD_IDENTITY, replace_identifies

pytestmark = pytest.mark.integration

TS = "2025-01-01T00:00:00Z"
LATER = "2025-02-01T00:00:00Z"

# Two people on one family computer: the shared browser (anon-family) saw both log in.
FAMILY_COMPUTER = [
    ("r1", "anon-family", "user-ana", "ana@family.io", None, TS),
    ("r2", "anon-family", "user-ben", "ben@family.io", None, LATER),
    ("r3", "anon-ana-phone", "user-ana", None, None, TS),
    ("r4", "anon-ben-phone", "user-ben", None, None, LATER),
    ("r5", "anon-ben-laptop", "user-ben", None, None, LATER),
]


def _clusters(warehouse: Warehouse) -> set[frozenset[str]]:
    rows = warehouse.query("select cluster_id, identifier_value from identity.identity_map")
    groups: dict[int, set[str]] = {}
    for cluster_id, value in rows:
        groups.setdefault(cluster_id, set()).add(value)
    return {frozenset(group) for group in groups.values()}


def test_two_user_ids_on_one_browser_become_two_customers(empty_warehouse: Warehouse) -> None:
    replace_identifies(empty_warehouse, FAMILY_COMPUTER)
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    # user-ben has more observations (3 vs 2), so he keeps the shared browser; ana leaves with
    # what is nearer to her than to him.
    assert _clusters(empty_warehouse) == {
        frozenset({"user-ben", "ben@family.io", "anon-ben-phone", "anon-ben-laptop",
                   "anon-family"}),
        frozenset({"user-ana", "ana@family.io", "anon-ana-phone"}),
    }  # fmt: skip
    violations = empty_warehouse.query(
        "select identifier_value_a, identifier_value_b, rule, reason "
        "from identity.identity_violations order by 1, 2"
    )
    assert [(a, b, rule) for a, b, rule, _ in violations] == [
        ("anon-family", "ana@family.io", "type_limit"),
        ("anon-family", "user-ana", "type_limit"),
    ]
    assert violations[0][3] == (
        "one customer would hold 2 user_id identifiers (limit 1): "
        "this link ties user_id user-ana to user_id user-ben"
    )


def test_limits_are_read_from_vars(empty_warehouse: Warehouse) -> None:
    replace_identifies(empty_warehouse, FAMILY_COMPUTER)
    run_dbt(
        BUILD_IDENTITY,
        empty_warehouse,
        dbt_vars={"tessera_identity_limits": {"user_id": 2}},
        quiet=True,
    )
    assert len(_clusters(empty_warehouse)) == 1
    assert empty_warehouse.query("select count(*) from identity.identity_violations") == [(0,)]
    # No per-type limits at all is valid configuration too (it used to be a SQL syntax error).
    run_dbt(BUILD_IDENTITY, empty_warehouse, dbt_vars={"tessera_identity_limits": {}}, quiet=True)
    assert len(_clusters(empty_warehouse)) == 1


def test_the_identifier_cap_cuts_the_lowest_priority_identifiers_loose(
    empty_warehouse: Warehouse,
) -> None:
    # One logged-in person seen on 6 browsers: 1 user_id, 1 email, 6 anonymous ids.
    rows = [("r0", None, "user-cy", "cy@family.io", None, TS)]
    rows += [(f"r{i}", f"anon-{i}", "user-cy", None, None, TS) for i in range(1, 7)]
    replace_identifies(empty_warehouse, rows)
    run_dbt(BUILD_IDENTITY, empty_warehouse, dbt_vars={"tessera_max_identifiers_per_customer": 5},
            quiet=True)  # fmt: skip
    clusters = _clusters(empty_warehouse)
    # Kept: user, email and the three best-ranked browsers (equal evidence: by value).
    assert frozenset({"user-cy", "cy@family.io", "anon-1", "anon-2", "anon-3"}) in clusters
    assert {frozenset({"anon-4"}), frozenset({"anon-5"}), frozenset({"anon-6"})} <= clusters
    assert len(clusters) == 4
    rules = empty_warehouse.query(
        "select rule, count(*) from identity.identity_violations group by rule"
    )
    assert rules == [("identifier_cap", 3)]


def test_explain_shows_the_customer_its_links_and_the_links_cut(
    empty_warehouse: Warehouse,
) -> None:
    replace_identifies(empty_warehouse, FAMILY_COMPUTER)
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    found = explain(empty_warehouse, "  ANA@family.io ")
    assert (found.identifier_type, found.identifier_value) == ("email", "ana@family.io")
    assert [row[1] for row in found.identifiers] == ["anon-ana-phone", "ana@family.io", "user-ana"]
    assert [(row[1], row[3], row[4], row[5]) for row in found.links] == [
        ("anon-ana-phone", "user-ana", "identifies", "r3"),
        ("ana@family.io", "user-ana", "identifies", "r1"),
    ]
    assert [(row[1], row[3]) for row in found.cut_links] == [
        ("anon-family", "ana@family.io"),
        ("anon-family", "user-ana"),
    ]
    text = format_explanation(found)
    assert f"belongs to customer {found.customer_id}" in text
    assert "links cut by identity limits and overrides (2)" in text
    with pytest.raises(ExplainError, match=r"no identifier matches 'zed@family\.io'"):
        explain(empty_warehouse, "zed@family.io")
