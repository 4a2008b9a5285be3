"""Benchmark: the console's audience questions and profile lookup at 1,000,000 customers.

Prints one JSON document. Builds a warehouse file straight from SQL, in a child process so its
memory is its own: every table the timed pages read, with the column names and types of the
real marts (``range()`` and hashes, no dbt run: the whole pipeline at 1,000,000 customers takes
many minutes). Rows land in load order, not by customer, as the pipeline writes them. Then the
console's own ``write_snapshot`` copies it into the snapshot the console reads (timed: it is the
last step of every build).
Three audiences of about 30%, 10% and 2% of the customers, overlapping (repeat buyers fit their
rule: 2+ completed orders, advertising consent, an email), and a membership history of 180
daily runs in which people enter, leave and come back.

Then times each question with the console's own reader (``SnapshotReader``: read-only, 1 GB,
2 threads), ``--repeat`` calls each on a reader of its own: the first call is cold (a fresh
connection, so DuckDB's buffer pool is empty; the file is in the OS page cache, as it was just
written), the others warm (the median is reported). Questions: the audience list
(``audience_summaries``), each audience's preview, two overlaps, the profile search by an email
typed in capitals (``find_customer``) and that customer's profile.

Target (the issue): an audience preview and an overlap answer in under 2 s at 1,000,000
customers, cold or warm.

    python bench/console_preview.py [--customers 1000000] [--events-per-customer 20]
        [--repeat 3] [--seed 42] [--memory-limit 4GB] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from orchestration.console.reader import snapshot_path, write_snapshot
from orchestration.warehouse import DuckDBSettings, Warehouse

TARGET_SECONDS = 2.0
WAREHOUSE_NAME = "bench.duckdb"
#: The last daily run of the snapshot's world; events and orders stop the day before.
LAST_RUN = "2026-12-06 02:00:00"
HISTORY_DAYS = 180
#: Audience, share of customers in it now, share that was ever in it over the history
#: (the others left), as the real audiences (models/audiences) are named.
AUDIENCES = (
    ("repeat_buyers", 0.30, 0.60),
    ("high_value_at_risk", 0.10, 0.40),
    ("browse_abandoners", 0.02, 0.20),
)
SYNCS = {
    "repeat_buyers": ("repeat_buyers_table", "table"),
    "high_value_at_risk": ("high_value_at_risk_file", "file"),
    "browse_abandoners": ("browse_abandoners_file", "file"),
}
OVERLAPS = (("repeat_buyers", "high_value_at_risk"), ("high_value_at_risk", "browse_abandoners"))
TIMED_KINDS = ("audience_preview", "overlap")
_STARTED = time.perf_counter()


def _progress(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- the snapshot -----------------------------------------------------------------------------

# Deterministic draws: u(key, tag) is uniform in [0, 1), pick(list, key, tag) one element.
MACROS = """
create temp macro u(key, tag) as (hash(key, {seed}, tag) % 1000000) / 1000000.0;
create temp macro pick(items, key, tag) as
    items[1 + (hash(key, {seed}, tag) % len(items))::bigint];
create temp macro customer_key(i) as printf('cus_%016x', hash(i, {seed}, 'customer'));
create temp macro hex32(key, tag) as
    printf('%016x%016x', hash(key, {seed}, tag), hash(key, {seed}, tag, 'low'));
create temp macro run_at(day) as
    timestamp '{last_run}' - to_days(({history_days} - 1 - day)::integer)
    + to_seconds((hash(day, {seed}, 'run') % 600)::bigint);
create temp macro before_last_run(key, tag, days) as
    timestamp '{last_run}' - to_seconds((u(key, tag) * days * 86400)::bigint) - interval 1 day;
"""

PEOPLE = """
create temp table people as
with draws as (
    select
        i,
        customer_key(i) as customer_id,
        u(i, 'repeat_buyers') as u_repeat_buyers,
        u(i, 'high_value_at_risk') as u_high_value_at_risk,
        u(i, 'browse_abandoners') as u_browse_abandoners,
        pick(['ana', 'ben', 'david', 'emma', 'grace', 'ines', 'jonas', 'kira', 'olga', 'pablo',
              'rosa', 'sam', 'vera', 'xenia', 'yusuf', 'zoe'], i, 'first') as first_name,
        pick(['adams', 'chen', 'kim', 'lopez', 'martin', 'okafor', 'rossi', 'smith', 'vogel',
              'walsh', 'zimmer'], i, 'last') as last_name,
        pick(['gmail.com', 'gmail.com', 'outlook.com', 'icloud.com', 'acme.io'], i, 'domain')
            as domain,
        before_last_run(i, 'first_seen', 730) as first_seen_at
    from range({customers}) as numbers (i)
),

flags as (
    select
        *,
        u_repeat_buyers < {repeat_share} as is_repeat_buyer,
        u_high_value_at_risk < {high_value_share} as is_high_value_at_risk,
        u_browse_abandoners < {browse_share} as is_browse_abandoner
    from draws
)

