{#- One row per identifier that may link people (not blocked), numbered densely: the graph
    algorithm works on integers, not on strings. -#}
with

identifiers as (
    select * from {{ ref('identity_identifiers') }}
),

final as (
    select
        identifier_type,
        identifier_value,
        row_number() over (order by identifier_type, identifier_value) as node_id
    from identifiers
    where not is_blocked
)

select * from final
