"""The customer 360 marts against staging and the generator's ground truth, DuckDB and Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestration.cli import generate_into
from orchestration.dbt_project import run_dbt
from orchestration.demo.generator import SOURCE_TABLES
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

BUILD = ["build", "--exclude-resource-type", "unit_test"]
MARTS = ("orders", "customer_events", "customer_identities", "customers")

# The true person behind each identifier that belongs to one person only (junk values such as
# test@test.com belong to many and are blocked), and the persons who asked for erasure.
_UNIQUE_TRUTH = """
    select identifier_type, identifier_value, min(person_id) as person_id
    from truth.identifiers
    group by identifier_type, identifier_value
    having count(distinct person_id) = 1
"""
_DELETED_IDENTIFIERS = f"""
    select unique_truth.identifier_type, unique_truth.identifier_value
    from ({_UNIQUE_TRUTH}) as unique_truth
    where unique_truth.person_id in (
        select truth.person_id
        from truth.identifiers as truth
        inner join staging.stg_privacy__deletion_requests as requests
            on truth.identifier_type = requests.subject_type
            and truth.identifier_value = requests.subject_value
    )
"""


def _scalar(warehouse: Warehouse, sql: str) -> Any:
    return warehouse.query(sql)[0][0]


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows in an order both adapters agree on (None first, values compared as text)."""
    return sorted(rows, key=lambda row: tuple("" if v is None else f"~{v}" for v in row))


def _new_warehouse(request: pytest.FixtureRequest, tmp_path: Path, adapter: str) -> Warehouse:
    if adapter == "duckdb":
        return Warehouse(target="local", duckdb_path=tmp_path / "tessera.duckdb")
    server = request.getfixturevalue("postgres_server")
    name = request.node.name.split("[")[0][:40]
    return Warehouse(target="postgres", postgres=server.create_database(name))


def test_every_valid_order_appears_exactly_once_in_orders(warehouse: Warehouse) -> None:
    staged = _scalar(warehouse, "select count(*) from staging.stg_shop__orders")
    counts = warehouse.query("select count(*), count(distinct order_id) from marts.orders")[0]
    missing = _scalar(
        warehouse,
        """
        select count(*) from staging.stg_shop__orders as staged
        where not exists (select 1 from marts.orders where orders.order_id = staged.order_id)
        """,
    )
    assert staged > 1_000
    assert tuple(counts) == (staged, staged)
    assert missing == 0


def test_orders_with_only_blocked_identifiers_are_kept_without_a_customer(
    warehouse: Warehouse,
) -> None:
    # Adversarial data has junk-only orders (test@test.com, 0000000000): kept, unattributed.
    statuses = dict(
        warehouse.query(
            "select attribution_status, count(*) from marts.orders group by attribution_status"
        )
    )
    unattributed = _scalar(
        warehouse,
        "select count(*) from marts.orders where customer_id is null"
        " and (order_sequence is not null or is_first_order is not null)",
    )
    assert statuses["unresolved"] > 0
    assert statuses["attributed"] > 1_000
    assert unattributed == 0


def test_customer_revenue_adds_up_to_the_revenue_of_attributed_orders(
    warehouse: Warehouse,
) -> None:
    customers = warehouse.query(
        "select sum(lifetime_revenue), sum(orders_count), sum(completed_orders_count)"
        " from marts.customers"
    )[0]
    orders = warehouse.query(
        """
        select
            sum(revenue),
            count(*),
            sum(case when order_status = 'completed' then 1 else 0 end)
        from marts.orders
        where customer_id is not null
        """
    )[0]
    assert customers[0] > 10_000
    assert tuple(customers) == tuple(orders)


def test_first_order_flags_and_sequences_number_each_customers_orders(
    warehouse: Warehouse,
) -> None:
    rows = warehouse.query(
        """
        select
            count(distinct customer_id),
            sum(case when is_first_order then 1 else 0 end),
            sum(case when order_sequence = 1 then 1 else 0 end),
            (select count(*) from marts.customers where orders_count > 0),
            (select count(*) from (
                select customer_id from marts.orders where customer_id is not null
                group by customer_id having max(order_sequence) <> count(*)
            ) as gaps)
        from marts.orders
        where customer_id is not null
        """
    )[0]
    buyers, first_flags, first_sequences, customers_with_orders, gapped = rows
    assert buyers > 500
    assert (first_flags, first_sequences, customers_with_orders, gapped) == (
        buyers,
        buyers,
        buyers,
        0,
    )