select
    *,
    is_repeat_buyer or is_high_value_at_risk or is_browse_abandoner or u(i, 'email') >= 0.25
        as has_email,
    u(i, 'phone') < 0.38 as has_phone,
    u(i, 'user') < 0.43 as has_user_id,
    u(i, 'crm') < 0.24 as has_crm_contact_id,
    u(i, 'shop') < 0.34 as has_shop_customer_ref,
    u(i, 'device') < 0.32 as has_device_id,
    case when u(i, 'anonymous') < 0.06 then 2 else 1 end as anonymous_ids,
    case
        when is_repeat_buyer then 2 + hash(i, 'orders') % 5
        when is_high_value_at_risk then 1 + hash(i, 'orders') % 3
        when u(i, 'orders') < 0.55 then 0
        else 1
    end::bigint as orders_count,
    is_repeat_buyer or is_browse_abandoner or u(i, 'consent_email') < 0.40
        as has_consent_email_marketing,
    is_repeat_buyer or u(i, 'consent_ads') < 0.15 as has_consent_advertising,
    u(i, 'consent_analytics') < 0.47 as has_consent_analytics
from flags
"""

CUSTOMERS = """
create table marts.customers as
with people as (
    select
        *,
        case
            when is_repeat_buyer then orders_count - (hash(i, 'refund') % (orders_count - 1))
            when u(i, 'completed') < 0.9 then orders_count
            else 0
        end::hugeint as completed_orders_count,
        round(20 + u(i, 'basket') * 80, 2)::decimal(18, 2) as basket
    from people
)

select
    customer_id,
    case when has_email then first_name || '.' || last_name || i || '@' || domain end as email,
    case when has_phone then printf('+1%010d', 2000000000 + i) end as phone,
    case when u(i, 'named') >= 0.18 then upper(first_name[1]) || first_name[2:] end as first_name,
    case when u(i, 'named') >= 0.18 then upper(last_name[1]) || last_name[2:] end as last_name,
    case when u(i, 'company') < 0.08 then 'Acme Corp' end as company,
    case
        when orders_count = 0 and u(i, 'channels') < 0.9 then null
        else pick(['web', 'web', 'web', 'app,web', 'app,web', 'app', 'pos', 'app,pos,web',
                   'pos,web'], i, 'channels')
    end as channels,
    case
        when u(i, 'categories') >= 0.45
            then pick(['shoes', 'beauty', 'home', 'outdoor', 'apparel', 'shoes,apparel,home',
                       'beauty,home', 'outdoor,shoes'], i, 'categories')
    end as top_categories,
    (hash(i, 'page_views') % 40)::hugeint as page_views_count,
    (hash(i, 'tracks') % 20)::hugeint as track_events_count,
    orders_count,
    completed_orders_count,
    (completed_orders_count * basket)::decimal(18, 2) as lifetime_revenue,
    case when completed_orders_count > 0 then basket end as average_order_value,
    (orders_count * 2)::bigint as distinct_products_count,
    (hash(i, 'tickets') % 3 = 0)::hugeint as support_tickets_count,
    (has_email::int + has_phone::int + has_user_id::int + has_crm_contact_id::int
        + has_shop_customer_ref::int + has_device_id::int + anonymous_ids)::bigint
        as identifiers_count,
    anonymous_ids::hugeint as anonymous_ids_count,
    has_user_id::hugeint as user_ids_count,
    has_email::hugeint as emails_count,
    has_phone::hugeint as phones_count,
    has_crm_contact_id::hugeint as crm_contact_ids_count,
    has_shop_customer_ref::hugeint as shop_customer_refs_count,
    has_device_id::hugeint as device_ids_count,
    has_consent_email_marketing,
    has_consent_advertising,
    has_consent_analytics,
    first_seen_at,
    first_seen_at + to_seconds(
        (u(i, 'last_seen') * epoch(timestamp '{last_run}' - interval 1 day - first_seen_at))
        ::bigint
    ) as last_seen_at,
    case when orders_count > 0 then first_seen_at + interval 2 hour end as first_order_at,
    case when orders_count > 0 then first_seen_at + to_days((orders_count * 20)::integer) end
        as last_order_at,
    first_seen_at + interval 1 day as consent_updated_at,
    timestamp '{last_run}' + interval 5 minute as _built_at,
    '2c2d4298ceb57b57bc6f7606cd5506b8' as _built_with
from people
order by i
"""

IDENTIFIERS = """
create temp table identifiers as
with customers as (
    select people.*, customers.email, customers.phone
    from people
    inner join marts.customers as customers on people.customer_id = customers.customer_id
),

