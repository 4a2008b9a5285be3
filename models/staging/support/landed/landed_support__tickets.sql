{#- Every row of the raw support_tickets table as it landed, in the contract's columns as text. -#}
{{ tessera.land_source('support', 'support_tickets') }}
