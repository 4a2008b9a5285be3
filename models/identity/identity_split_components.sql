{#- One row per node of a component that identity_limit_drops split, with its component after
    the dropped edges are gone (smallest node id). Only those components are recomputed. -#}
{{ config(materialized='connected_components') }}

with

graph_edges as (
    select * from {{ ref('identity_graph_edges') }}
),

components as (
    select * from {{ ref('identity_components') }}
),

drops as (
    select * from {{ ref('identity_limit_drops') }}
),

split as (
    select distinct component_id from drops
),

final as (
    select
        graph_edges.node_a,
        graph_edges.node_b
    from graph_edges
    inner join components on graph_edges.node_a = components.node_id
    inner join split on components.component_id = split.component_id
    left join drops
        on
            graph_edges.node_a = drops.node_a
            and graph_edges.node_b = drops.node_b
    where drops.node_a is null
)

select * from final