typed as (
    select i, customer_id, first_seen_at, 'email' as identifier_type, email as identifier_value
    from customers where has_email
    union all
    select i, customer_id, first_seen_at, 'phone', phone from customers where has_phone
    union all
    select i, customer_id, first_seen_at, 'user_id', 'user_' || (100000 + i)
    from customers where has_user_id
    union all
    select i, customer_id, first_seen_at, 'crm_contact_id', 'crm_' || (500000 + i)
    from customers where has_crm_contact_id
    union all
    select i, customer_id, first_seen_at, 'shop_customer_ref', 'cus_' || (3000000 + i)
    from customers where has_shop_customer_ref
    union all
    select i, customer_id, first_seen_at, 'device_id', printf('%016X', hash(i, 'device'))
    from customers where has_device_id
    union all
    select
        i, customer_id, first_seen_at, 'anonymous_id',
        printf('%08x-%04x-%04x-%04x-%012x', hash(i, n, 'anon') >> 32,
               hash(i, n, 'anon') & 65535, hash(i, n, 'anon2') >> 48,
               (hash(i, n, 'anon2') >> 32) & 65535, hash(i, n, 'anon2') & 281474976710655)
    from customers, range(2) as stays (n)
    where n < anonymous_ids
)

select
    *,
    first_seen_at + to_seconds((u(identifier_value, 'seen') * 86400 * 200)::bigint)
        as last_seen_at,
    (1 + hash(identifier_value) % 80)::bigint as observation_count,
    (1 + hash(identifier_value) % 3)::bigint as source_count
from typed
"""

BLOCKED = """
create table identity.identity_blocked_identifiers as
select
    'email' as identifier_type,
    printf('shared.%d@example.com', n) as identifier_value,
    printf('shared: linked to %d anonymous_id values (more than 20)', 21 + n % 10)
        as blocked_reason
from range({blocked}) as numbers (n)
"""

IDENTITY_IDENTIFIERS = """
create table identity.identity_identifiers as
select
    identifier_type,
    identifier_value,
    first_seen_at,
    last_seen_at,
    observation_count,
    source_count,
    cast(null as varchar) as blocked_reason,
    false as is_blocked,
    timestamp '{last_run}' + interval 5 minute as _built_at
from identifiers
union all
select
    identifier_type,
    identifier_value,
    timestamp '{last_run}' - interval 300 day,
    timestamp '{last_run}' - interval 2 day,
    40::bigint,
    2::bigint,
    blocked_reason,
    true,
    timestamp '{last_run}' + interval 5 minute
from identity.identity_blocked_identifiers
"""

CUSTOMER_MAP = """
create table identity.identity_customer_map as
select identifier_type, identifier_value, customer_id from identifiers
"""

CUSTOMER_IDENTITIES = """
create table marts.customer_identities as
select
    customer_id,
    identifier_type,
    identifier_value,
    source_count,
    observation_count,
    first_seen_at,
    last_seen_at,
    timestamp '{last_run}' + interval 5 minute as _built_at
from identifiers
"""

# A star per customer: each identifier linked to the customer's first email, user id or
# browser, the pair in type order as identity_edges keeps it.
EDGES = """
create table identity.identity_edges as
with hubs as (
    select distinct on (i) i, identifier_type as hub_type, identifier_value as hub_value
    from identifiers
    order by
        i,
        case identifier_type when 'email' then 0 when 'user_id' then 1 else 2 end,
        identifier_value
),

pairs as (
    select
        identifiers.*,
        (hubs.hub_type, hubs.hub_value) < (identifiers.identifier_type,
                                           identifiers.identifier_value) as hub_first,
        hubs.hub_type,
        hubs.hub_value
    from identifiers
    inner join hubs on identifiers.i = hubs.i
    where (identifiers.identifier_type, identifiers.identifier_value)
        <> (hubs.hub_type, hubs.hub_value)
)

select
    case when hub_first then hub_type else identifier_type end as identifier_type_a,
    case when hub_first then hub_value else identifier_value end as identifier_value_a,
    case when hub_first then identifier_type else hub_type end as identifier_type_b,
    case when hub_first then identifier_value else hub_value end as identifier_value_b,
    'identifies' as first_source_table,
    printf('idf_%010d', hash(identifier_value) % 10000000000) as first_source_row_id,
    first_seen_at as first_observed_at,
    last_seen_at as last_observed_at,
    observation_count as evidence_count,
    timestamp '{last_run}' + interval 5 minute as updated_at
from pairs
"""

VIOLATIONS = """
create table identity.identity_violations as
select
    'anonymous_id' as identifier_type_a,
    printf('%08x-0000-0000-0000-%012x', n, n) as identifier_value_a,
    'email' as identifier_type_b,
    printf('shared.%d@example.com', n) as identifier_value_b,
    'type_limit' as rule,
    'one customer would hold 2 user_id identifiers (limit 1)' as reason,
    1 as resolution_round,
    'identifies' as first_source_table,
    printf('idf_%010d', n) as first_source_row_id,
    timestamp '{last_run}' - to_days((n % 300)::integer) as first_observed_at,
    1::bigint as evidence_count
from range({blocked}) as numbers (n)
"""

EMPTY_TABLES = """
create table identity.identity_merge_log (
    logged_at timestamp, customer_id varchar, previous_customer_id varchar,
    identifiers_moved bigint, event_type varchar
);
create table identity.identity_override_requests (
    override_id varchar, action varchar, identifier_type varchar, identifier_value varchar,
    other_identifier_type varchar, other_identifier_value varchar, created_by varchar,
    reason varchar, created_at timestamp, origin varchar, refused_reason varchar
);
create table activation.sync_failed_rows (
    sync_name varchar, record_key varchar, operation varchar, error varchar,
    attempts integer, parked boolean, first_failed_at timestamp, last_failed_at timestamp,
    last_run_id varchar
);
"""

ORDERS = """
create table marts.orders as
with people as (
    select people.i, people.customer_id, people.first_seen_at, customers.orders_count,
        customers.completed_orders_count, customers.average_order_value
    from people
    inner join marts.customers as customers on people.customer_id = customers.customer_id
    where customers.orders_count > 0
),

