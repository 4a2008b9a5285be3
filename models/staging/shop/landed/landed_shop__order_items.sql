{#- Every row of the raw order_items table as it landed, in the contract's columns as text. -#}
{{ tessera.land_source('shop', 'order_items') }}
