{#- One row per erased customer: the customer one of whose identifiers is the subject of a
    deletion request (macro erased_customers). The marts leave these customers out, and the sync
    engine removes them from every destination that received them. -#}
with

stg_privacy__deletion_requests as (
    select * from {{ ref('stg_privacy__deletion_requests') }}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

erased_customers as (
    {{ tessera.erased_customers('stg_privacy__deletion_requests', 'identity_customer_map') }}
),

final as (
    select
        -- ids
        customer_id,

        -- timestamps
        requested_at
    from erased_customers
)

select * from final
