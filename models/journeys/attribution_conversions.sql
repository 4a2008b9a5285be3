{#- One row per conversion attribution credits: every completed order (its revenue), and every
    customer event var tessera_attribution_conversion_events names (worth its numeric `revenue`
    property, else 0). An order without a customer is kept: it has no sessions, so attribution
    credits it to direct. -#}
{%- set events = var('tessera_attribution_conversion_events') or [] %}

with

orders as (
    select * from {{ ref('orders') }}
)
{%- if events %},

customer_events as (
    select * from {{ ref('customer_events') }}
)
{%- endif %}

select
    order_id as conversion_id,
    'order' as conversion_type,
    'Order Completed' as conversion_name,
    customer_id,
    ordered_at as converted_at,
    cast(revenue as double precision) as revenue
from orders
where order_status = 'completed'
{%- if events %}

union all

select
    event_id as conversion_id,
    'event' as conversion_type,
    event_name as conversion_name,
    customer_id,
    occurred_at as converted_at,
    coalesce(
        cast({{ tessera.safe_cast_number(
            tessera.json_field_text(tessera.try_parse_json('properties'), 'revenue'), 'decimal(18, 2)'
        ) }} as double precision),
        0
    ) as revenue
from customer_events
where event_name in ({{ tessera.quoted_list(events) }})
{%- endif %}