orders as (
    select *, unnest(range(orders_count)) as n from people
)

select
    printf('ord_%010d', i * 8 + n) as order_id,
    customer_id,
    pick(['USD', 'USD', 'USD', 'USD', 'EUR'], i, 'currency') as currency,
    case
        when n < completed_orders_count then 'completed'
        when hash(i, n, 'status') % 2 = 0 then 'cancelled'
        else 'refunded'
    end as order_status,
    pick(['web', 'web', 'app', 'pos'], i * 8 + n, 'channel') as channel,
    'attributed' as attribution_status,
    round(20 + u(i * 8 + n, 'amount') * 80, 2)::decimal(18, 2) as total_amount,
    case when n < completed_orders_count
        then round(20 + u(i * 8 + n, 'amount') * 80, 2)::decimal(18, 2) else 0 end
        as revenue,
    (n + 1)::bigint as order_sequence,
    n = 0 as is_first_order,
    first_seen_at + interval 2 hour + to_days((n * 20)::integer) as ordered_at
from orders
order by i, n
"""

# Events land in load order, not by customer: the profile's timeline scans for its customer.
EVENTS = """
create table marts.customer_events as
with draws as (
    select
        n,
        hash(n, {seed}, 'who') % {customers} as i,
        u(n, 'type') as type_draw,
        u(n, 'utm') as utm_draw
    from range({events}) as numbers (n)
),

typed as (
    select
        *,
        case
            when type_draw < 0.55 then 'page'
            when type_draw < 0.944 then 'track'
            when type_draw < 0.995 then 'order'
            else 'ticket'
        end as event_type,
        pick(['Product Viewed', 'Product Viewed', 'Product Viewed', 'Product Added',
              'Products Searched', 'Checkout Started', 'Order Completed',
              'Newsletter Subscribed'], n, 'track') as track_name,
        pick(['/', '/products', '/cart', '/blog', '/account', '/search', '/checkout'],
             n, 'path') as path
    from draws
)

select
    hex32(n, 'event') as event_id,
    case when u(n, 'orphan') >= 0.001 then customer_key(i) end as customer_id,
    case event_type
        when 'page' then 'pg_' when 'track' then 'tr_' when 'order' then 'ord_' else 'tk_'
    end || lpad(n::varchar, 10, '0') as source_row_id,
    event_type,
    case event_type
        when 'page' then 'Page Viewed'
        when 'track' then track_name
        when 'order' then 'Order Placed'
        else 'Ticket Opened'
    end as event_name,
    case event_type
        when 'page' then 'pages'
        when 'track' then 'tracks'
        when 'order' then 'orders'
        else 'support_tickets'
    end as source_table,
    case when event_type = 'page' then 'https://shop.example.com' || path end as page_url,
    case when event_type = 'page' then path end as page_path,
    case when event_type = 'page' and utm_draw < 0.2 then 'https://www.facebook.com/' end
        as referrer,
    case when utm_draw < 0.15
        then pick(['facebook', 'google', 'newsletter', 'instagram'], n, 'source') end
        as utm_source,
    case when utm_draw < 0.15 then pick(['social', 'cpc', 'email', 'organic'], n, 'medium') end
        as utm_medium,
    case when utm_draw < 0.15
        then pick(['black_friday', 'retargeting', 'spring_sale'], n, 'campaign') end
        as utm_campaign,
    case when event_type = 'track' and track_name like 'Product%'
        then printf('{{"product_id": "p-%d", "price": %.2f}}', 100 + hash(n, 'product') % 300,
                    20 + u(n, 'price') * 80)
    end as properties,
    case when event_type = 'order' then pick(['web', 'web', 'app', 'pos'], n, 'channel') end
        as channel,
    case when event_type = 'order'
        then pick(['completed', 'completed', 'completed', 'completed', 'completed',
                   'completed', 'completed', 'completed', 'refunded', 'cancelled'],
                  n, 'status')
    end as event_status,
    case when event_type = 'order' then pick(['USD', 'USD', 'USD', 'EUR'], n, 'currency') end
        as currency,
    case when event_type = 'order' then round(20 + u(n, 'revenue') * 80, 2)::decimal(18, 2) end
        as revenue,
    before_last_run(n, 'at', 730) as occurred_at,
    timestamp '{last_run}' + interval 5 minute as _built_at
