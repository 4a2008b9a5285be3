"""An incremental model ends where a full refresh of it over the same inputs ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

CUSTOMERS = 400
SEED = 31
# Rows whose id ends in 4 arrive in a later load.
LATE = "'4'"
TABLES = {
    "identifies": "id",
    "tracks": "id",
    "pages": "id",
    "orders": "order_id",
    "crm_contacts": "contact_id",
}
EVENT_TABLES = ("identifies", "tracks", "pages")
LATER_LOAD = "2031-01-01 00:00:00"
# The models that rebuild only what changed, by schema.
INCREMENTAL = {
    "customer_events": "marts",
    "customer_identities": "marts",
    "customers": "marts",
    "customer_features": "marts",
    "customer_features_holdout": "marts",
    "identity_identifiers": "identity",
}
BUILD = ["build", "--select", *[f"+{model}" for model in INCREMENTAL]]
BUILD += ["--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
# The run stamp says when a row was built, not what it holds.
BOOKKEEPING = {"_built_at"}


def _rows(warehouse: Warehouse, model: str) -> list[tuple]:
    schema = INCREMENTAL[model]
    columns = [
        name
        for (name,) in warehouse.query(
            "select column_name from information_schema.columns "
            f"where table_schema = '{schema}' and table_name = '{model}' order by column_name"
        )
        if name not in BOOKKEEPING
    ]
    listed = ", ".join(columns)
    rows = warehouse.query(f"select {listed} from {schema}.{model}")
    return sorted(rows, key=lambda row: tuple("" if v is None else str(v) for v in row))


def _equals_full_refresh(warehouse: Warehouse) -> dict[str, int]:
    """Each incremental model as the run left it equals a --full-refresh of those models over
    the same inputs; returns the rows each holds."""
    incremental = {model: _rows(warehouse, model) for model in INCREMENTAL}
    run_dbt(["run", "--full-refresh", "--select", *INCREMENTAL], warehouse, quiet=True)
    for model in INCREMENTAL:
        assert incremental[model] == _rows(warehouse, model), model
    return {model: len(rows) for model, rows in incremental.items()}


def _newest_stamp(warehouse: Warehouse, model: str) -> object:
    return warehouse.query(f"select max(_built_at) from {INCREMENTAL[model]}.{model}")[0][0]


def _rebuilt_since(warehouse: Warehouse, model: str, stamp: object) -> int:
    return warehouse.query(
        f"select count(*) from {INCREMENTAL[model]}.{model} "
        f"where _built_at > {warehouse.placeholder}",
        [stamp],
    )[0][0]


def _rebuilt_by_last_run(warehouse: Warehouse, model: str) -> int:
    relation = f"{INCREMENTAL[model]}.{model}"
    return warehouse.query(
        f"select count(*) from {relation} where _built_at = (select max(_built_at) from {relation})"
    )[0][0]


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    if request.param == "duckdb":
        return Warehouse(target="local", duckdb_path=tmp_path / "stepwise.duckdb")
    server = request.getfixturevalue("postgres_server")
    return Warehouse(target="postgres", postgres=server.create_database("marts_incremental"))


def test_marts_updated_run_by_run_equal_their_full_refresh(warehouse: Warehouse) -> None:
    generate_into(warehouse, CUSTOMERS, SEED)
    warehouse.execute(
        [
            f"create table raw.late_{table} as select * from raw.{table} "
            f"where right(cast({key} as varchar), 1) = {LATE}"
            for table, key in TABLES.items()
        ]
        + [
            f"delete from raw.{table} where right(cast({key} as varchar), 1) = {LATE}"
            for table, key in TABLES.items()
        ]
        + [f"update raw.late_{table} set _loaded_at = '{LATER_LOAD}'" for table in EVENT_TABLES]
    )
    run_dbt(BUILD, warehouse, quiet=True)
    first = {model: len(_rows(warehouse, model)) for model in INCREMENTAL}

    # 1. A later load: events of existing and new devices, identifies that link devices to
    # people (customers merge), orders and contacts; a contact moves to another person's
    # email; a person asks to be erased.
    erased_email = warehouse.query(
        "select min(identifier_value) from identity.identity_customer_map "
        "where identifier_type = 'email' and customer_id in ("
        "  select customer_id from marts.customer_events where source_table = 'pages')"
    )[0][0]
    warehouse.execute(
        [f"insert into raw.{table} select * from raw.late_{table}" for table in TABLES]
        + [
            "update raw.crm_contacts set email = (select min(email) from raw.crm_contacts), "
            "updated_at = '2031-01-02T00:00:00Z' where contact_id like '%17'",
            "insert into raw.deletion_requests (subject_type, subject_value, requested_at) "
            f"values ('email', '{erased_email}', '2031-01-03T00:00:00Z')",
        ]
    )
    run_dbt(BUILD, warehouse, quiet=True)
    rebuilt = _rebuilt_by_last_run(warehouse, "customer_events")
    identities_rebuilt = _rebuilt_by_last_run(warehouse, "customer_identities")
    aggregated = _rebuilt_by_last_run(warehouse, "identity_identifiers")
    counts = _equals_full_refresh(warehouse)
    assert counts["customer_events"] > first["customer_events"]
    # Only the late events, the orders and tickets, and the events whose identifiers changed
    # customer were built again: well under half the table.
    assert 0 < rebuilt < counts["customer_events"] / 2
    # The identifiers rebuilt are at most those observed, retracted or reassigned by the run.
    touched = warehouse.query(
        "select count(*) from ("
        "  select identifier_type, identifier_value from identity.identity_observations"
        "  where loaded_at = (select max(loaded_at) from identity.identity_observations)"
        "  union"
        "  select identifier_type, identifier_value from identity.identity_customer_registry"
        "  where assigned_at = (select max(assigned_at) from identity.identity_customer_registry)"
        "  union"
        "  select identifier_type, identifier_value from identity.identity_retracted_observations"
        ") as touched"
    )[0][0]
    assert 0 < identities_rebuilt <= touched < counts["customer_identities"]
    assert 0 < aggregated < counts["identity_identifiers"]

    # 2. Rows deleted at the source and rows newly rejected leave the marts; nothing else
    # changes, so the next run rebuilds only the orders and tickets, and the events staging
    # read again (its look-back window before the newest load).
    warehouse.execute(
        [
            "delete from raw.pages where id like '%2'",
            f"update raw.tracks set timestamp = 'not a date', _loaded_at = '{LATER_LOAD}' "
            "where id like '%31'",
        ]
    )
    run_dbt(BUILD, warehouse, quiet=True)
    after_deletes = _equals_full_refresh(warehouse)
    assert after_deletes["customer_events"] < counts["customer_events"]
    gone = warehouse.query(
        "select count(*) from marts.customer_events "
        "where (source_table = 'pages' and source_row_id like '%2') "
        "or (source_table = 'tracks' and source_row_id like '%31')"
    )[0][0]
    assert gone == 0

    run_dbt(BUILD, warehouse, quiet=True)
    unchanged = _rebuilt_by_last_run(warehouse, "customer_events")
    orders_and_tickets = warehouse.query(
        "select count(*) from marts.customer_events "
        "where source_table in ('orders', 'support_tickets')"
    )[0][0]
    restaged = sum(
        warehouse.query(
            f"select count(*) from marts.customer_events as events "
            f"inner join staging.stg_segment__{table} as staged "
            f"on events.source_table = '{table}' and events.source_row_id = staged.{key} "
            f"where staged._staged_at = "
            f"(select max(_staged_at) from staging.stg_segment__{table})"
        )[0][0]
        for table, key in (("pages", "page_view_id"), ("tracks", "track_id"))
    )
    assert 0 < restaged < counts["customer_events"] / 5
    assert unchanged == orders_and_tickets + restaged
    assert _equals_full_refresh(warehouse) == after_deletes

    # 3. Edits in place that move no identifier: an order refunded, a product recategorised, a
    # consent revoked. Only the customers they belong to are rebuilt.
    mark = warehouse.placeholder
    stamp = _newest_stamp(warehouse, "customers")
    features_stamp = _newest_stamp(warehouse, "customer_features")
    refunded = warehouse.query(
        "select min(order_id) from marts.orders "
        "where order_status = 'completed' and customer_id is not null"
    )[0][0]
    # One buyer's only completed order: its category is their top category whatever it is.
    recategorised = warehouse.query(
        "select min(items.order_id) from marts.order_items as items "
        "inner join marts.customers on items.customer_id = customers.customer_id "
        "where items.order_status = 'completed' and customers.completed_orders_count = 1 "
        f"and items.order_id <> {mark}",
        [refunded],
    )[0][0]
    revoked = warehouse.query(
        "select consents.subject_type, consents.subject_value, consents.purpose "
        "from staging.stg_privacy__consents as consents "
        "inner join identity.identity_customer_map as owners "
        "on consents.subject_type = owners.identifier_type "
        "and consents.subject_value = owners.identifier_value "
        "inner join marts.customers on owners.customer_id = customers.customer_id "
        "where consents.is_granted order by consents.consent_record_id limit 1"
    )[0]
    warehouse.execute(
        [
            f"update raw.orders set status = 'refunded' where order_id = '{refunded}'",
            "update raw.order_items set category = 'recategorised' "
            f"where order_id = '{recategorised}'",
            "insert into raw.consents (subject_type, subject_value, purpose, granted, "
            f"recorded_at, source) values ('{revoked[0]}', '{revoked[1]}', '{revoked[2]}', "
            "false, '2031-01-04T00:00:00Z', 'preference_center')",
        ]
    )
    run_dbt(BUILD, warehouse, quiet=True)
    edited = _rebuilt_since(warehouse, "customers", stamp)
    owners = warehouse.query(
        "select count(distinct customer_id) from ("
        f"  select customer_id from marts.orders where order_id in ({mark}, {mark})"
        "  union all"
        "  select customer_id from identity.identity_customer_map"
        f"  where identifier_type = {mark} and identifier_value = {mark}"
        ") as owners where customer_id is not null",
        [refunded, recategorised, revoked[0], revoked[1]],
    )[0][0]
    # The three owners, and the customers of the events the staging window read again, if any.
    assert owners >= 2
    assert owners <= edited < counts["customers"] / 5
    assert warehouse.query(
        "select position('recategorised' in top_categories) > 0 from marts.customers "
        f"where customer_id = (select customer_id from marts.orders where order_id = {mark})",
        [recategorised],
    )[0][0]
    # The calibration end did not move: the features of the refunded order's buyer and of the
    # customers rebuilt above, no more.
    assert 1 <= _rebuilt_since(warehouse, "customer_features", features_stamp) <= edited
    _equals_full_refresh(warehouse)

    # 4. Nothing new: no customer is rebuilt, nor their features.
    customer_level = ("customers", "customer_features", "customer_features_holdout")
    stamps = {model: _newest_stamp(warehouse, model) for model in customer_level}
    run_dbt(BUILD, warehouse, quiet=True)
    assert {model: _rebuilt_since(warehouse, model, stamps[model]) for model in customer_level} == {
        model: 0 for model in customer_level
    }

    # 5. Other settings: a longer churn window moves the holdout for everyone, and a changed
    # survivorship rule may change any golden record; every row is rebuilt under them.
    stamps = {model: _newest_stamp(warehouse, model) for model in customer_level}
    settings = {
        "tessera_churn_window_days": 45,
        "tessera_survivorship": {
            "email": {"rule": "most_recent"},
            "phone": {"rule": "most_recent"},
            "first_name": {"rule": "most_frequent"},
            "last_name": {"rule": "most_recent"},
            "company": {"rule": "most_recent"},
        },
    }
    run_dbt(BUILD, warehouse, settings, quiet=True)
    rebuilt = {model: _rebuilt_since(warehouse, model, stamps[model]) for model in customer_level}
    totals = {
        model: warehouse.query(f"select count(*) from marts.{model}")[0][0]
        for model in customer_level
    }
    assert rebuilt == totals
