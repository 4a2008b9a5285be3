"""Fuzzy match suggestions in the warehouse: labelled duplicates loaded as CRM contacts, scored,
auto-applied as always_link overrides, and merged by the next identity run."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.identity.fuzzy import AUTO_APPLY_PROBABILITY, labelled_duplicates
from orchestration.identity.matching import APPLIED_BY, run_matching
from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import People

pytestmark = pytest.mark.integration

BUILD_CUSTOMERS = [
    "build", "--select", "+customers", "+customer_erasures",
    "--exclude-resource-type", "test", "unit_test",
]  # fmt: skip


def test_suggestions_are_written_and_the_sure_ones_merge_on_the_next_run(
    empty_warehouse: Warehouse,
) -> None:
    records, truth = labelled_duplicates(people=600, duplicate_share=0.1, seed=5)
    people = People()
    for row in records.to_pylist():
        people.contact(
            row["customer_id"], row["customer_id"], row["email"], row["phone"],
            row["first_name"] or "", row["last_name"] or "",
        )  # fmt: skip
    people.write(empty_warehouse)
    run_dbt(BUILD_CUSTOMERS, empty_warehouse, quiet=True)
    customer_of = dict(
        empty_warehouse.query(
            "select identifier_value, customer_id from identity.identity_customer_map "
            "where identifier_type = 'crm_contact_id'"
        )
    )
    # The deterministic graph keeps the duplicates apart (they share no exact identifier); a few
    # different people share one by chance and are one customer already.
    assert len(set(customer_of.values())) > 0.97 * records.num_rows
    # (A record staging rejects, such as one whose only email is malformed, is not a customer.)
    assert len(customer_of) > 0.97 * records.num_rows
    true_pairs = {
        tuple(sorted((customer_of[a], customer_of[b])))
        for a, b in truth
        if a in customer_of and b in customer_of and customer_of[a] != customer_of[b]
    }

    config = ProjectConfig.load({"tessera_identity_fuzzy_auto_apply": AUTO_APPLY_PROBABILITY})
    run = run_matching(empty_warehouse, config)
    suggested = empty_warehouse.query(
        "select customer_id_l, customer_id_r, match_probability, auto_applied, comparisons "
        "from identity.identity_match_suggestions"
    )
    assert run.suggestions == len(suggested) > 0
    found = {(left, right) for left, right, *_ in suggested}
    assert len(found & true_pairs) / len(true_pairs) >= 0.9
    applied = {(left, right) for left, right, _, auto, _ in suggested if auto}
    assert run.auto_applied == len(applied) > 0
    assert len(applied & true_pairs) / len(applied) >= 0.98
    assert all(p >= AUTO_APPLY_PROBABILITY for _, _, p, auto, _ in suggested if auto)
    assert all("first_name:" in comparisons for *_, comparisons in suggested)
    written = empty_warehouse.query(
        "select count(*) from identity.identity_tool_overrides "
        f"where action = 'always_link' and created_by = '{APPLIED_BY}'"
    )
    assert written == [(len(applied),)]

    # The next run merges each applied pair: the customers after it are the components of the
    # applied pairs over the customers before.
    parent = {c: c for c in customer_of.values()}

    def root(c: str) -> str:
        while parent[c] != c:
            c = parent[c]
        return c

    for left, right in applied:
        parent[root(left)] = root(right)
    expected = {frozenset(r for r, c in customer_of.items() if root(c) == top)
                for top in {root(c) for c in customer_of.values()}}  # fmt: skip
    run_dbt(BUILD_CUSTOMERS, empty_warehouse, quiet=True)
    after = dict(
        empty_warehouse.query(
            "select identifier_value, customer_id from identity.identity_customer_map "
            "where identifier_type = 'crm_contact_id'"
        )
    )
    found_groups: dict[str, set[str]] = {}
    for record, customer in after.items():
        found_groups.setdefault(customer, set()).add(record)
    assert {frozenset(g) for g in found_groups.values()} == expected
    assert len(expected) < len(set(customer_of.values()))
    # A merged customer's golden record may make a new sure pair; no override is written twice.
    again = run_matching(empty_warehouse, config)
    assert again.auto_applied <= 0.1 * run.auto_applied
    distinct, total = empty_warehouse.query(
        "select count(distinct identifier_value || '|' || other_identifier_value), count(*) "
        "from identity.identity_tool_overrides"
    )[0]
    assert distinct == total == run.auto_applied + again.auto_applied
