{#- Every row of the raw orders table as it landed, in the contract's columns as text. Under the
    segment and rudderstack presets, orders from the e-commerce events (Order Completed,
    Refunded, Cancelled) follow, one row per order id (macro event_orders). -#}
{%- set shop_orders = tessera.land_source('shop', 'orders') -%}
{%- set event_orders = tessera.event_orders(source('segment', 'tracks')) -%}
{%- if event_orders is none %}
    {{ shop_orders }}
{%- else -%}
with

shop_orders as (
    {{ shop_orders }}
),

event_orders as (
    {{ event_orders }}
),

unioned as (
    {%- for relation in ['shop_orders', 'event_orders'] %}
    select
        {%- for name, data_type in tessera.source_contract('orders') %}
        {{ adapter.quote(name) }},
        {%- endfor %}
        _loaded_at
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select * from unioned
{%- endif %}
