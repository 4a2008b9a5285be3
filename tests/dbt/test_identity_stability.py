"""customer_id is stable across runs: unchanged people keep it, a merge keeps the oldest id."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import BUILD_IDENTITY, append_identifies, replace_identifies

pytestmark = pytest.mark.integration

TS = "2025-01-01T00:00:00Z"

PEOPLE = [
    ("r1", "anon-dee", "user-dee", "dee@mail.io", None, TS),
    ("r2", "anon-eli", "user-eli", "eli@mail.io", None, TS),
    ("r3", "anon-fay", None, "fay@mail.io", None, TS),
]
# Fay again, on another browser with her phone: not linked to her yet, so a customer of its own.
FAY_AGAIN = ("r4", "anon-fay-2", None, None, "+14155550100", TS)
# The row that shows both browsers are Fay's.
FAY_LINK = ("r5", "anon-fay-2", None, "fay@mail.io", None, TS)


def _customers(warehouse: Warehouse) -> dict[str, str]:
    return dict(
        warehouse.query("select identifier_value, customer_id from identity.identity_customer_map")
    )


def _log(warehouse: Warehouse) -> list[tuple[str, str, str, int]]:
    return warehouse.query(
        "select event_type, customer_id, previous_customer_id, identifiers_moved "
        "from identity.identity_merge_log order by logged_at"
    )


def test_customer_ids_survive_full_refreshes_merges_and_splits(empty_warehouse: Warehouse) -> None:
    replace_identifies(empty_warehouse, PEOPLE)
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    first = _customers(empty_warehouse)
    assert len(first) == 8 and len(set(first.values())) == 3

    run_dbt([*BUILD_IDENTITY, "--full-refresh"], empty_warehouse, quiet=True)
    assert _customers(empty_warehouse) == first

    append_identifies(empty_warehouse, [FAY_AGAIN])
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    second = _customers(empty_warehouse)
    assert {k: second[k] for k in first} == first
    assert second["anon-fay-2"] == second["+14155550100"] not in set(first.values())

    # The link merges Fay's two customers into the older one; nobody else changes.
    append_identifies(empty_warehouse, [FAY_LINK])
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    merged = _customers(empty_warehouse)
    assert merged == {
        **first,
        "anon-fay-2": first["fay@mail.io"],
        "+14155550100": first["fay@mail.io"],
    }
    assert _log(empty_warehouse) == [("merge", first["fay@mail.io"], second["anon-fay-2"], 2)]

    # The linking row is withdrawn: Fay splits again. The part holding the smallest identifier
    # keeps the id; the other gets an id never used before.
    replace_identifies(empty_warehouse, [*PEOPLE, FAY_AGAIN])
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)
    split = _customers(empty_warehouse)
    assert {k: split[k] for k in first} == first
    assert split["anon-fay-2"] == split["+14155550100"]
    assert split["anon-fay-2"] not in {*first.values(), second["anon-fay-2"]}
    assert _log(empty_warehouse)[-1] == ("split", split["anon-fay-2"], first["fay@mail.io"], 2)