from typed
"""

SCORES = """
create table marts.customer_churn_scores as
select
    people.customer_id,
    case
        when people.is_high_value_at_risk
            then pick(['high', 'high', 'medium'], people.i, 'tier')
        else pick(['high', 'high', 'high', 'high', 'high', 'high', 'high', 'medium', 'medium',
                   'low', 'low'], people.i, 'tier')
    end as risk_tier,
    'churn_logit-928dcf0c30c7' as model_version,
    u(people.i, 'churn') as churn_probability,
    u(people.i, 'alive') as p_alive,
    timestamp '{last_run}' + interval 30 minute as scored_at
from people
where people.orders_count > 0
"""

CLV = """
create table marts.customer_clv as
select
    people.customer_id,
    'week' as time_unit,
    (people.orders_count - 1)::bigint as frequency,
    u(people.i, 'recency') * 90 as recency,
    20 + u(people.i, 'age') * 80 as t,
    case when people.orders_count > 1 then 20 + u(people.i, 'basket') * 80 end
        as monetary_value,
    u(people.i, 'alive') as p_alive,
    u(people.i, 'purchases') * 3 as expected_purchases,
    20 + u(people.i, 'basket') * 80 as expected_average_value,
    case when people.is_high_value_at_risk then 200 + u(people.i, 'clv') * 800
        else u(people.i, 'clv') * 300 end as discounted_clv,
    52.0::double as horizon,
    0.1::double as discount_rate,
    cast(timestamp '{last_run}' - interval 37 day as date) as calibration_end_date,
    timestamp '{last_run}' + interval 30 minute as scored_at
from people
where people.orders_count > 0
"""

ERASURES = """
create table marts.customer_erasures as
select
    customer_key({customers} + n) as customer_id,
    before_last_run(n, 'erased', 300) as requested_at
from range({erasures}) as numbers (n)
"""

CONSENTS = """
create table staging.stg_privacy__consents as
with subjects as (
    select people.i, customers.email, purposes.purpose, purposes.is_granted
    from people
    inner join marts.customers as customers on people.customer_id = customers.customer_id
    cross join lateral (
        values
            ('email_marketing', customers.has_consent_email_marketing),
            ('advertising', customers.has_consent_advertising),
            ('analytics', customers.has_consent_analytics)
    ) as purposes (purpose, is_granted)
    where customers.email is not null
        and (purposes.is_granted or u(people.i, purposes.purpose) < 0.3)
),

records as (
    select *, unnest(range(1 + (hash(i, purpose, 'records') % 2)::bigint)) as n from subjects
)

select
    hex32(email || purpose || n, 'consent') as consent_record_id,
    'email' as subject_type,
    email as subject_value,
    purpose,
    pick(['signup_form', 'preference_center', 'crm_import'], i * 4 + n, 'source')
        as consent_source,
    case when n = 0 then is_granted else u(i * 4 + n, 'granted') < 0.5 end as is_granted,
    before_last_run(i, purpose, 700) - to_days((n * 30)::integer) as recorded_at
from records
"""

AUDIENCE_TABLES = {
    "repeat_buyers": """
create table audiences.audience_repeat_buyers as
select
    customers.customer_id, customers.email, customers.phone, customers.first_name,
    customers.last_name, customers.has_consent_email_marketing,
    customers.has_consent_advertising, customers.has_consent_analytics,
    customers.completed_orders_count, customers.lifetime_revenue, customers.last_order_at
from marts.customers as customers
inner join people on customers.customer_id = people.customer_id
where people.is_repeat_buyer
""",
    "high_value_at_risk": """
create table audiences.audience_high_value_at_risk as
select
    customers.customer_id, customers.email, customers.phone, customers.first_name,
    customers.last_name, customers.has_consent_email_marketing,
    customers.has_consent_advertising, customers.has_consent_analytics,
    scores.risk_tier, clv.discounted_clv, scores.churn_probability
from marts.customers as customers
inner join people on customers.customer_id = people.customer_id
inner join marts.customer_churn_scores as scores
    on customers.customer_id = scores.customer_id
inner join marts.customer_clv as clv on customers.customer_id = clv.customer_id
where people.is_high_value_at_risk
""",
    "browse_abandoners": """
create table audiences.audience_browse_abandoners as
select
    customers.customer_id, customers.email, customers.phone, customers.first_name,
    customers.last_name, customers.has_consent_email_marketing,
    customers.has_consent_advertising, customers.has_consent_analytics,
    (3 + hash(people.i, 'views') % 30)::hugeint as product_views_count,
    before_last_run(people.i, 'viewed', 7) as last_product_viewed_at
from marts.customers as customers
inner join people on customers.customer_id = people.customer_id
where people.is_browse_abandoner
""",
}

# Each customer who was ever in an audience stayed 1 to 3 times, each stay inside its own slot
# of the history (half of the first stays began at the first run); the last stay of a current
# member is still open. A run enters and exits people every day, up to the last.
HISTORY = """
create table audiences.audience_membership_history as
with pools as (
    {pools}
),

counted as (
    select *, (1 + hash(i, audience, 'stays') % 3)::bigint as stays from pools
),

stays as (
    select *, unnest(range(stays)) as stay from counted
),

