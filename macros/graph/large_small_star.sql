{#- Connected components of the edge table `edges` (columns node_a, node_b: integers), written as
    table `output` (node_id, component_id) for every node on an edge, component_id being the
    smallest node id of its component. Returns the number of rounds it took.

    Large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond",
    SoCC 2014): edges are kept as (a, b) with a > b; large-star links each node's larger
    neighbours to its smallest neighbour, small-star links each node and its smaller neighbours
    to the smallest of them. Rounds repeat until a round changes no edge, at which point every
    component is a star around its minimum. That takes O(log n) rounds in practice, against the
    diameter-many rounds of label propagation; there is no fixed round count that could stop
    early. `max_rounds` only turns a bug into an error instead of a hang. -#}
{% macro large_small_star(edges, output, max_rounds=500) -%}
    {%- set work = output.incorporate(path={'identifier': output.identifier ~ '__lss_edges'}) -%}
    {%- set large = output.incorporate(path={'identifier': output.identifier ~ '__lss_large'}) -%}
    {%- set small = output.incorporate(path={'identifier': output.identifier ~ '__lss_small'}) -%}
    {%- for relation in [work, large, small, output] %}{% do adapter.drop_relation(relation) %}{% endfor -%}

    {% call statement('large_small_star_input') -%}
        create table {{ work }} as
        select distinct
            case when node_a > node_b then node_a else node_b end as a,
            case when node_a > node_b then node_b else node_a end as b
        from {{ edges }}
        where node_a is not null and node_b is not null and node_a <> node_b
    {%- endcall %}
    {% do tessera.analyze_table(work) %}

    {%- set state = namespace(converged=false, rounds=0) -%}
    {%- for round in range(max_rounds) if not state.converged %}
        {% call statement('large_star') -%}
            create table {{ large }} as
            with neighbours as (
                select a as node, b as neighbour from {{ work }}
                union all
                select b as node, a as neighbour from {{ work }}
            ),
            smallest as (
                select node, min(neighbour) as smallest_neighbour
                from neighbours
                group by node
            )
            select distinct
                neighbours.neighbour as a,
                case
                    when smallest.smallest_neighbour < neighbours.node
                        then smallest.smallest_neighbour
                    else neighbours.node
                end as b
            from neighbours
            inner join smallest on neighbours.node = smallest.node
            where neighbours.neighbour > neighbours.node
        {%- endcall %}
        {% do tessera.analyze_table(large) %}
        {% call statement('small_star') -%}
            create table {{ small }} as
            with smaller as (
                select a as node, b as neighbour from {{ large }}
            ),
            smallest as (
                select node, min(neighbour) as smallest_neighbour
                from smaller
                group by node
            ),
            linked as (
                select smaller.neighbour as a, smallest.smallest_neighbour as b
                from smaller
                inner join smallest on smaller.node = smallest.node
                where smaller.neighbour <> smallest.smallest_neighbour
                union all
                select node as a, smallest_neighbour as b
                from smallest
            )
            select distinct a, b from linked
        {%- endcall %}
        {% do tessera.analyze_table(small) %}
        {%- set changed = run_query(
            "select count(*) from ("
            ~ "select a, b from " ~ small ~ " except select a, b from " ~ work
            ~ ") as added union all select count(*) from ("
            ~ "select a, b from " ~ work ~ " except select a, b from " ~ small
            ~ ") as removed"
        ) -%}
        {%- set state.rounds = state.rounds + 1 -%}
        {%- set state.converged = (changed.columns[0].values() | sum) == 0 -%}
        {% do adapter.drop_relation(work) %}
        {% do adapter.drop_relation(large) %}
        {% do adapter.rename_relation(small, work) %}
    {%- endfor %}

    {%- if not state.converged -%}
        {{ exceptions.raise_compiler_error(
            "large_small_star did not converge in " ~ max_rounds ~ " rounds for " ~ output
            ~ "; raise max_rounds if the graph is that deep") }}
    {%- endif -%}

    {% call statement('large_small_star_output') -%}
        create table {{ output }} as
        select node as node_id, min(root) as component_id
        from (
            select a as node, b as root from {{ work }}
            union all
            select b as node, b as root from {{ work }}
        ) as stars
        group by node
    {%- endcall %}
    {% do adapter.drop_relation(work) %}
    {{ return(state.rounds) }}
{%- endmacro %}
