{#- One row per identifier of a candidate's neighbourhood (identity_shared_evidence_nodes) linked
    to another identifier of that neighbourhood, with its group: the smallest evidence_node_id of
    its connected component. Each neighbourhood is its own graph (its nodes are numbered apart);
    an identifier of one without such a link is a group of its own. -#}
{{ config(materialized='connected_components') }}

with

edges as (
    select * from {{ ref('identity_edges') }}
),

nodes as (
    select * from {{ ref('identity_shared_evidence_nodes') }}
    where not is_candidate
),

final as (
    select
        node_a.evidence_node_id as node_a,
        node_b.evidence_node_id as node_b
    from edges
    inner join nodes as node_a
        on
            edges.identifier_type_a = node_a.identifier_type
            and edges.identifier_value_a = node_a.identifier_value
    inner join nodes as node_b
        on
            edges.identifier_type_b = node_b.identifier_type
            and edges.identifier_value_b = node_b.identifier_value
            and node_a.candidate_type = node_b.candidate_type
            and node_a.candidate_value = node_b.candidate_value
)

select * from final
