{#- Every row of the raw orders table as it landed, in the contract's columns as text. Under the
    segment and rudderstack presets, orders from the e-commerce events (Order Completed,
    Refunded, Cancelled) follow, one row per order id (macro event_orders). -#}
{{ tessera.union_landed(
    'orders',
    tessera.land_source('shop', 'orders'),
    tessera.event_orders(source('segment', 'tracks')),
) }}
