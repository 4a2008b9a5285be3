{#- Every row of the raw orders table as it landed, in the contract's columns as text. -#}
{{ tessera.land_source('shop', 'orders') }}
