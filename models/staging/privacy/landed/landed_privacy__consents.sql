{#- Every row of the raw consents table as it landed, in the contract's columns as text. -#}
{{ tessera.land_source('privacy', 'consents') }}
