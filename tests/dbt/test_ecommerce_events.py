"""Under the segment and rudderstack presets, orders and their items also come from Segment's
e-commerce events (spec v2: Order Completed, Order Refunded, Order Cancelled, with order_id,
total or revenue, currency and products as JSON text), typed as the vendors type them."""

from __future__ import annotations

import pytest

from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration

COMMON = (
    "id text, anonymous_id text, user_id text, event text, event_text text, "
    '"timestamp" timestamptz, received_at timestamptz, uuid_ts timestamptz'
)
PRODUCTS = (
    '[{"product_id": "p-1", "sku": "SKU-1", "name": "Tee", "category": "Apparel", '
    '"price": 19.9, "quantity": 2}, {"sku": "SKU-2", "name": "Cap", "price": "9", "quantity": 1}]'
)


def _load(warehouse: Warehouse) -> None:
    def row(message, user, event, when, order_id, total, products="null"):
        slug = event.lower().replace(" ", "_")
        return (
            f"('{message}', 'anon-{user}', '{user}', '{slug}', '{event}', "
            f"timestamptz '{when}+00', timestamptz '{when}+00', timestamptz '{when}+00', "
            f"{order_id}, {total}, 'usd', {products})"
        )

    extra = "order_id text, total double precision, currency text, products text"
    completed = [
        row("m1", "u1", "Order Completed", "2025-05-01 10:00:00", "'o1'", "48.8", f"'{PRODUCTS}'"),
        row("m2", "u2", "Order Completed", "2025-05-02 10:00:00", "'o2'", "12.5", "'[{'"),
        row("m3", "u3", "Order Completed", "2025-05-03 10:00:00", "null", "5"),
        # At-least-once delivery: the same call twice.
        row("m4", "u4", "Order Completed", "2025-05-04 10:00:00", "'o4'", "7"),
        row("m4", "u4", "Order Completed", "2025-05-04 10:00:00", "'o4'", "7"),
    ]
    refunded = [row("m5", "u1", "Order Refunded", "2025-05-09 10:00:00", "'o1'", "48.8")]
    cancelled = [row("m6", "u6", "Order Cancelled", "2025-05-06 10:00:00", "'o6'", "30")]
    statements = ["create schema if not exists raw", f"create table raw.tracks ({COMMON})"]
    for table, rows in (
        ("order_completed", completed),
        ("order_refunded", refunded),
        ("order_cancelled", cancelled),
    ):
        statements += [
            f"create table raw.{table} ({COMMON}, {extra})",
            f"insert into raw.{table} values {', '.join(rows)}",
        ]
    warehouse.execute(statements)


def test_orders_and_items_come_from_the_ecommerce_events(empty_warehouse: Warehouse) -> None:
    _load(empty_warehouse)
    run_dbt(
        ["build", "--select", "+stg_shop__order_items", "+stg_shop__orders_rejected",
         "+stg_shop__order_items_rejected", "--indirect-selection", "cautious",
         "--exclude-resource-type", "unit_test"],
        empty_warehouse,
        {"tessera_source_preset": "segment"},
        quiet=True,
    )  # fmt: skip
    orders = empty_warehouse.query(
        "select order_id, user_id, anonymous_id, order_status, cast(total_amount as text), "
        "currency, channel, cast(ordered_at as text) from staging.stg_shop__orders "
        "order by order_id"
    )
    assert orders == [
        # Completed, then refunded: the latest status, the completed event's time and total.
        ("o1", "u1", "anon-u1", "refunded", "48.80", "USD", "web", "2025-05-01 10:00:00"),
        ("o2", "u2", "anon-u2", "completed", "12.50", "USD", "web", "2025-05-02 10:00:00"),
        ("o4", "u4", "anon-u4", "completed", "7.00", "USD", "web", "2025-05-04 10:00:00"),
        ("o6", "u6", "anon-u6", "cancelled", "30.00", "USD", "web", "2025-05-06 10:00:00"),
    ]
    # The event without an order id is quarantined, not dropped; the twice-delivered call is
    # one order.
    rejected = empty_warehouse.query(
        "select rejection_reason, order_id from staging.stg_shop__orders_rejected"
    )
    assert rejected == [("missing_id", None)]
    items = empty_warehouse.query(
        "select order_id, product_id, sku, product_name, category, cast(price as text), quantity "
        "from staging.stg_shop__order_items order by sku"
    )
    # o2's products are not a JSON array: o2 stays an order without items.
    assert items == [
        ("o1", "p-1", "SKU-1", "Tee", "apparel", "19.90", 2),
        ("o1", None, "SKU-2", "Cap", None, "9.00", 1),
    ]
