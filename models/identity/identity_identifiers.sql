{#- One row per distinct identifier, with when and where it was seen and whether it is blocked
    from linking people. -#}
with

observations as (
    select * from {{ ref('identity_observations') }}
),

blocked as (
    select * from {{ ref('identity_blocked_identifiers') }}
),

aggregated as (
    select
        identifier_type,
        identifier_value,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as observation_count,
        count(distinct source_table) as source_count
    from observations
    group by identifier_type, identifier_value
),

final as (
    select
        aggregated.identifier_type,
        aggregated.identifier_value,
        aggregated.first_seen_at,
        aggregated.last_seen_at,
        aggregated.observation_count,
        aggregated.source_count,
        blocked.blocked_reason,
        blocked.identifier_type is not null as is_blocked
    from aggregated
    left join blocked
        on
            aggregated.identifier_type = blocked.identifier_type
            and aggregated.identifier_value = blocked.identifier_value
)

select * from final
