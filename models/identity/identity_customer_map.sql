{#- One row per linkable identifier with its stable customer id: the latest assignment in
    identity_customer_registry. -#}
with

registry as (
    select * from {{ ref('identity_customer_registry') }}
),

ranked as (
    select
        identifier_type,
        identifier_value,
        customer_id,
        row_number() over (
            partition by identifier_type, identifier_value order by assigned_at desc
        ) as recency
    from registry
),

final as (
    select
        identifier_type,
        identifier_value,
        customer_id
    from ranked
    where recency = 1 and customer_id is not null
)

select * from final
