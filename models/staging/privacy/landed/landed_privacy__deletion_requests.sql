{#- Every row of the raw deletion_requests table as it landed, in the contract's columns as
    text. -#}
{{ tessera.land_source('privacy', 'deletion_requests') }}
