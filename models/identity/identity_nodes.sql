{#- One row per identifier that may link people (not blocked), numbered densely: the graph
    algorithm works on integers, not on strings. seed_rank orders the identifiers of one type by
    how much evidence they have (most observations, then earliest seen): when a customer holds
    more of a type than its limit allows, the best-ranked ones stay together. -#}
{%- set type_priority = var('tessera_identity_type_priority') -%}

with

identifiers as (
    select * from {{ ref('identity_identifiers') }}
),

final as (
    select
        identifier_type,
        identifier_value,
        row_number() over (order by identifier_type, identifier_value) as node_id,
        case identifier_type
            {%- for identifier_type in type_priority %}
                when '{{ identifier_type }}' then {{ loop.index }}
            {%- endfor %}
            else {{ type_priority | length + 1 }}
        end as type_priority,
        row_number() over (
            partition by identifier_type
            order by observation_count desc, first_seen_at asc, identifier_value asc
        ) as seed_rank
    from identifiers
    where not is_blocked
)

select * from final
