"""A shop of N customers straight from numpy and SQL, for the recommendation and propensity
benchmarks of bench/predictive.py: the marts those models read, with planted structure so the
evaluation figures mean something.

Tables (the real marts' names and the columns the models read): ``marts.customers``,
``marts.customer_erasures`` (empty), ``marts.order_items`` and ``marts.customer_events`` (page
views, product views and cart adds with ``properties`` JSON, orders, tickets).

What is planted: each customer buys at a rate drawn from a Gamma over 420 days (as_of is the
end); items come from the customer's favourite of six categories 70% of the time, by popularity
within it (Zipf); the first item of each order is, 30% of the time, the partner product of the
previous order's first item (complementary products); product views lead up to purchases and
follow the favourite category; 10% of orders lead to a ticket within five days. At 1,000,000
customers: about 20M events and 3M order items.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

START = datetime(2025, 1, 1)
DAYS = 420
AS_OF = START + timedelta(days=DAYS)
PRODUCTS = 500
CATEGORIES = ("apparel", "shoes", "accessories", "home", "beauty", "outdoor")


def _stamps(days: np.ndarray) -> pa.Array:
    micros = (days * 86_400e6).astype(np.int64)
    base = np.datetime64(START, "us")
    return pa.array(base + micros.astype("timedelta64[us]"))


def _products(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    """A product of each given category, by Zipf popularity within it (products c, c + 6, ...)."""
    per_category = PRODUCTS // len(CATEGORIES)
    rank = np.minimum(rng.zipf(1.6, len(category)) - 1, per_category - 1)
    return 1 + category + rank * len(CATEGORIES)


def build(con: duckdb.DuckDBPyConnection, customers: int, seed: int) -> dict[str, int]:
    """Create the four marts in ``con``; returns rows per table."""
    rng = np.random.default_rng(seed)
    favourite = rng.integers(0, len(CATEGORIES), customers)
    rate = rng.gamma(0.6, 1 / 60, customers)
    first = rng.uniform(0, DAYS - 60, customers)
    partner = np.roll(np.arange(1, PRODUCTS + 1), -7)  # product p -> partner(p), 1-based

    # Orders: a Poisson number per customer over their time, sorted in time per customer.
    n_orders = rng.poisson(rate * (DAYS - first))
    buyer = np.repeat(np.arange(customers), n_orders)
    when = first[buyer] + rng.uniform(0, 1, len(buyer)) * (DAYS - first[buyer])
    order = np.lexsort((when, buyer))
    buyer, when = buyer[order], when[order]
    starts = np.cumsum(n_orders) - n_orders
    rank = np.arange(len(buyer)) - np.repeat(starts, n_orders)

    # First item of each order: favourite category or any, then the partner of the previous
    # order's first item 30% of the time (orders of one customer are consecutive).
    category = np.where(
        rng.random(len(buyer)) < 0.7, favourite[buyer], rng.integers(0, 6, len(buyer))
    )
    lead = _products(rng, category)
    follow = rng.random(len(buyer)) < 0.3
    for r in range(1, int(rank.max(initial=0)) + 1):
        at = np.flatnonzero((rank == r) & follow)
        lead[at] = partner[lead[at - 1] - 1]
    extra = np.minimum(rng.geometric(0.6, len(buyer)) - 1, 3)
    item_order = np.concatenate([np.arange(len(buyer)), np.repeat(np.arange(len(buyer)), extra)])
    item_category = np.where(
        rng.random(int(extra.sum())) < 0.7,
        favourite[buyer[item_order[len(buyer) :]]],
        rng.integers(0, 6, int(extra.sum())),
    )
    item_product = np.concatenate([lead, _products(rng, item_category)])
    price = np.round(rng.gamma(3.0, 12.0, len(item_order)), 2)

    con.execute("create schema if not exists marts")
    ids = pa.array([f"c{i:07d}" for i in range(customers)])
    con.register("customers_arrow", pa.table({"customer_id": ids}))
    con.execute("create or replace table marts.customers as select * from customers_arrow")
    con.execute(
        "create or replace table marts.customer_erasures as "
        "select customer_id, cast(null as timestamp) as requested_at "
        "from marts.customers where false"
    )
    con.register(
        "items_arrow",
        pa.table(
            {
                "order_index": item_order,
                "product": item_product,
                "price": price,
                "customer": buyer[item_order],
                "ordered_at": _stamps(when[item_order]),
            }
        ),
    )
    con.execute(f"""
        create or replace table marts.order_items as
        select
            'o' || order_index || '-' || product as order_item_id,
            'o' || order_index as order_id,
            'c' || lpad(customer::varchar, 7, '0') as customer_id,
            'p-' || product as product_id,
            'SKU-' || lpad(product::varchar, 5, '0') as sku,
            'Product ' || product as product_name,
            {_category_sql("product")} as category,
            'USD' as currency,
            'completed' as order_status,
            cast(price as decimal(18, 2)) as price,
            1 as quantity,
            cast(price as decimal(18, 2)) as line_amount,
            ordered_at
        from (select distinct on (order_index, product) * from items_arrow)
    """)

    # Product views lead up to each purchased item, plus browsing of the favourite category;
    # a fifth of views add to cart. Page views at random, tickets after 10% of orders.
    views_before = rng.poisson(1.5, len(item_order))
    view_item = np.repeat(np.arange(len(item_order)), views_before)
    browse = rng.poisson(4, customers)
    browser = np.repeat(np.arange(customers), browse)
    view_customer = np.concatenate([buyer[item_order[view_item]], browser])
    view_product = np.concatenate([item_product[view_item], _products(rng, favourite[browser])])
    view_when = np.concatenate(
        [
            np.maximum(when[item_order[view_item]] - rng.exponential(2, len(view_item)), 0),
            first[browser] + rng.uniform(0, 1, len(browser)) * (DAYS - first[browser]),
        ]
    )
    added = rng.random(len(view_customer)) < 0.2
    pages = rng.poisson(6, customers)
    page_customer = np.repeat(np.arange(customers), pages)
    page_when = first[page_customer] + rng.uniform(0, 1, len(page_customer)) * (
        DAYS - first[page_customer]
    )
    ticket = rng.random(len(buyer)) < 0.1
    ticket_when = when[ticket] + rng.uniform(0.1, 5, int(ticket.sum()))

    kinds = [
        ("page", "Page Viewed", page_customer, page_when, None),
        ("track", "Product Viewed", view_customer, view_when, view_product),
        ("track", "Product Added", view_customer[added], view_when[added] + 0.001,
         view_product[added]),
        ("order", "Order Placed", buyer, when, None),
        ("ticket", "Ticket Opened", buyer[ticket], ticket_when, None),
    ]  # fmt: skip
    con.execute("""
        create or replace table marts.customer_events (
            event_id varchar, customer_id varchar, event_type varchar, event_name varchar,
            properties varchar, event_status varchar, revenue decimal(18, 2),
            occurred_at timestamp
        )
    """)
    order_revenue = np.bincount(item_order, weights=price, minlength=len(buyer))
    for index, (kind, name, who, days, product) in enumerate(kinds):
        keep = days <= DAYS
        columns = {
            "customer": who[keep],
            "occurred_at": _stamps(days[keep]),
            "product": product[keep] if product is not None else np.zeros(int(keep.sum()), int),
        }
        if kind == "order":
            columns["revenue"] = order_revenue[keep]
        con.register("events_arrow", pa.table(columns))
        revenue = "revenue" if kind == "order" else "null"
        status = "'completed'" if kind == "order" else ("'open'" if kind == "ticket" else "null")
        properties = (
            """'{"product_id": "p-' || product || '"}'""" if product is not None else "'{}'"
        )
        con.execute(f"""
            insert into marts.customer_events
            select
                '{index}-' || row_number() over () as event_id,
                'c' || lpad(customer::varchar, 7, '0') as customer_id,
                '{kind}', '{name}', {properties}, {status}, {revenue}, occurred_at
            from events_arrow
        """)
        con.unregister("events_arrow")
    return {
        table: con.execute(f"select count(*) from marts.{table}").fetchone()[0]
        for table in ("customers", "order_items", "customer_events")
    }


def _category_sql(product: str) -> str:
    names = ", ".join(f"'{name}'" for name in CATEGORIES)
    return f"[{names}][(({product} - 1) % {len(CATEGORIES)}) + 1]"