def test_clean_data_has_one_customer_per_true_person_left_after_erasure(
    clean_warehouse: Warehouse,
) -> None:
    persons = _scalar(clean_warehouse, "select count(distinct person_id) from truth.identifiers")
    deleted = _scalar(
        clean_warehouse,
        """
        select count(distinct truth.person_id)
        from truth.identifiers as truth
        inner join staging.stg_privacy__deletion_requests as requests
            on truth.identifier_type = requests.subject_type
            and truth.identifier_value = requests.subject_value
        """,
    )
    customers = _scalar(clean_warehouse, "select count(*) from marts.customers")
    # Each customer's identifiers all belong to one true person, and no two customers share one.
    persons_per_customer = clean_warehouse.query(
        f"""
        select max(n), count(*) from (
            select identities.customer_id, count(distinct unique_truth.person_id) as n
            from marts.customer_identities as identities
            inner join ({_UNIQUE_TRUTH}) as unique_truth
                on identities.identifier_type = unique_truth.identifier_type
                and identities.identifier_value = unique_truth.identifier_value
            group by identities.customer_id
        ) as per_customer
        """
    )[0]
    assert persons == 1_500
    assert deleted > 0
    assert customers == persons - deleted
    assert tuple(persons_per_customer) == (1, customers)


def test_deleted_persons_are_absent_from_every_mart(warehouse: Warehouse) -> None:
    deleted = warehouse.query(f"select count(*) from ({_DELETED_IDENTIFIERS}) as deleted")[0][0]
    leaks = warehouse.query(
        f"""
        with deleted as ({_DELETED_IDENTIFIERS}),
        deleted_rows as (
            select distinct observations.source_table, observations.source_row_id
            from identity.identity_observations as observations
            inner join deleted
                on observations.identifier_type = deleted.identifier_type
                and observations.identifier_value = deleted.identifier_value
        )
        select
            (select count(*) from marts.customer_identities as identities
             inner join deleted
                on identities.identifier_type = deleted.identifier_type
                and identities.identifier_value = deleted.identifier_value),
            (select count(*) from marts.customers
             where email in (select identifier_value from deleted where identifier_type = 'email')
                or phone in (select identifier_value from deleted where identifier_type = 'phone')),
            (select count(*) from marts.customer_events as events
             inner join deleted_rows
                on events.source_table = deleted_rows.source_table
                and events.source_row_id = deleted_rows.source_row_id),
            (select count(*) from marts.orders
             inner join deleted_rows
                on deleted_rows.source_table = 'orders'
                and orders.order_id = deleted_rows.source_row_id
             where orders.customer_id is not null or orders.attribution_status <> 'erased'),
            (select count(*) from marts.orders where attribution_status = 'erased')
        """
    )[0]
    identities, customers, events, attributed_orders, erased_orders = leaks
    assert deleted > 5
    assert (identities, customers, events, attributed_orders) == (0, 0, 0, 0)
    # Their orders stay in orders for the books, without a customer.
    assert erased_orders > 0


def test_events_hold_every_source_row_except_those_of_erased_customers(
    warehouse: Warehouse,
) -> None:
    rows = warehouse.query(
        f"""
        with deleted as ({_DELETED_IDENTIFIERS}),
        deleted_rows as (
            select distinct observations.source_table, observations.source_row_id
            from identity.identity_observations as observations
            inner join deleted
                on observations.identifier_type = deleted.identifier_type
                and observations.identifier_value = deleted.identifier_value
        ),
        staged as (
            select 'pages' as source_table, page_view_id as source_row_id
            from staging.stg_segment__pages
            union all
            select 'tracks', track_id from staging.stg_segment__tracks
            union all
            select 'orders', order_id from staging.stg_shop__orders
            union all
            select 'support_tickets', ticket_id from staging.stg_support__tickets
        )
        select
            staged.source_table,
            count(*),
            count(deleted_rows.source_row_id),
            (select count(*) from marts.customer_events as events
             where events.source_table = staged.source_table),
            (select count(*) from marts.customer_events as events
             where events.source_table = staged.source_table and events.customer_id is null)
        from staged
        left join deleted_rows
            on staged.source_table = deleted_rows.source_table
            and staged.source_row_id = deleted_rows.source_row_id
        group by staged.source_table
        """
    )
    by_table = {table: counts for table, *counts in rows}
    assert set(by_table) == {"pages", "tracks", "orders", "support_tickets"}
    for table, (staged, erased, events, _unattributed) in by_table.items():
        assert staged > 100, table
        assert events == staged - erased, table
    # Junk anonymous ids ("anonymous") leave some page views without a customer: still here.
    assert by_table["pages"][3] > 0


