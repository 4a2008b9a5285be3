{#- One row per linkable identifier with the cluster (person) it belongs to: its connected
    component, after the splits that keep every customer within the identity limits. An
    identifier without edges, or cut loose by a limit, is a cluster of its own. -#}
with

nodes as (
    select * from {{ ref('identity_nodes') }}
),

components as (
    select * from {{ ref('identity_components') }}
),

drops as (
    select * from {{ ref('identity_limit_drops') }}
),

split_components as (
    select * from {{ ref('identity_split_components') }}
),

split as (
    select distinct component_id from drops
),

final as (
    select
        nodes.identifier_type,
        nodes.identifier_value,
        nodes.node_id,
        case
            when split.component_id is not null
                then coalesce(split_components.component_id, nodes.node_id)
            else coalesce(components.component_id, nodes.node_id)
        end as cluster_id
    from nodes
    left join components on nodes.node_id = components.node_id
    left join split on components.component_id = split.component_id
    left join split_components on nodes.node_id = split_components.node_id
)

select * from final