slots as (
    select
        *,
        stay * ({history_days} // stays) as slot_start,
        (stay + 1) * ({history_days} // stays) - 1 as slot_end,
        is_member and stay = stays - 1 as is_open
    from stays
),

entries as (
    select
        *,
        case
            when stay = 0 and u(i, audience || 'first') < 0.5 then 0
            else slot_start + (
                hash(i, audience, stay, 'in') % (slot_end - slot_start + is_open::int)
            )::bigint
        end as entered_day
    from slots
)

select
    audience,
    customer_id,
    run_at(entered_day) as entered_at,
    case when not is_open
        then run_at(
            entered_day + 1 + (hash(i, audience, stay, 'out') % (slot_end - entered_day))::bigint
        )
    end as exited_at
from entries
"""

SYNC_RUNS = """
create table activation.sync_runs as
with syncs as (
    select * from (values {syncs}) as syncs (sync_name, audience, destination)
),

runs as (
    select syncs.*, days.day, audience_sizes.size
    from syncs
    cross join range({history_days} - 30, {history_days}) as days (day)
    inner join (
        {sizes}
    ) as audience_sizes on syncs.audience = audience_sizes.audience
)

select
    hex32(sync_name || day, 'run') as run_id,
    sync_name,
    audience,
    destination,
    'mirror' as mode,
    'succeeded' as status,
    false as dry_run,
    false as forced,
    false as full_resync,
    run_at(day) + interval 20 minute as started_at,
    run_at(day) + interval 21 minute as finished_at,
    size as source_rows,
    (size // 100)::bigint as planned_adds,
    (size // 200)::bigint as planned_changes,
    (size // 100)::bigint as planned_removes,
    0::bigint as planned_resends,
    (size // 50)::bigint as records_sent,
    (size // 50)::bigint as succeeded,
    0::bigint as failed,
    (1 + size // 5000)::bigint as requests,
    0::bigint as retries,
    0::bigint as rate_limited,
    0::bigint as parked,
    cast(null as varchar) as error
from runs
"""

SYNC_STATE = """
create table activation.sync_state as
with members as (
    {members}
)

select
    sync_name,
    customer_id as record_key,
    customer_id,
    'synced' as status,
    hex32(customer_id, 'fingerprint') as fingerprint,
    json_object('customer_id', customer_id, 'email', email, 'first_name', first_name,
                'last_name', last_name)::varchar as sent_fields,
    customer_id as destination_id,
    cast(null as varchar) as last_error,
    0 as attempts,
    0 as refusals,
    cast(null as timestamp) as parked_at,
    cast(null as varchar) as inflight_batch,
    cast(null as varchar) as inflight_operation,
    cast(null as varchar) as inflight_fingerprint,
    cast(null as varchar) as inflight_fields,
    cast(null as varchar) as change_id,
    cast(null as varchar) as change_fingerprint,
    run_at({history_days} - 30) + interval 20 minute as first_sent_at,
    run_at({history_days} - 1) + interval 20 minute as last_sent_at,
    run_at({history_days} - 1) + interval 20 minute as updated_at,
    hex32(sync_name || ({history_days} - 1), 'run') as last_run_id
from members
"""


def _build_steps(customers: int, events: int, seed: int) -> list[tuple[str, str]]:
    """Each table's SQL, in an order that lets later tables read earlier ones."""
    pools = "\n    union all\n    ".join(
        f"select i, customer_id, '{name}' as audience, u_{name} < {now} as is_member "
        f"from people where u_{name} < {ever}"
        for name, now, ever in AUDIENCES
    )
    syncs = ", ".join(
        f"('{sync}', 'audience_{name}', '{destination}')"
        for name, (sync, destination) in SYNCS.items()
    )
    sizes = "\n        union all\n        ".join(
        f"select 'audience_{name}' as audience, count(*) as size from audiences.audience_{name}"
        for name, *_ in AUDIENCES
    )
    members = "\n    union all\n    ".join(
        f"select '{sync}' as sync_name, customer_id, email, first_name, last_name "
        f"from audiences.audience_{name}"
        for name, (sync, _) in SYNCS.items()
    )
    fill = {
        "customers": customers,
        "events": events,
        "seed": seed,
        "blocked": max(10, customers // 500),
        "erasures": max(10, customers // 250),
        "history_days": HISTORY_DAYS,
        "last_run": LAST_RUN,
        "repeat_share": AUDIENCES[0][1],
        "high_value_share": AUDIENCES[1][1],
        "browse_share": AUDIENCES[2][1],
        "pools": pools,
        "syncs": syncs,
        "sizes": sizes,
        "members": members,
    }
    steps = [
        ("people", PEOPLE),
        ("marts.customers", CUSTOMERS),
        ("identifiers", IDENTIFIERS),
        ("identity.identity_blocked_identifiers", BLOCKED),
        ("identity.identity_identifiers", IDENTITY_IDENTIFIERS),
        ("identity.identity_customer_map", CUSTOMER_MAP),
        ("marts.customer_identities", CUSTOMER_IDENTITIES),
        ("identity.identity_edges", EDGES),
        ("identity.identity_violations", VIOLATIONS),
        ("empty tables", EMPTY_TABLES),
        ("marts.orders", ORDERS),
        ("marts.customer_events", EVENTS),
        ("marts.customer_churn_scores", SCORES),
        ("marts.customer_clv", CLV),
        ("marts.customer_erasures", ERASURES),
        ("staging.stg_privacy__consents", CONSENTS),
        *((f"audiences.audience_{name}", sql) for name, sql in AUDIENCE_TABLES.items()),
        ("audiences.audience_membership_history", HISTORY),
        ("activation.sync_runs", SYNC_RUNS),
        ("activation.sync_state", SYNC_STATE),
    ]
    return [(name, sql.format(**fill)) for name, sql in steps]


def build_snapshot(
    path: Path, customers: int, events_per_customer: int, seed: int, memory_limit: str
) -> dict[str, Any]:
    """Write the snapshot file; its row counts and a customer to look up."""
    temp = path.parent / "duckdb-temp"
    temp.mkdir(exist_ok=True)
    con = duckdb.connect(
        str(path), config={"memory_limit": memory_limit, "temp_directory": str(temp)}
    )
    try:
        con.execute(MACROS.format(seed=seed, last_run=LAST_RUN, history_days=HISTORY_DAYS))
        for schema in ("marts", "identity", "staging", "audiences", "activation"):
            con.execute(f"create schema {schema}")
        for name, sql in _build_steps(customers, customers * events_per_customer, seed):
            started = time.perf_counter()
            con.execute(sql)
            _progress(f"built {name} in {time.perf_counter() - started:.1f}s")
        # Someone in two audiences with an email, so the profile has memberships to list; not
        # the least customer_id, which row groups' min/max statistics would find too easily.
        customer_id, email = con.execute(
            "select customers.customer_id, customers.email from people "
            "inner join marts.customers as customers on people.customer_id = customers.customer_id "
            "where people.is_repeat_buyer and people.is_high_value_at_risk "
            "and customers.email is not null and people.i >= ? order by people.i limit 1",
            [customers // 2],
        ).fetchone()
        rows = {
            f"{schema}.{table}": con.execute(f"select count(*) from {schema}.{table}").fetchone()[0]
            for schema, table in con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = current_database() and table_type = 'BASE TABLE' "
                "order by all"
            ).fetchall()
        }
        con.execute("drop table people")
        con.execute("drop table identifiers")
        con.execute("checkpoint")
    finally:
        con.close()
    warehouse = Warehouse(
        target="local", duckdb_path=path, duckdb_settings=DuckDBSettings(memory_limit, 2, temp)
    )
    started = time.perf_counter()
    write_snapshot(warehouse)
    snapshot_seconds = time.perf_counter() - started
    _progress(f"wrote the console snapshot in {snapshot_seconds:.1f}s")
    shutil.rmtree(temp, ignore_errors=True)
    return {
        "rows": rows,
        "sample_customer_id": customer_id,
        "sample_email": email,
        "snapshot_path": str(snapshot_path(warehouse)),
        "snapshot_seconds": round(snapshot_seconds, 1),
        "warehouse_bytes": path.stat().st_size,
    }


# --- the questions ----------------------------------------------------------------------------


def _timed_reader(path: Path):
    """The console's reader, noting each statement's seconds (imported here: the build child
    needs only DuckDB)."""
    from orchestration.console.reader import SnapshotReader

    class TimedReader(SnapshotReader):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.statements: list[tuple[float, str]] = []

        def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]:
            started = time.perf_counter()
            try:
                return super()._run(sql, params)
            finally:
                self.statements.append((time.perf_counter() - started, sql))

    return TimedReader(path)


def _questions(sample: dict[str, Any]) -> list[tuple[str, str, Callable[[Any], dict]]]:
    """(kind, argument, ask) per question; ``ask(reader)`` returns a few figures of the answer
    so the JSON shows the questions were answered."""
    from orchestration.console import pages
    from orchestration.console.access import Masker

    masked = Masker(full=False)

    def summaries(reader) -> dict:
        return {
            s.name: [s.size, s.entered_7d, s.exited_7d] for s in pages.audience_summaries(reader)
        }

    def preview(name: str) -> Callable[[Any], dict]:
        def ask(reader) -> dict:
            found = pages.audience_preview(reader, f"audience_{name}", masked)
            return {
                "size": found.size,
                "history_days": len(found.history),
                "reachable_with_consent": found.reachable_with_consent,
                "sample_rows": len(found.sample),
            }

        return ask

    def overlap(first: str, second: str) -> Callable[[Any], dict]:
        def ask(reader) -> dict:
            found = pages.overlap(reader, f"audience_{first}", f"audience_{second}")
            return {"first": found.first_size, "second": found.second_size, "both": found.both}

        return ask

    def find(reader) -> dict:
        found = pages.find_customer(reader, sample["sample_email"].upper())
        if found.customer_id != sample["sample_customer_id"]:
            raise RuntimeError(f"find_customer found {found.customer_id}, not the sample")
        return {"customer_id": found.customer_id}

    def profile(reader) -> dict:
        found = pages.profile(reader, sample["sample_customer_id"], masked)
        assert found.explanation is not None
        return {
            "timeline_total": found.timeline_total,
            "identifiers": len(found.explanation.identifiers),
            "links": len(found.explanation.links),
            "consents": len(found.consents),
            "memberships": len(found.memberships),
            "deliveries": len(found.deliveries),
        }

    return [
        ("audience_summaries", "", summaries),
        *(("audience_preview", name, preview(name)) for name, *_ in AUDIENCES),
        *(("overlap", f"{a} & {b}", overlap(a, b)) for a, b in OVERLAPS),
        ("find_customer", "email in capitals", find),
        ("profile", "sample customer", profile),
    ]


def time_question(path: Path, ask: Callable[[Any], dict], repeat: int) -> dict[str, Any]:
    """``repeat`` calls on a fresh reader: the first cold, the others warm."""
    reader = _timed_reader(path)
    seconds, cold_statements, answer = [], [], {}
    try:
        for call in range(repeat):
            reader.statements.clear()
            started = time.perf_counter()
            answer = ask(reader)
            seconds.append(time.perf_counter() - started)
            if call == 0:
                cold_statements = list(reader.statements)
    finally:
        reader.close()
    slowest = max(cold_statements, default=(0.0, ""))
    return {
        "cold_seconds": round(seconds[0], 3),
        "warm_median_seconds": round(statistics.median(seconds[1:]), 3) if repeat > 1 else None,
        "statements": len(cold_statements),
        "cold_sql_seconds": round(sum(taken for taken, _ in cold_statements), 3),
        "slowest_cold_statement": {
            "seconds": round(slowest[0], 3),
            "sql": " ".join(slowest[1].split())[:160],
        },
        "answer": answer,
    }


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events-per-customer", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="calls per question (first cold)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB's, while building")
    parser.add_argument(
        "--workdir", type=Path, help="build the snapshot here, and keep it (default: a temp folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder's snapshot")
    parser.add_argument("--child-build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.child_build:
        built = build_snapshot(
            args.child_build, args.customers, args.events_per_customer, args.seed,
            args.memory_limit,
        )  # fmt: skip
        print(json.dumps(built))
        return

    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(tempfile.mkdtemp(prefix="tessera-console-"))
            if not args.keep:
                stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        path = workdir / WAREHOUSE_NAME
        path.unlink(missing_ok=True)
        _progress(f"building {path} at {args.customers:,} customers")
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--child-build", str(path),
             "--customers", str(args.customers),
             "--events-per-customer", str(args.events_per_customer),
             "--seed", str(args.seed), "--memory-limit", args.memory_limit],
            stdout=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        if child.returncode:
            raise SystemExit(f"bench: building the snapshot failed (exit {child.returncode})")
        build_seconds = time.perf_counter() - started
        built = json.loads(child.stdout)
        path = Path(built["snapshot_path"])
        _progress(f"built the snapshot in {build_seconds:.1f}s, {path.stat().st_size:,} bytes")

        questions = []
        for kind, argument, ask in _questions(built):
            timed = time_question(path, ask, args.repeat)
            questions.append({"question": kind, "argument": argument, **timed})
            _progress(
                f"{kind} {argument}: cold {timed['cold_seconds']}s, "
                f"warm {timed['warm_median_seconds']}s"
            )
        report = _report(args, build_seconds, path, built, questions)
        if args.keep or args.workdir:
            report["snapshot"]["path"] = str(path)
    print(json.dumps(report, indent=2))


def _report(
    args: argparse.Namespace,
    build_seconds: float,
    path: Path,
    built: dict[str, Any],
    questions: list[dict[str, Any]],
) -> dict[str, Any]:
    worst: dict[str, dict[str, Any]] = {}
    for question in questions:
        figures = worst.setdefault(
            question["question"], {"cold_seconds": 0.0, "warm_median_seconds": 0.0}
        )
        for key in figures:
            figures[key] = max(figures[key], question[key] or 0.0)
    timed = [worst[kind][key] for kind in TIMED_KINDS for key in worst[kind]]
    return {
        "benchmark": "console_preview",
        "customers": args.customers,
        "events_per_customer": args.events_per_customer,
        "seed": args.seed,
        "repeat": args.repeat,
        "machine": {
            "cpu_count": os.cpu_count(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "duckdb_version": duckdb.__version__,
            "build_memory_limit": args.memory_limit,
            # Other work on the machine slows the questions down; this says how much there was.
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        },
        "snapshot": {
            "build_seconds": round(build_seconds, 1),
            # write_snapshot alone: what the console's snapshot adds to every build.
            "write_snapshot_seconds": built["snapshot_seconds"],
            "warehouse_bytes": built["warehouse_bytes"],
            "file_bytes": path.stat().st_size,
            "rows": built["rows"],
            "build_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        },
        "questions": questions,
        "worst": worst,
        "target_seconds": TARGET_SECONDS,
        "target_applies_to": list(TIMED_KINDS),
        "meets_target": max(timed) < TARGET_SECONDS,
        # This process only asked the questions, as the console would: the build was a child's.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


if __name__ == "__main__":
    main()
