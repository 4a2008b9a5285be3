{#- One row per node that has at least one edge, with the smallest node id of its connected
    component. The connected_components materialization turns the edge list below into
    components with large-star / small-star rounds until nothing changes. -#}
{{ config(materialized='connected_components') }}

select
    node_a,
    node_b
from {{ ref('identity_graph_edges') }}