def test_event_ids_are_unique_across_event_types(warehouse: Warehouse) -> None:
    counts = warehouse.query(
        "select count(*), count(distinct event_id), count(distinct event_type)"
        " from marts.customer_events"
    )[0]
    assert counts[0] > 10_000
    assert tuple(counts) == (counts[0], counts[0], 4)


def test_identities_cover_every_linkable_identifier_of_every_customer(
    warehouse: Warehouse,
) -> None:
    rows = warehouse.query(
        """
        select
            (select count(*) from identity.identity_customer_map as map
             where map.customer_id in (select customer_id from marts.customers)),
            (select count(*) from marts.customer_identities),
            (select sum(identifiers_count) from marts.customers),
            (select count(*) from marts.customer_identities
             where source_count < 1 or first_seen_at > last_seen_at)
        """
    )[0]
    mapped, identities, counted, inconsistent = rows
    assert identities > 3_000
    assert (mapped, counted, inconsistent) == (identities, identities, 0)


def test_consent_flags_follow_the_latest_record_per_purpose(warehouse: Warehouse) -> None:
    # Recomputed from staging: the latest record per customer and purpose, revocations first
    # at equal times.
    expected = warehouse.query(
        """
        with records as (
            select map.customer_id, consents.purpose, consents.is_granted,
                row_number() over (
                    partition by map.customer_id, consents.purpose
                    order by consents.recorded_at desc, consents.is_granted
                ) as rank_in_purpose
            from staging.stg_privacy__consents as consents
            inner join identity.identity_customer_map as map
                on consents.subject_type = map.identifier_type
                and consents.subject_value = map.identifier_value
        )
        select purpose, count(*) from records
        where rank_in_purpose = 1 and is_granted
            and customer_id in (select customer_id from marts.customers)
        group by purpose
        """
    )
    actual = warehouse.query(
        """
        select
            sum(case when has_consent_email_marketing then 1 else 0 end),
            sum(case when has_consent_advertising then 1 else 0 end),
            sum(case when has_consent_analytics then 1 else 0 end)
        from marts.customers
        """
    )[0]
    expected_by_purpose = dict(expected)
    assert expected_by_purpose["email_marketing"] > 100
    assert tuple(actual) == (
        expected_by_purpose["email_marketing"],
        expected_by_purpose["advertising"],
        expected_by_purpose["analytics"],
    )


