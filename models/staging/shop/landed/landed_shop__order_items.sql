{#- Every row of the raw order_items table as it landed, in the contract's columns as text. Under
    the segment and rudderstack presets, the products of the orders from e-commerce events follow
    (macro event_order_items). -#}
{%- set shop_items = tessera.land_source('shop', 'order_items') -%}
{%- set event_items = tessera.event_order_items(source('segment', 'tracks')) -%}
{%- if event_items is none %}
    {{ shop_items }}
{%- else -%}
with

shop_items as (
    {{ shop_items }}
),

event_items as (
    {{ event_items }}
),

unioned as (
    {%- for relation in ['shop_items', 'event_items'] %}
    select
        {%- for name, data_type in tessera.source_contract('order_items') %}
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
