"""`tessera identity plan` on planted people whose merges and splits under a change are known:
a var change, a blocklist file and an override file, together."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.identity.plan import PLAN_SCHEMA, PlanError, format_plan, plan_identity
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import People
from tests.dbt.raw_rows import BUILD_IDENTITY

pytestmark = pytest.mark.integration


def planted() -> People:
    people = People()
    # A couple sharing an address, each with a login: two customers under the limit of one
    # login per customer; one customer when the limit is raised to two.
    people.identify("ana", "anon-ana", "user-ana", "home@family.io")
    people.identify("ana", "anon-ana", "user-ana", None, "+14155550111")
    people.identify("ben", "anon-ben", "user-ben", "home@family.io")
    # Neighbours on one landline: one customer; two when the landline is blocklisted.
    people.identify("eva", "anon-eva", None, "eva@mail.io", "+14155550177")
    people.identify("eva", "anon-eva", None, "eva@mail.io")
    people.identify("max", "anon-max", None, "max@mail.io", "+14155550177")
    # One person with two logins: two customers; one when an override links them.
    people.identify("ida", "anon-ida-1", "user-ida-old", "ida@old-mail.io")
    people.identify("ida", "anon-ida-2", "user-ida-new", "ida@new-mail.io")
    # Nobody else changes.
    people.identify("zoe", "anon-zoe", "user-zoe", "zoe@mail.io", "+14155550199")
    return people


def _customers(warehouse: Warehouse, schema: str) -> dict[str, str]:
    return dict(
        warehouse.query(f"select identifier_value, customer_id from {schema}.identity_customer_map")
    )


def test_the_plan_lists_exactly_the_merges_and_splits_a_change_causes(
    empty_warehouse: Warehouse, tmp_path: Path
) -> None:
    planted().write(empty_warehouse)
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    live = _customers(empty_warehouse, "identity")
    registry_rows = empty_warehouse.query(
        "select count(*) from identity.identity_customer_registry"
    )

    blocklist = tmp_path / "blocklist.csv"
    blocklist.write_text(
        "identifier_type,identifier_value,reason\nphone,+14155550177,the building's landline\n"
    )
    overrides = tmp_path / "overrides.csv"
    overrides.write_text(
        "action,identifier_type,identifier_value,other_identifier_type,other_identifier_value,"
        "created_by,reason\n"
        "always_link,user_id,user-ida-old,user_id,user-ida-new,kim,same person\n"
    )
    plan = plan_identity(
        empty_warehouse,
        {"tessera_identity_limits": {"user_id": 2, "email": 10, "phone": 10}},
        blocklist=blocklist,
        overrides=overrides,
    )

    assert {(frozenset(c.before), c.identifiers) for c in plan.merges} == {
        (frozenset({live["user-ana"], live["user-ben"]}), 6),
        (frozenset({live["user-ida-old"], live["user-ida-new"]}), 6),
    }
    # A merge keeps the oldest id; ana's and ben's were given in the same run: the smaller.
    candidate = _customers(empty_warehouse, PLAN_SCHEMA)
    assert candidate["user-ben"] == candidate["user-ana"] == min(live["user-ana"], live["user-ben"])
    assert candidate["user-ida-new"] == candidate["user-ida-old"]
    assert [(c.before, len(c.after), c.identifiers) for c in plan.splits] == [
        ((live["eva@mail.io"],), 2, 2),
    ]
    assert candidate["eva@mail.io"] == live["eva@mail.io"]
    assert candidate["max@mail.io"] != live["max@mail.io"]
    assert plan.stop_linking == [("phone", "+14155550177", "blocklist: the building's landline")]
    assert plan.start_linking == []
    assert (plan.customers_before, plan.customers_after) == (6, 5)
    assert live["user-zoe"] not in plan.affected_customers
    assert candidate["user-zoe"] == live["user-zoe"]

    text = format_plan(plan)
    assert "merges: 2 (customers merged into one)" in text
    assert "splits: 1 (customers split into several)" in text
    assert f"{live['eva@mail.io']} -> " in text

    # Nothing live moved: the map, the registry and the blocked identifiers are as they were.
    assert _customers(empty_warehouse, "identity") == live
    assert (
        empty_warehouse.query("select count(*) from identity.identity_customer_registry")
        == registry_rows
    )
    assert empty_warehouse.query("select count(*) from identity.identity_blocked_identifiers") == [
        (0,)
    ]
    # The same build with no change plans nothing.
    unchanged = plan_identity(empty_warehouse)
    assert (unchanged.merges, unchanged.splits, unchanged.stop_linking) == ([], [], [])


def test_a_plan_file_with_the_wrong_columns_is_refused_before_anything_is_built(
    empty_warehouse: Warehouse, tmp_path: Path
) -> None:
    bad = tmp_path / "blocklist.csv"
    bad.write_text("type,value\nphone,+14155550177\n")
    with pytest.raises(
        PlanError, match="the header must be identifier_type,identifier_value,reason"
    ):
        plan_identity(empty_warehouse, blocklist=bad)
    assert not empty_warehouse.relation_exists(PLAN_SCHEMA, "identity_customer_map")
    # A warehouse with no identity build yet is told so.
    with pytest.raises(PlanError, match="has no identity models yet: run `tessera run` first"):
        plan_identity(empty_warehouse)
