{#- One row per linkable identifier with the cluster (person) it belongs to. An identifier without
    edges is a cluster of its own. -#}
with

nodes as (
    select * from {{ ref('identity_nodes') }}
),

components as (
    select * from {{ ref('identity_components') }}
),

final as (
    select
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.node_id,
        coalesce(components.component_id, nodes.node_id) as cluster_id
    from nodes
    left join components on nodes.node_id = components.node_id
)

select * from final
