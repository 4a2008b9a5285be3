"""The console's pages' questions answered on the demo warehouse, DuckDB (through the snapshot)
and Postgres (through a SELECT-only role), checked against SQL over the marts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import duckdb
import psycopg
import pytest

from orchestration.activation.engine import run_syncs
from orchestration.console import pages
from orchestration.console.access import Masker
from orchestration.console.reader import (
    PostgresReader,
    Reader,
    SnapshotReader,
    grant_statements,
    snapshot_path,
    write_snapshot,
)
from orchestration.privacy import mask
from orchestration.warehouse import PostgresSettings, Warehouse
from tests.conftest import Predicted

VIEWER, ADMIN = Masker(full=False), Masker(full=True)


@pytest.fixture(scope="module")
def console_duckdb(
    predicted_duckdb_warehouse: Predicted, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Warehouse, Reader]]:
    """A copy of the session warehouse after a table sync ran, and the console's snapshot of it."""
    source = predicted_duckdb_warehouse.warehouse
    assert source.duckdb_path is not None
    # The same file name: DuckDB names the database after it, and dbt's views name the database.
    path = tmp_path_factory.mktemp("console") / source.duckdb_path.name
    shutil.copyfile(source.duckdb_path, path)
    wal = source.duckdb_path.with_name(source.duckdb_path.name + ".wal")
    if wal.exists():  # what the last writer left unmerged is part of the database
        shutil.copyfile(wal, path.with_name(path.name + ".wal"))
    warehouse = Warehouse(target="local", duckdb_path=path)
    (result,) = run_syncs(warehouse, destinations=["table"], env={})
    assert result.status == "succeeded", result.error
    write_snapshot(warehouse)
    reader = SnapshotReader(snapshot_path(warehouse))
    yield warehouse, reader
    reader.close()


@pytest.fixture(scope="module")
def console_postgres(predicted_postgres_warehouse: Predicted) -> tuple[Warehouse, Reader]:
    warehouse = predicted_postgres_warehouse.warehouse
    assert warehouse.postgres is not None
    warehouse.execute(grant_statements("tessera_console_test", "read only please"))
    settings = PostgresSettings(
        **{
            **warehouse.postgres.__dict__,
            "user": "tessera_console_test",
            "password": "read only please",
        }
    )
    return warehouse, PostgresReader(settings)


@pytest.fixture(params=["duckdb", "postgres"])
def console(request: pytest.FixtureRequest) -> tuple[Warehouse, Reader]:
    return request.getfixturevalue(f"console_{request.param}")


def _customer_with_history(warehouse: Warehouse) -> tuple[str, str, int, int]:
    """A customer with an email, several identifiers and more events than one page holds."""
    row = warehouse.query(
        """
        select customers.customer_id, customers.email, count(distinct ids.identifier_value),
            (select count(*) from marts.customer_events as events
             where events.customer_id = customers.customer_id)
        from marts.customers as customers
        inner join marts.customer_identities as ids on customers.customer_id = ids.customer_id
        where customers.email is not null
        group by customers.customer_id, customers.email
        having count(distinct ids.identifier_value) >= 3
        order by 4 desc, 1
        limit 1
        """
    )[0]
    return row[0], row[1], int(row[2]), int(row[3])


