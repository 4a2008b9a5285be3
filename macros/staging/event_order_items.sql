{#- Order items from the `products` array (JSON text, Segment's e-commerce spec v2) of each
    event order (event_orders), in the order_items contract's columns as text; none where the
    text is not a JSON array. None when the warehouse has no e-commerce event table. -#}
{% macro event_order_items(tracks_relation) -%}
    {%- set orders = tessera.event_orders(tracks_relation) -%}
    {%- if orders is none -%}
        {{ return(none) }}
    {%- endif -%}
    with

    event_orders as (
        {{ orders }}
    )

    select
        event_orders.order_id,
        {%- for key in ['product_id', 'sku', 'name', 'category', 'price', 'quantity'] %}
        {{ tessera.json_field_text('products.element', key) }} as {{ adapter.quote(key) }},
        {%- endfor %}
        event_orders._loaded_at
    from event_orders
    cross join {{ tessera.json_array_elements('event_orders.products', 'products') }}
{%- endmacro %}
