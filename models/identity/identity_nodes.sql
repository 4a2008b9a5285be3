{#- One row per identifier that may link people (not blocked), with its node id: the graph
    algorithm works on integers, not on strings, and identity_node_ids keeps each identifier's
    for good. seed_rank orders the identifiers of one type by how much evidence they have (most
    observations, then earliest seen): when a customer holds more of a type than its limit
    allows, the best-ranked ones stay together. -#}
with

identifiers as (
    select * from {{ ref('identity_identifiers') }}
),

node_ids as (
    select * from {{ ref('identity_node_ids') }}
),

final as (
    select
        identifiers.identifier_type,
        identifiers.identifier_value,
        node_ids.node_id,
        {{ tessera.identifier_type_rank('identifiers.identifier_type') }} as type_priority,
        row_number() over (
            partition by identifiers.identifier_type
            order by
                identifiers.observation_count desc,
                identifiers.first_seen_at asc,
                identifiers.identifier_value asc
        ) as seed_rank
    from identifiers
    inner join node_ids
        on
            identifiers.identifier_type = node_ids.identifier_type
            and identifiers.identifier_value = node_ids.identifier_value
    where not identifiers.is_blocked
)

select * from final
