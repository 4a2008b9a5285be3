{#- One row per graph edge dropped so that no customer breaks a limit (vars
    tessera_identity_limits, tessera_max_identifiers_per_customer): the identity_limits
    materialization splits the components that break one and records why. -#}
{{ config(materialized='identity_limits') }}

with

graph_edges as (
    select * from {{ ref('identity_graph_edges') }}
),

components as (
    select * from {{ ref('identity_components') }}
),

nodes as (
    select * from {{ ref('identity_nodes') }}
),

final as (
    select
        graph_edges.node_a,
        graph_edges.node_b,
        components.component_id,
        node_a.identifier_type as type_a,
        node_b.identifier_type as type_b,
        node_a.type_priority as type_priority_a,
        node_b.type_priority as type_priority_b,
        node_a.seed_rank as seed_rank_a,
        node_b.seed_rank as seed_rank_b
    from graph_edges
    inner join components on graph_edges.node_a = components.node_id
    inner join nodes as node_a on graph_edges.node_a = node_a.node_id
    inner join nodes as node_b on graph_edges.node_b = node_b.node_id
)

select * from final
