{#- One row per graph edge dropped so that no customer breaks a limit (vars
    tessera_identity_limits, tessera_max_identifiers_per_customer): the identity_limits
    materialization splits the components that break one and records why.

    Incremental: a run works only on the components identity_components re-solved since it
    last ran (whether a component breaks a limit depends on its identifiers alone, and an
    identifier's rank among those of its type on its own evidence), adds the drops it finds, and
    the post-hook deletes the stored drops of components re-solved after them, or gone. Drops
    found under other settings (limits, cap, type priority) make the run work on every
    component. -#}
{{ config(
    materialized='identity_limits',
    solve_incrementally=true,
    post_hook="{{ tessera.delete_stale_limit_drops() }}",
) }}
{%- set incremental = tessera.limits_solve_incrementally() %}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),
{%- endif %}

graph_edges as (
    select * from {{ ref('identity_graph_edges') }}
),

components as (
    select components.*
    from {{ ref('identity_components') }} as components
    {%- if incremental %}
    cross join last_built
    where components._built_at > last_built.built_at
    {%- endif %}
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
