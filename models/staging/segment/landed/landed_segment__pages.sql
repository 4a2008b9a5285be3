{#- Every row of the raw pages table as it landed, in the contract's columns as text. -#}
{{ tessera.land_source('segment', 'pages') }}
