{#- One row per event on the customer timeline: page views, tracks, orders and support tickets.
    An event whose identifiers resolve to no customer (all blocked) is kept with customer_id null,
    so the timeline holds every valid source row; events of erased customers are not here.
    Orders come from the orders mart, so both agree on who placed each order.

    Incremental: a run rebuilds only the page views and tracks staged since this model last ran,
    and those whose identifiers changed customer since (identity_customer_registry); orders and
    tickets are rebuilt whole. Before that, the pre-hooks delete what can no longer stand: the
    events of customers erased since, the orders and tickets, and the page views and tracks that
    left staging (deleted or rejected at their source). A withdrawn deletion request is only
    seen by a --full-refresh. -#}
{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook=[
        "{{ tessera.delete_rebuilt_customer_events() }}",
        "{{ tessera.delete_erased_customers() }}",
        "{{ tessera.delete_unstaged_events('pages', ref('stg_segment__pages'), 'page_view_id') }}",
        "{{ tessera.delete_unstaged_events('tracks', ref('stg_segment__tracks'), 'track_id') }}",
    ],
) }}
{#- A login names one person; a device can be shared, an anonymous id is one browser. -#}
{%- set page_identifiers = [('user_id', 'user_id'), ('anonymous_id', 'anonymous_id')] -%}
{%- set track_identifiers = [
    ('user_id', 'user_id'),
    ('device_id', 'device_id'),
    ('anonymous_id', 'anonymous_id'),
] -%}
{%- set ticket_identifiers = [('email', 'requester_email')] -%}
{%- set null_string = 'cast(null as ' ~ dbt.type_string() ~ ')' -%}
{%- set null_amount = 'cast(null as decimal(18, 2))' -%}
{%- set incremental = tessera.builds_incrementally() %}
-- depends_on: {{ ref('identity_customer_registry') }}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),

changed_identifiers as (
    select distinct * from (
        {{ tessera.identifiers_stamped_since_built('identity_customer_registry', 'assigned_at') }}
    ) as reassigned
),
{%- endif %}

stg_segment__pages as{{ tessera.materialized_cte(incremental or none) }} (
    {{ tessera.events_to_rebuild(
        ref('stg_segment__pages'), page_identifiers, incremental
    ) }}
),

stg_segment__tracks as{{ tessera.materialized_cte(incremental or none) }} (
    {{ tessera.events_to_rebuild(
        ref('stg_segment__tracks'), track_identifiers, incremental
    ) }}
),

stg_support__tickets as (
    select * from {{ ref('stg_support__tickets') }}
),

orders as (
    select * from {{ ref('orders') }}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
),

pages_resolved as (
    {{ tessera.resolve_customer_id(
        'stg_segment__pages', 'identity_customer_map', page_identifiers
    ) }}
),

tracks_resolved as (
    {{ tessera.resolve_customer_id(
        'stg_segment__tracks', 'identity_customer_map', track_identifiers
    ) }}
),

tickets_resolved as (
    {{ tessera.resolve_customer_id(
        'stg_support__tickets', 'identity_customer_map', ticket_identifiers
    ) }}
),

page_events as (
    select
        customer_id,
        'page' as event_type,
        'Page Viewed' as event_name,
        'pages' as source_table,
        page_view_id as source_row_id,
        url as page_url,
        path as page_path,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        {{ null_string }} as properties,
        {{ null_string }} as channel,
        {{ null_string }} as event_status,
        {{ null_string }} as currency,
        {{ null_amount }} as revenue,
        viewed_at as occurred_at
    from pages_resolved
),

track_events as (
    select
        customer_id,
        'track' as event_type,
        event_name,
        'tracks' as source_table,
        track_id as source_row_id,
        {{ null_string }} as page_url,
        {{ null_string }} as page_path,
        {{ null_string }} as referrer,
        {{ null_string }} as utm_source,
        {{ null_string }} as utm_medium,
        {{ null_string }} as utm_campaign,
        properties,
        {{ null_string }} as channel,
        {{ null_string }} as event_status,
        {{ null_string }} as currency,
        {{ null_amount }} as revenue,
        tracked_at as occurred_at
    from tracks_resolved
),

order_events as (
    select
        customer_id,
        'order' as event_type,
        'Order Placed' as event_name,
        'orders' as source_table,
        order_id as source_row_id,
        {{ null_string }} as page_url,
        {{ null_string }} as page_path,
        {{ null_string }} as referrer,
        {{ null_string }} as utm_source,
        {{ null_string }} as utm_medium,
        {{ null_string }} as utm_campaign,
        {{ null_string }} as properties,
        channel,
        order_status as event_status,
        currency,
        revenue,
        ordered_at as occurred_at
    from orders
    where attribution_status != 'erased'
),

ticket_events as (
    select
        customer_id,
        'ticket' as event_type,
        'Ticket Opened' as event_name,
        'support_tickets' as source_table,
        ticket_id as source_row_id,
        {{ null_string }} as page_url,
        {{ null_string }} as page_path,
        {{ null_string }} as referrer,
        {{ null_string }} as utm_source,
        {{ null_string }} as utm_medium,
        {{ null_string }} as utm_campaign,
        {{ null_string }} as properties,
        channel,
        ticket_status as event_status,
        {{ null_string }} as currency,
        {{ null_amount }} as revenue,
        created_at as occurred_at
    from tickets_resolved
),

unioned as (
    select * from page_events
    union all
    select * from track_events
    union all
    select * from order_events
    union all
    select * from ticket_events
),

final as (
    select
        -- ids
        {{ tessera.surrogate_key(['unioned.source_table', 'unioned.source_row_id']) }}
            as event_id,
        unioned.customer_id,
        unioned.source_row_id,

        -- strings
        unioned.event_type,
        unioned.event_name,
        unioned.source_table,
        unioned.page_url,
        unioned.page_path,
        unioned.referrer,
        unioned.utm_source,
        unioned.utm_medium,
        unioned.utm_campaign,
        unioned.properties,
        unioned.channel,
        unioned.event_status,
        unioned.currency,

        -- numerics
        unioned.revenue,

        -- timestamps
        unioned.occurred_at,
        {{ tessera.run_timestamp() }} as _built_at
    from unioned
    left join customer_erasures on unioned.customer_id = customer_erasures.customer_id
    where customer_erasures.customer_id is null
)

select * from final
