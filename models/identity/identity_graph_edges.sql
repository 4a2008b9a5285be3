{#- One row per edge between two linkable identifiers, as node ids; blocked identifiers drop out
    here, so they can never join two people. -#}
with

edges as (
    select * from {{ ref('identity_edges') }}
),

nodes as (
    select * from {{ ref('identity_nodes') }}
),

final as (
    select
        node_a.node_id as node_a,
        node_b.node_id as node_b
    from edges
    inner join nodes as node_a
        on
            edges.identifier_type_a = node_a.identifier_type
            and edges.identifier_value_a = node_a.identifier_value
    inner join nodes as node_b
        on
            edges.identifier_type_b = node_b.identifier_type
            and edges.identifier_value_b = node_b.identifier_value
)

select * from final
