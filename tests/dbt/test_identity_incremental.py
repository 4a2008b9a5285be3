"""An incremental identity build ends where one full build over the same rows ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import DbtRunError, run_dbt
from orchestration.warehouse import Warehouse
from tests.dbt.raw_rows import BUILD_IDENTITY, append_identifies

pytestmark = pytest.mark.integration

CUSTOMERS = 500
SEED = 23
# Rows whose id ends in one of these digits arrive in a second load (about a fifth of them).
LATE = "('3', '7')"
TABLES = {
    "identifies": "id",
    "tracks": "id",
    "pages": "id",
    "orders": "order_id",
    "crm_contacts": "contact_id",
}
# What happens to rows already loaded, between the two loads: CRM contacts edited in place (one
# moves to a new address, another takes a third contact's address) and identifies deleted at the
# source. Each retracts evidence the first build used.
EDITS = [
    "update raw.crm_contacts set email = 'moved.' || contact_id || '@mail.com', "
    "updated_at = '2031-01-01T00:00:00Z' where contact_id like '%11'",
    "update raw.crm_contacts set email = (select email from raw.crm_contacts "
    "where contact_id = 'crm_500000'), updated_at = '2031-02-01T00:00:00Z' "
    "where contact_id like '%29'",
    "delete from raw.identifies where id like '%05'",
]

# A browser shared by two logged-in people (a family computer) breaks the user_id limit: one
# family in the first load, whose component the late load leaves alone, and one in the late load
# between two people who are in the data already.
USERS = "select distinct user_id from raw.identifies where user_id is not null order by 1 limit 2"


def _family_computer(browser: str, users: list[str]) -> list[tuple[str | None, ...]]:
    return [
        (f"{browser}-{user}", browser, user, None, None, "2026-03-01T10:00:00Z") for user in users
    ]


# Every identifier named by the smallest identifier of its customer: equal partitions give equal
# rows, whatever the customer ids are.
PARTITION = """
    select map.identifier_type, map.identifier_value, named.representative
    from identity.identity_customer_map as map
    inner join (
        select customer_id, min(identifier_type || ':' || identifier_value) as representative
        from identity.identity_customer_map group by customer_id
    ) as named on map.customer_id = named.customer_id
    order by 1, 2
"""
# The same for the unconstrained components: each identifier on an edge, named by the smallest
# identifier of its component.
COMPONENTS = """
    with named_nodes as (
        select components.component_id, ids.identifier_type, ids.identifier_value
        from identity.identity_components as components
        inner join identity.identity_node_ids as ids on components.node_id = ids.node_id
    )
    select named_nodes.identifier_type, named_nodes.identifier_value, named.representative
    from named_nodes
    inner join (
        select component_id, min(identifier_type || ':' || identifier_value) as representative
        from named_nodes group by component_id
    ) as named on named_nodes.component_id = named.component_id
    order by 1, 2
"""
RESOLVED = """
    select
        count(*),
        sum(case when _built_at = (select max(_built_at) from identity.identity_components)
            then 1 else 0 end)
    from identity.identity_components
"""
# The limits' drops, by identifier.
DROPS = """
    select a.identifier_type, a.identifier_value, b.identifier_type, b.identifier_value,
        drops.rule, drops.limited_type, drops.found_count, drops.limit_value
    from identity.identity_limit_drops as drops
    inner join identity.identity_node_ids as a on drops.node_a = a.node_id
    inner join identity.identity_node_ids as b on drops.node_b = b.node_id
    order by 1, 2, 3, 4
"""
VIOLATIONS = """
    select identifier_type_a, identifier_value_a, identifier_type_b, identifier_value_b, rule
    from identity.identity_violations order by 1, 2, 3, 4
"""
# The stored state itself, without the run stamps.
OBSERVATIONS = """
    select source_table, source_row_id, identifier_type, identifier_value, observed_at
    from identity.identity_observations order by 1, 2, 3
"""
EDGES = """
    select identifier_type_a, identifier_value_a, identifier_type_b, identifier_value_b,
        first_source_table, first_source_row_id, first_observed_at, last_observed_at,
        evidence_count
    from identity.identity_edges order by 1, 2, 3, 4