def test_search_finds_a_customer_by_email_phone_crm_id_and_order_typed_loosely(console) -> None:
    warehouse, reader = console
    customer_id, email, _, _ = _customer_with_history(warehouse)
    assert pages.find_customer(reader, f"  {email.upper()} ").customer_id == customer_id

    phone_owner, phone = warehouse.query(
        "select customer_id, identifier_value from marts.customer_identities "
        "where identifier_type = 'phone' order by 1 limit 1"
    )[0]
    typed = f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"  # +14155550100 as (415) 555-0100
    assert pages.find_customer(reader, typed).customer_id == phone_owner

    crm_owner, crm_id = warehouse.query(
        "select customer_id, identifier_value from marts.customer_identities "
        "where identifier_type = 'crm_contact_id' order by 1 limit 1"
    )[0]
    assert pages.find_customer(reader, f"crm_contact_id:{crm_id}").customer_id == crm_owner

    order_owner, order_id = warehouse.query(
        "select customer_id, order_id from marts.orders where customer_id is not null "
        "order by 2 limit 1"
    )[0]
    assert pages.find_customer(reader, order_id).customer_id == order_owner

    with pytest.raises(pages.NotFound, match="no customer has this identifier"):
        pages.find_customer(reader, "nobody-at-all@example.org")
    blocked_type, blocked_value = warehouse.query(
        "select identifier_type, identifier_value from identity.identity_blocked_identifiers "
        "order by 1, 2 limit 1"
    )[0]
    found = pages.find_customer(reader, f"{blocked_type}:{blocked_value}")
    assert found.customer_id is None and found.blocked_reason


def test_a_profile_shows_the_customer_as_the_marts_hold_them(console) -> None:
    warehouse, reader = console
    customer_id, email, identifiers, events = _customer_with_history(warehouse)
    assert events > pages.TIMELINE_PAGE_SIZE  # the pager is exercised

    viewer = pages.profile(reader, customer_id, VIEWER)
    golden = {name: (value, source) for name, value, source in viewer.golden}
    assert golden["email"] == (mask(email), golden["email"][1])
    assert golden["email"][1] in {"crm_contacts", "identifies", "orders", "support_tickets"}
    assert pages.profile(reader, customer_id, ADMIN).golden[0][1] == email
    assert viewer.explanation is not None
    assert len(viewer.explanation.identifiers) == identifiers
    assert all(
        v == mask(v_full)
        for (t, v, *_), (_, v_full, *_) in zip(
            viewer.explanation.identifiers,
            pages.profile(reader, customer_id, ADMIN).explanation.identifiers,
            strict=True,
        )
        if t in ("email", "phone")
    )

    assert viewer.timeline_total == events
    assert len(viewer.timeline) == pages.TIMELINE_PAGE_SIZE
    last = pages.profile(reader, customer_id, VIEWER, page=viewer.pages)
    assert len(last.timeline) == events - pages.TIMELINE_PAGE_SIZE * (viewer.pages - 1)
    newest = warehouse.query(
        "select max(occurred_at) from marts.customer_events "
        f"where customer_id = {warehouse.placeholder}",
        [customer_id],
    )[0][0]
    assert viewer.timeline[0]["occurred_at"] == newest

    flags = dict(
        zip(
            ["email_marketing", "advertising", "analytics"],
            warehouse.query(
                "select has_consent_email_marketing, has_consent_advertising, "
                "has_consent_analytics from marts.customers "
                f"where customer_id = {warehouse.placeholder}",
                [customer_id],
            )[0],
            strict=True,
        )
    )
    current = {c["purpose"]: c["is_granted"] for c in viewer.consents if c["current"]}
    assert {p: current.get(p, False) for p in flags} == flags

    stays = warehouse.query(
        "select count(*) from audiences.audience_membership_history "
        f"where customer_id = {warehouse.placeholder}",
        [customer_id],
    )[0][0]
    assert len(viewer.memberships) == stays


def test_an_erased_customer_shows_as_erased_and_nothing_else(console) -> None:
    warehouse, reader = console
    customer_id, requested_at = warehouse.query(
        "select customer_id, requested_at from marts.customer_erasures order by 1 limit 1"
    )[0]
    erased = pages.profile(reader, customer_id, ADMIN)
    assert erased.erased_at == requested_at
    assert (erased.golden, erased.timeline, erased.explanation, erased.consents) == (
        [],
        [],
        None,
        [],
    )


