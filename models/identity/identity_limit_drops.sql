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

{#- recursive: for class_reach below; the other CTEs are plain. #}
with recursive

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

overrides as (
    select * from {{ ref('identity_override_requests') }}
    where refused_reason is null and action in ('always_link', 'never_link')
),

override_pairs as (
    select
        overrides.action,
        node_a.node_id as node_a,
        node_b.node_id as node_b,
        node_a.identifier_type = node_b.identifier_type as same_type
    from overrides
    inner join nodes as node_a
        on
            overrides.identifier_type = node_a.identifier_type
            and overrides.identifier_value = node_a.identifier_value
    inner join nodes as node_b
        on
            overrides.other_identifier_type = node_b.identifier_type
            and overrides.other_identifier_value = node_b.identifier_value
),

{#- Identifiers of one type always-linked to each other count once toward its limit: each gets
    the smallest node id of its class (always_link pairs of one type, taken transitively). #}

class_links as (
    select
        node_a,
        node_b
    from override_pairs
    where action = 'always_link' and same_type
    union all
    select
        node_b as node_a,
        node_a as node_b
    from override_pairs
    where action = 'always_link' and same_type
),

class_reach (node_id, reached_id) as (
    select
        node_a,
        node_b
    from class_links
    union
    select
        class_reach.node_id,
        class_links.node_b
    from class_reach
    inner join class_links on class_reach.reached_id = class_links.node_a
),

limit_keys as (
    select
        node_id,
        least(node_id, min(reached_id)) as limit_key
    from class_reach
    group by node_id
),

edges as (
    select
        graph_edges.node_a,
        graph_edges.node_b,
        'link' as edge_kind
    from graph_edges
    union all
    select
        node_a,
        node_b,
        'never_link' as edge_kind
    from override_pairs
    where action = 'never_link'
),

final as (
    select
        edges.node_a,
        edges.node_b,
        edges.edge_kind,
        components.component_id,
        node_a.identifier_type as type_a,
        node_b.identifier_type as type_b,
        node_a.type_priority as type_priority_a,
        node_b.type_priority as type_priority_b,
        node_a.seed_rank as seed_rank_a,
        node_b.seed_rank as seed_rank_b,
        coalesce(key_a.limit_key, edges.node_a) as limit_key_a,
        coalesce(key_b.limit_key, edges.node_b) as limit_key_b
    from edges
    inner join components on edges.node_a = components.node_id
    inner join nodes as node_a on edges.node_a = node_a.node_id
    inner join nodes as node_b on edges.node_b = node_b.node_id
    left join limit_keys as key_a on edges.node_a = key_a.node_id
    left join limit_keys as key_b on edges.node_b = key_b.node_id
)

select * from final
