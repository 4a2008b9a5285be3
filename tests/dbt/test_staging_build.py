"""dbt builds of the staging layer on DuckDB and on a real Postgres server, on generated data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import DbtRunError, run_dbt
from orchestration.demo.generator import SOURCE_TABLES
from orchestration.reports import STAGING_MODELS, staging_summary
from orchestration.warehouse import Warehouse
from tests.dbt.conftest import SEED

pytestmark = pytest.mark.integration


def test_staged_plus_rejected_rows_equal_raw_rows_for_every_source(warehouse: Warehouse) -> None:
    summaries = staging_summary(warehouse)
    assert [s.table for s in summaries] == list(SOURCE_TABLES)
    for s in summaries:
        assert s.raw_rows > 0, s.table
        assert s.staged_rows + s.rejected_rows == s.raw_rows, s.table


def test_every_injected_defect_is_rejected_with_its_reason(warehouse: Warehouse) -> None:
    injected = {
        (table, reason): rows
        for table, reason, rows in warehouse.query("select * from truth.defects")
        if rows > 0
    }
    rejected = {
        (s.table, reason): rows
        for s in staging_summary(warehouse)
        for reason, rows in s.rejected.items()
    }
    assert sum(injected.values()) > 100
    assert rejected == injected


def test_duckdb_and_postgres_stage_identical_rows(
    duckdb_warehouse: Warehouse, postgres_warehouse: Warehouse
) -> None:
    for staged, rejected in STAGING_MODELS.values():
        for model in (staged, rejected):
            sql = f"select count(*) from staging.{model}"
            assert duckdb_warehouse.query(sql) == postgres_warehouse.query(sql), model
    # Same values, not only the same counts: normalised identifiers and UTC timestamps.
    for sql in (
        "select identify_id, email, phone, cast(identified_at as varchar) "
        "from staging.stg_segment__identifies order by identify_id",
        "select order_id, shop_customer_ref, email, phone, cast(total_amount as varchar), "
        "cast(ordered_at as varchar) from staging.stg_shop__orders order by order_id",
        "select crm_contact_id, email, phone from staging.stg_crm__contacts "
        "order by crm_contact_id",
        "select consent_record_id, subject_value, is_granted from staging.stg_privacy__consents "
        "order by consent_record_id",
    ):
        duck, pg = duckdb_warehouse.query(sql), postgres_warehouse.query(sql)
        assert len(duck) > 0
        assert duck == pg, sql


def test_offsets_are_converted_to_utc(warehouse: Warehouse) -> None:
    rows = warehouse.query(
        "select distinct source.timestamp, staged.viewed_at "
        "from staging.stg_segment__pages as staged "
        "inner join raw.pages as source on staged.page_view_id = source.id "
        "where source.timestamp like '%+02:00'"
    )
    assert len(rows) > 100
    for local_text, utc in rows:
        local = datetime.fromisoformat(local_text)
        assert utc == local.astimezone(UTC).replace(tzinfo=None), local_text


def test_phones_in_any_format_become_one_e164_number(warehouse: Warehouse) -> None:
    distinct_raw, distinct_staged, bad = warehouse.query(
        "select count(distinct source.phone), count(distinct staged.phone), "
        "sum(case when staged.phone like '+%' then 0 else 1 end) "
        "from staging.stg_shop__orders as staged "
        "inner join raw.orders as source on staged.order_id = source.order_id "
        "where staged.phone is not null"
    )[0]
    assert bad == 0
    assert distinct_staged < distinct_raw  # several spellings collapse into one number


def test_unknown_default_country_stops_the_build(tmp_path: Path) -> None:
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "t.duckdb")
    generate_into(warehouse, 50, SEED)
    with pytest.raises(DbtRunError):
        run_dbt(
            ["build", "--exclude-resource-type", "unit_test"],
            warehouse,
            {"tessera_default_country": "XX"},
            quiet=True,
        )
    assert not warehouse.relation_exists("staging", "stg_shop__orders")