def test_an_audience_preview_and_overlap_add_up_to_the_audience_tables(console) -> None:
    warehouse, reader = console
    names = pages.audience_names(reader)
    assert "audience_repeat_buyers" in names and "audience_membership_history" not in names
    preview = pages.audience_preview(reader, "audience_repeat_buyers", VIEWER)
    size, reachable = warehouse.query(
        "select count(*), sum(case when customers.email is not null or customers.phone is not null "
        "then 1 else 0 end) from audiences.audience_repeat_buyers as members "
        "left join marts.customers as customers on members.customer_id = customers.customer_id"
    )[0]
    assert preview.size == size > 0
    assert sum(n for _, n in preview.risk_tiers) == size
    assert sum(n for _, n in preview.channels) <= size
    assert preview.reachable_any == reachable
    open_stays = warehouse.query(
        "select count(*) from audiences.audience_membership_history "
        "where audience = 'repeat_buyers' and exited_at is null"
    )[0][0]
    assert preview.history[-1][1] == open_stays
    assert len(preview.sample) == min(pages.SAMPLE_MEMBERS, size)
    assert all(m["email"] is None or m["email"].count("***") == 1 for m in preview.sample)

    shared = pages.overlap(reader, "audience_repeat_buyers", "audience_high_value_at_risk")
    both = warehouse.query(
        "select count(*) from (select customer_id from audiences.audience_repeat_buyers "
        "intersect select customer_id from audiences.audience_high_value_at_risk) as shared"
    )[0][0]
    assert shared.both == both
    assert shared.either == shared.first_size + shared.second_size - both
    with pytest.raises(pages.NotFound):
        pages.audience_preview(reader, "audience_x; drop table marts.customers", VIEWER)


def test_sync_health_lists_each_sync_with_its_runs(console_duckdb) -> None:
    warehouse, reader = console_duckdb
    health = pages.sync_health(reader, VIEWER)
    runs = dict(
        warehouse.query("select sync_name, count(*) from activation.sync_runs group by sync_name")
    )
    assert {s.name: len(s.runs) for s in health} == runs
    assert all(run["status"] == "succeeded" for s in health for run in s.runs)


@pytest.mark.parametrize(
    ("rates", "alert"),
    [
        ([(0.2, 0.3), (0.4, 0.5)], "match rate fell 20 points: 45% to 25% since the previous run"),
        ([(0.4, 0.5), (0.5, 0.6)], "match rate fell 10 points: 55% to 45% since the previous run"),
        ([(0.5, 0.6), (0.5, 0.6)], None),
        ([(0.5, 0.6)], None),
    ],
)
def test_a_match_rate_fall_of_ten_points_raises_an_alert(rates, alert) -> None:
    reports = [{"match_rate_low": low, "match_rate_high": high} for low, high in rates]
    assert pages.match_alert(reports) == alert


def test_meta_counts_give_the_share_of_valid_rows() -> None:
    assert pages.match_rate({"received": 1000, "invalid": 150}) == 0.85
    newest, previous = {"received": 1000, "invalid": 300}, {"received": 800, "invalid": 40}
    assert pages.match_alert([newest, previous]) == (
        "match rate fell 25 points: 95% to 70% since the previous run"
    )


def test_the_console_never_holds_the_warehouse_and_sees_a_refreshed_snapshot(
    console_duckdb,
) -> None:
    warehouse, reader = console_duckdb
    before = reader.query("select count(*) from marts.customers")[0][0]
    assert warehouse.duckdb_path is not None
    # A build can open the warehouse for writing while the console reads its snapshot.
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute(
            "delete from marts.customers where customer_id in "
            "(select customer_id from marts.customers order by 1 limit 3)"
        )
    assert reader.query("select count(*) from marts.customers")[0][0] == before
    write_snapshot(warehouse)
    assert reader.query("select count(*) from marts.customers")[0][0] == before - 3


def test_the_postgres_role_may_only_read(console_postgres) -> None:
    _, reader = console_postgres
    assert reader.query("select count(*) from marts.customers")[0][0] > 0
    with pytest.raises(psycopg.Error, match=r"read-only transaction|permission denied"):
        reader.query("delete from marts.customers")
    assert isinstance(reader, PostgresReader)
    settings = reader.settings
    with psycopg.connect(settings.conninfo(), autocommit=True) as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("set default_transaction_read_only = off")
            con.execute("delete from marts.customers")