"""


@pytest.fixture(params=["duckdb", "postgres"])
def two_warehouses(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Warehouse, Warehouse]:
    if request.param == "duckdb":
        return (
            Warehouse(target="local", duckdb_path=tmp_path / "whole.duckdb"),
            Warehouse(target="local", duckdb_path=tmp_path / "stepwise.duckdb"),
        )
    server = request.getfixturevalue("postgres_server")
    return (
        Warehouse(target="postgres", postgres=server.create_database("incremental_whole")),
        Warehouse(target="postgres", postgres=server.create_database("incremental_stepwise")),
    )


def test_appending_and_editing_rows_then_rebuilding_equals_one_full_build(
    two_warehouses: tuple[Warehouse, Warehouse],
) -> None:
    whole, stepwise = two_warehouses
    generate_into(whole, CUSTOMERS, SEED)
    early = _family_computer("anon-family-early", ["user-family-1", "user-family-2"])
    late = _family_computer("anon-family-late", [user for (user,) in whole.query(USERS)])
    append_identifies(whole, early + late)
    whole.execute(EDITS)
    run_dbt(BUILD_IDENTITY, whole, quiet=True)

    generate_into(stepwise, CUSTOMERS, SEED)
    append_identifies(stepwise, early)
    held = [
        f"create table raw.late_{table} as select * from raw.{table} "
        f"where right(cast({key} as varchar), 1) in {LATE}"
        for table, key in TABLES.items()
    ] + [
        f"delete from raw.{table} where right(cast({key} as varchar), 1) in {LATE}"
        for table, key in TABLES.items()
    ]
    stepwise.execute(held)
    late_rows = sum(
        stepwise.query(f"select count(*) from raw.late_{table}")[0][0] for table in TABLES
    )
    assert late_rows > 2_000
    run_dbt(BUILD_IDENTITY, stepwise, quiet=True)
    partial = stepwise.query(PARTITION)
    first_load = stepwise.query("select count(*) from identity.identity_observations")[0][0]
    stepwise.execute(
        [f"insert into raw.{table} select * from raw.late_{table}" for table in TABLES] + EDITS
    )
    append_identifies(stepwise, late)
    run_dbt(BUILD_IDENTITY, stepwise, quiet=True)

    expected = whole.query(PARTITION)
    assert partial != expected
    assert stepwise.query(PARTITION) == expected
    assert stepwise.query(COMPONENTS) == whole.query(COMPONENTS)
    # The second run re-solved the components the late rows and edits touched, not all of them,
    # and worked out the limits of those only.
    nodes, resolved = stepwise.query(RESOLVED)[0]
    assert 0 < resolved < nodes
    drops = whole.query(DROPS)
    assert len(drops) == 2
    assert stepwise.query(DROPS) == drops
    # The early family's drop was found by the first run and kept; the late one is new.
    stamps = stepwise.query("select count(distinct _built_at) from identity.identity_limit_drops")
    assert stamps == [(2,)]
    assert stepwise.query(VIOLATIONS) == whole.query(VIOLATIONS)
    assert stepwise.query(OBSERVATIONS) == whole.query(OBSERVATIONS)
    assert stepwise.query(EDGES) == whole.query(EDGES)

    # The second run unpivoted only the rows it had not seen, and withdrew what the edits
    # replaced: the edited contacts' old versions and the deleted identifies.
    second_load = stepwise.query(
        "select count(*) from identity.identity_observations "
        "where loaded_at > (select min(loaded_at) from identity.identity_observations)"
    )[0][0]
    assert 0 < second_load < first_load / 2
    retracted = dict(
        stepwise.query(
            "select source_table, count(distinct source_row_id) "
            "from identity.identity_retracted_observations group by source_table"
        )
    )
    assert retracted["crm_contacts"] > 0
    assert retracted["identifies"] > 0
    assert set(retracted) == {"crm_contacts", "identifies"}
    # The late rows joined customers that existed already: their ids moved, and the log says so.
    merges = stepwise.query(
        "select count(*) from identity.identity_merge_log where event_type = 'merge'"
    )
    assert merges[0][0] > 0


def test_a_run_with_no_new_rows_changes_no_stored_evidence(tmp_path: Path) -> None:
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "t.duckdb")
    generate_into(warehouse, 300, SEED)
    run_dbt(BUILD_IDENTITY, warehouse, quiet=True)
    stamps = "select count(distinct loaded_at) from identity.identity_observations"
    edge_stamps = "select count(distinct updated_at) from identity.identity_edges"
    component_stamps = "select count(distinct _built_at) from identity.identity_components"
    state = [OBSERVATIONS, EDGES, COMPONENTS]
    before = [warehouse.query(sql) for sql in state]
    assert len(before[2]) > 300
    run_dbt(BUILD_IDENTITY, warehouse, quiet=True)
    assert [warehouse.query(sql) for sql in state] == before
    # Nothing was re-derived or re-solved: every row still carries the first run's stamp.
    assert warehouse.query(stamps)[0][0] == 1
    assert warehouse.query(edge_stamps)[0][0] == 1
    assert warehouse.query(component_stamps)[0][0] == 1


def test_a_run_checking_only_crm_contacts_for_edits_matches_a_full_build(tmp_path: Path) -> None:
    # Event tables declared append-only: their keys are not compared, yet appended rows and an
    # edited CRM contact still end where one full build ends.
    only_crm = {"tessera_mutable_sources": ["crm_contacts"]}
    whole = Warehouse(target="local", duckdb_path=tmp_path / "whole.duckdb")
    generate_into(whole, 300, SEED)
    whole.execute(EDITS[:1])
    run_dbt(BUILD_IDENTITY, whole, only_crm, quiet=True)

    stepwise = Warehouse(target="local", duckdb_path=tmp_path / "stepwise.duckdb")
    generate_into(stepwise, 300, SEED)
    late = "right(cast(id as varchar), 1) = '3'"
    stepwise.execute(
        [
            f"create table raw.late_pages as select * from raw.pages where {late}",
            f"delete from raw.pages where {late}",
        ]
    )
    run_dbt(BUILD_IDENTITY, stepwise, only_crm, quiet=True)
    # Append-only: the late pages arrive in a new load, with a newer load timestamp.
    stepwise.execute(
        [
            "insert into raw.pages select * "
            "replace (timestamp '2031-01-01 00:00:00' as _loaded_at) from raw.late_pages",
            EDITS[0],
        ]
    )
    run_dbt(BUILD_IDENTITY, stepwise, only_crm, quiet=True)

    assert stepwise.query(OBSERVATIONS) == whole.query(OBSERVATIONS)
    assert stepwise.query(EDGES) == whole.query(EDGES)
    assert stepwise.query(PARTITION) == whole.query(PARTITION)
    retracted = stepwise.query(
        "select distinct source_table from identity.identity_retracted_observations"
    )
    assert retracted == [("crm_contacts",)]


def test_an_unknown_mutable_source_fails_naming_it(tmp_path: Path) -> None:
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "t.duckdb")
    generate_into(warehouse, 50, SEED)
    with pytest.raises(DbtRunError):
        run_dbt(
            ["compile", "--select", "identity_retracted_observations"],
            warehouse,
            {"tessera_mutable_sources": ["crm_contact"]},
            quiet=True,
        )


def test_a_store_without_load_timestamps_upgrades_to_what_a_full_build_gives(
    tmp_path: Path,
) -> None:
    # Observations stored before rows were keyed by their load timestamp lack source_loaded_at:
    # the next run adds the column and derives the event rows again, ending where a full build
    # ends.
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "t.duckdb")
    generate_into(warehouse, 300, SEED)
    run_dbt(BUILD_IDENTITY, warehouse, quiet=True)
    warehouse.execute(["alter table identity.identity_observations drop column source_loaded_at"])
    run_dbt(BUILD_IDENTITY, warehouse, quiet=True)
    upgraded = [warehouse.query(query) for query in (OBSERVATIONS, EDGES, PARTITION)]
    loaded = warehouse.query(
        "select count(*) from identity.identity_observations "
        "where source_table in ('identifies', 'tracks', 'pages') and source_loaded_at is null"
    )
    assert loaded[0][0] == 0
    run_dbt([*BUILD_IDENTITY, "--full-refresh"], warehouse, quiet=True)
    assert upgraded == [warehouse.query(query) for query in (OBSERVATIONS, EDGES, PARTITION)]
