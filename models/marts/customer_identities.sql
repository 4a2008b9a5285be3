{#- One row per identifier of each customer, with when and in how many sources it was seen.
    Blocked identifiers belong to no customer and are not here; neither are erased customers. -#}
with

identity_observations as (
    select * from {{ ref('identity_observations') }}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

stg_privacy__deletion_requests as (
    select * from {{ ref('stg_privacy__deletion_requests') }}
),

erased_customers as (
    {{ tessera.erased_customers('stg_privacy__deletion_requests', 'identity_customer_map') }}
),

observed as (
    select
        identifier_type,
        identifier_value,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(distinct source_table) as source_count,
        count(*) as observation_count
    from identity_observations
    group by identifier_type, identifier_value
),

final as (
    select
        -- ids
        identity_customer_map.customer_id,

        -- strings
        identity_customer_map.identifier_type,
        identity_customer_map.identifier_value,

        -- numerics
        observed.source_count,
        observed.observation_count,

        -- timestamps
        observed.first_seen_at,
        observed.last_seen_at
    from identity_customer_map
    inner join observed
        on
            identity_customer_map.identifier_type = observed.identifier_type
            and identity_customer_map.identifier_value = observed.identifier_value
    left join erased_customers
        on identity_customer_map.customer_id = erased_customers.customer_id
    where erased_customers.customer_id is null
)

select * from final
