{#- One row per edge between two linkable identifiers, as node ids: the links seen in the sources
    (identity_edges) and the always_link overrides in force (identity_override_requests), which
    the per-type limits never cut (identity_limit_drops). Blocked identifiers drop out here, so
    they can never join two people; an override naming one links nothing. -#}
with

edges as (
    select * from {{ ref('identity_edges') }}
),

always_links as (
    select * from {{ ref('identity_override_requests') }}
    where action = 'always_link' and refused_reason is null
),

nodes as (
    select * from {{ ref('identity_nodes') }}
),

observed as (
    select
        node_a.node_id as node_a,
        node_b.node_id as node_b,
        false as is_override
    from edges
    inner join nodes as node_a
        on
            edges.identifier_type_a = node_a.identifier_type
            and edges.identifier_value_a = node_a.identifier_value
    inner join nodes as node_b
        on
            edges.identifier_type_b = node_b.identifier_type
            and edges.identifier_value_b = node_b.identifier_value
),

overridden as (
    select
        node_a.node_id as node_a,
        node_b.node_id as node_b,
        true as is_override
    from always_links
    inner join nodes as node_a
        on
            always_links.identifier_type = node_a.identifier_type
            and always_links.identifier_value = node_a.identifier_value
    inner join nodes as node_b
        on
            always_links.other_identifier_type = node_b.identifier_type
            and always_links.other_identifier_value = node_b.identifier_value
),

final as (
    select * from observed
    union all
    select overridden.*
    from overridden
    left join observed
        on
            overridden.node_a = observed.node_a
            and overridden.node_b = observed.node_b
    where observed.node_a is null
)

select * from final
