{#- Every row of the raw order_items table as it landed, in the contract's columns as text. Under
    the segment and rudderstack presets, the products of the orders from e-commerce events follow
    (macro event_order_items). -#}
{{ tessera.union_landed(
    'order_items',
    tessera.land_source('shop', 'order_items'),
    tessera.event_order_items(source('segment', 'tracks')),
) }}