def test_duckdb_and_postgres_build_the_same_marts(
    duckdb_warehouse: Warehouse, postgres_warehouse: Warehouse
) -> None:
    # customer_id is a hash of each database's smallest identifier, so compare contents without
    # it, and compare how orders and identifiers are grouped into customers.
    queries = {
        "customers": """
            select email, phone, first_name, last_name, company, channels, page_views_count,
                track_events_count, orders_count, completed_orders_count, lifetime_revenue,
                average_order_value, support_tickets_count, identifiers_count, emails_count,
                phones_count, has_consent_email_marketing, has_consent_advertising,
                has_consent_analytics, first_seen_at, last_seen_at, first_order_at,
                last_order_at
            from marts.customers
        """,
        "orders": """
            select order_id, customer_id is null, attribution_status, revenue, total_amount,
                order_sequence, is_first_order, ordered_at
            from marts.orders
        """,
        "customer_events": """
            select event_id, customer_id is null, event_type, event_name, source_row_id,
                page_path, revenue, occurred_at
            from marts.customer_events
        """,
        "customer_identities": """
            select identifier_type, identifier_value, source_count, observation_count,
                first_seen_at, last_seen_at
            from marts.customer_identities
        """,
        "orders grouped by customer": """
            select min(order_id), count(*), sum(revenue) from marts.orders
            where customer_id is not null group by customer_id
        """,
        "identifiers grouped by customer": """
            select min(identifier_type || ':' || identifier_value), count(*)
            from marts.customer_identities group by customer_id
        """,
    }
    for name, sql in queries.items():
        duck = _sorted(duckdb_warehouse.query(sql))
        postgres = _sorted(postgres_warehouse.query(sql))
        assert len(duck) > 500, name
        assert duck == postgres, name


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_survivorship_picks_the_crm_email_and_follows_the_configured_rule(
    request: pytest.FixtureRequest, tmp_path: Path, adapter: str
) -> None:
    warehouse = _new_warehouse(request, tmp_path, adapter)
    generate_into(warehouse, 600, 7, defect_rate=0.0, junk=False)
    # Give every CRM contact with a phone a work address of its own: linked to the person by the
    # phone, seen once, so source priority and frequency choose different emails.
    warehouse.execute(
        [
            "update raw.crm_contacts set email = 'work.' || contact_id || '@crm-inbox.io'"
            " where phone is not null"
        ],
    )
    run_dbt(BUILD, warehouse, quiet=True)
    contested = """
        with crm_emails as (
            select map.customer_id, contacts.email
            from staging.stg_crm__contacts as contacts
            inner join identity.identity_customer_map as map
                on map.identifier_type = 'email' and contacts.email = map.identifier_value
            where contacts.email like 'work.%'
        ),
        frequent_other_emails as (
            select map.customer_id
            from identity.identity_observations as observations
            inner join identity.identity_customer_map as map
                on observations.identifier_type = map.identifier_type
                and observations.identifier_value = map.identifier_value
            where observations.identifier_type = 'email'
                and observations.source_table <> 'crm_contacts'
            group by map.customer_id, observations.identifier_value
            having count(*) >= 2
        )
        select count(*), sum(case when customers.email = crm_emails.email then 1 else 0 end)
        from crm_emails
        inner join marts.customers on crm_emails.customer_id = customers.customer_id
        where crm_emails.customer_id in (select customer_id from frequent_other_emails)
    """
    contested_customers, crm_wins = warehouse.query(contested)[0]
    assert contested_customers > 10
    assert crm_wins == contested_customers

    rules = {
        "email": {"rule": "most_frequent"},
        "phone": {"rule": "most_frequent"},
        "first_name": {"rule": "most_recent"},
        "last_name": {"rule": "most_recent"},
        "company": {"rule": "most_recent"},
    }
    run_dbt(
        ["run", "--select", "customers"], warehouse, {"tessera_survivorship": rules}, quiet=True
    )
    assert tuple(warehouse.query(contested)[0]) == (contested_customers, 0)


@pytest.mark.parametrize(
    ("adapter", "keep"),
    [
        ("duckdb", {"orders"}),
        ("postgres", {"orders"}),
        ("duckdb", {"identifies", "tracks", "pages"}),
    ],
    ids=["duckdb_orders_only", "postgres_orders_only", "duckdb_site_events_only"],
)
def test_marts_build_when_sources_are_missing_or_empty(
    request: pytest.FixtureRequest, tmp_path: Path, adapter: str, keep: set[str]
) -> None:
    warehouse = _new_warehouse(request, tmp_path, adapter)
    generate_into(warehouse, 300, 5)
    # DuckDB loses the other tables, Postgres keeps them empty: both paths must build.
    verb = "drop table" if adapter == "duckdb" else "delete from"
    warehouse.execute([f"{verb} raw.{table}" for table in SOURCE_TABLES if table not in keep])
    run_dbt(BUILD, warehouse, quiet=True)
    staged_orders = _scalar(warehouse, "select count(*) from staging.stg_shop__orders")
    marts = warehouse.query(
        """
        select
            (select count(*) from marts.orders),
            (select count(*) from marts.customers),
            (select count(*) from marts.customer_identities),
            (select count(*) from marts.customer_events where event_type = 'order'),
            (select count(*) from marts.customer_events where event_type <> 'order'),
            (select coalesce(sum(orders_count), 0) from marts.customers),
            (select count(*) from marts.orders where customer_id is not null),
            (select coalesce(sum(page_views_count + track_events_count), 0) from marts.customers)
        """
    )[0]
    orders, customers, identities, order_events, other_events, ordered, attributed, viewed = marts
    assert customers > 100
    assert identities >= customers
    assert orders == staged_orders
    if keep == {"orders"}:
        assert (other_events, viewed) == (0, 0)
        assert order_events == orders > 100
        assert ordered == attributed > 100
    else:
        assert (orders, order_events, ordered) == (0, 0, 0)
        assert other_events > 1_000
        assert viewed > 1_000
