{#- One row per node that has at least one edge, with the smallest node id of its connected
    component. The connected_components materialization turns the edge list below into
    components with large-star / small-star rounds until nothing changes.

    Incremental (config solve_incrementally): node ids are stable (identity_node_ids), so a run
    re-solves only the components touched since it last ran: those holding an identifier
    aggregated again by identity_identifiers (observed, withdrawn, blocked or unblocked since)
    or withdrawn from it. An edge can only appear or vanish where such an identifier is one of
    its ends (an override added or withdrawn counts as a change of both of its identifiers,
    identity_override_log), so the stored components of those identifiers and the identifiers
    themselves are whole components of the new graph: their edges, with a self-loop per node to
    name the nodes whose stored rows are replaced, are all the materialization solves. -#}
{{ config(materialized='connected_components', solve_incrementally=true) }}
{%- set incremental = tessera.solves_incrementally() %}
-- depends_on: {{ ref('identity_identifiers') }}
-- depends_on: {{ ref('identity_retracted_observations') }}
-- depends_on: {{ ref('identity_node_ids') }}
-- depends_on: {{ ref('identity_override_log') }}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),

changed_identifiers as (
    {{ tessera.identifiers_stamped_since_built('identity_identifiers', '_built_at') }}
    union
    {{ tessera.identifiers_stamped_since_built('identity_retracted_observations', 'retracted_at') }}
    union
    select
        logged.identifier_type,
        logged.identifier_value
    from {{ ref('identity_override_log') }} as logged
    cross join last_built
    where logged.logged_at > last_built.built_at and logged.action <> 'ignore'
    union
    select
        logged.other_identifier_type,
        logged.other_identifier_value
    from {{ ref('identity_override_log') }} as logged
    cross join last_built
    where logged.logged_at > last_built.built_at and logged.action <> 'ignore'
),

touched_nodes as (
    select node_ids.node_id
    from {{ ref('identity_node_ids') }} as node_ids
    inner join changed_identifiers
        on
            node_ids.identifier_type = changed_identifiers.identifier_type
            and node_ids.identifier_value = changed_identifiers.identifier_value
),

touched_components as (
    select distinct stored.component_id
    from {{ this }} as stored
    inner join touched_nodes on stored.node_id = touched_nodes.node_id
),

scope as (
    select node_id from touched_nodes
    union
    select stored.node_id
    from {{ this }} as stored
    inner join touched_components on stored.component_id = touched_components.component_id
),
{%- endif %}

graph_edges as (
    select * from {{ ref('identity_graph_edges') }}
),

edges_to_solve as (
    {%- if incremental %}
        {#- Two semi-joins, not one `or`: Postgres runs `in` lists joined by `or` per edge. #}
        select
            graph_edges.node_a,
            graph_edges.node_b
        from graph_edges
        where graph_edges.node_a in (select scope.node_id from scope)
        union
        select
            graph_edges.node_a,
            graph_edges.node_b
        from graph_edges
        where graph_edges.node_b in (select scope.node_id from scope)
        union all
        select
            scope.node_id as node_a,
            scope.node_id as node_b
        from scope
    {%- else %}
        select
            graph_edges.node_a,
            graph_edges.node_b
        from graph_edges
    {%- endif %}
)

select * from edges_to_solve
