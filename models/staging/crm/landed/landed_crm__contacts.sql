{#- Every row of the raw crm_contacts table as it landed, in the contract's columns as text. -#}
{{ tessera.land_source('crm', 'crm_contacts') }}
