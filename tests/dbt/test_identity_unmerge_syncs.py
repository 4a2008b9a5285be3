"""An unmerge reaches the audiences and their mirror destinations: the person a split leaves
without the orders that made them a repeat buyer is removed from the table the sync mirrors."""

from __future__ import annotations

import pytest

from orchestration.activation.engine import run_syncs
from orchestration.dbt_project import run_dbt
from orchestration.identity.overrides import unmerge
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import People
from tests.dbt.raw_rows import replace_rows

pytestmark = pytest.mark.integration

BUILD_AUDIENCE = [
    "build",
    "--select",
    "+audience_repeat_buyers",
    "identity_merge_log",
    "--exclude-resource-type",
    "test",
    "unit_test",
]
SYNC = "repeat_buyers_table"
CONSENT_COLUMNS = ("subject_type", "subject_value", "purpose", "granted", "recorded_at", "source")


def _members(warehouse: Warehouse) -> list[str]:
    return [
        row[0]
        for row in warehouse.query(
            "select customer_id from audiences.audience_repeat_buyers order by 1"
        )
    ]


def _exported(warehouse: Warehouse) -> list[str]:
    return [
        row[0]
        for row in warehouse.query(
            "select customer_id from activation_exports.repeat_buyers order by 1"
        )
    ]


def _sync(warehouse: Warehouse) -> None:
    (result,) = run_syncs(warehouse, names=[SYNC])
    assert result.status == "succeeded", result


def test_an_unmerge_removes_the_split_person_from_a_mirrored_audience(
    empty_warehouse: Warehouse,
) -> None:
    people = People()
    people.identify("lea", "anon-lea", "user-lea", "lea@mail.io", ts="2025-01-01T00:00:00Z")
    people.order("lea", None, "lea@mail.io", None, ts="2025-01-05T00:00:00Z")
    consents = [("email", "lea@mail.io", "advertising", "true", "2025-01-01T00:00:00Z", "form")]
    # Four repeat buyers nothing happens to: the sync's delete guard (at most 20% of the records
    # a destination holds removed per run) lets one removal of five through.
    for n in range(4):
        email = f"regular{n}@mail.io"
        people.order(f"regular-{n}", None, email, None, ts="2025-02-01T00:00:00Z")
        people.order(f"regular-{n}", None, email, None, ts="2025-02-08T00:00:00Z")
        consents.append(("email", email, "advertising", "true", "2025-01-01T00:00:00Z", "form"))
    replace_rows(empty_warehouse, "consents", CONSENT_COLUMNS, consents)
    # Tom orders with his own address and is then seen on Lea's browser: one customer, two
    # orders, Lea's consent: a repeat buyer.
    people.identify("tom", "anon-lea", None, "tom@mail.io", ts="2025-03-01T00:00:00Z")
    people.order("tom", None, "tom@mail.io", None, ts="2025-03-02T00:00:00Z")
    people.write(empty_warehouse)
    run_dbt(BUILD_AUDIENCE, empty_warehouse, quiet=True)
    merged = empty_warehouse.query(
        "select customer_id from identity.identity_customer_map "
        "where identifier_value = 'tom@mail.io'"
    )[0][0]
    members = _members(empty_warehouse)
    assert len(members) == 5
    assert merged in members
    regulars = sorted(set(members) - {merged})
    _sync(empty_warehouse)
    assert _exported(empty_warehouse) == members

    unmerge(empty_warehouse, merged, "tom@mail.io", "kim", "Tom is Lea's flatmate")
    run_dbt(BUILD_AUDIENCE, empty_warehouse, quiet=True)
    # Each of them has one order now: neither is a repeat buyer, and the mirror follows.
    assert _members(empty_warehouse) == regulars
    _sync(empty_warehouse)
    assert _exported(empty_warehouse) == regulars
    assert empty_warehouse.query(
        "select event_type, previous_customer_id from identity.identity_merge_log"
    ) == [("split", merged)]
