{#- Materialization: the model's SQL returns an edge list (node_a, node_b, integers); the table
    built holds (node_id, component_id, _built_at) for every node on an edge, component_id being
    the smallest node id of its connected component, computed by macro large_small_star until it
    converges. config max_rounds (default 500) only turns a bug into an error instead of a hang.

    config solve_incrementally: true lets a model re-solve part of its table
    (tessera.solves_incrementally() says when): its SQL then returns the edges of the
    nodes to re-solve and a self-loop (n, n) for each of them, whole components at a time; the
    stored rows of every node it names are replaced by the components of those edges, and the
    other rows stay as they are. -#}
{% materialization connected_components, default -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set input = this.incorporate(path={'identifier': this.identifier ~ '__cc_input'}, type='table') -%}
    {%- set built = this.incorporate(path={'identifier': this.identifier ~ '__cc_built'}, type='table') -%}
    {%- set incremental = tessera.solves_incrementally() -%}

    {{ run_hooks(pre_hooks) }}
    {% do adapter.drop_relation(input) %}
    {% call statement('connected_components_input') -%}
        create table {{ input }} as {{ sql }}
    {%- endcall %}
    {% do tessera.analyze_table(input) %}
    {%- set rounds = tessera.large_small_star(input, built, config.get('max_rounds', 500)) -%}
    {% do log("connected_components: " ~ this ~ " converged after " ~ rounds ~ " rounds", info=true) %}
    {% do tessera.store_components(target_relation, built, input if incremental else none) %}
    {% do adapter.drop_relation(input) %}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}


{#- Whether a model of materialization connected_components or identity_limits re-solves only
    part of its table: it is configured solve_incrementally: true, its stored table has
    _built_at, and this is no --full-refresh. -#}
{% macro solves_incrementally() -%}
    {%- if not execute or not config.get('solve_incrementally', false) or should_full_refresh() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if load_relation(this) is none -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return('_built_at' in (tessera.relation_columns(this) or {})) }}
{%- endmacro %}


{#- Write the components in table `built` (node_id, component_id) to `target`, stamped with the
    run: the whole table, or, given `input` (the edges the model returned), in place of the
    stored rows of every node the input names. The write is statement `main` unless the caller
    ran that already (`is_main` false); drops `built`. -#}
{% macro store_components(target, built, input=none, is_main=true) -%}
    {%- set name = 'main' if is_main else 'connected_components_stored' -%}
    {%- if input is none -%}
        {%- set stamped = target.incorporate(path={'identifier': target.identifier ~ '__cc_stamped'}) -%}
        {% do adapter.drop_relation(stamped) %}
        {% call statement(name) -%}
            create table {{ stamped }} as
            select node_id, component_id, {{ tessera.run_timestamp() }} as _built_at
            from {{ built }}
        {%- endcall %}
        {% do adapter.drop_relation(target) %}
        {% do adapter.rename_relation(stamped, target) %}
    {%- else -%}
        {% call statement('connected_components_replaced') -%}
            delete from {{ target }}
            where node_id in (
                select node_a from {{ input }}
                union
                select node_b from {{ input }}
            )
        {%- endcall %}
        {% call statement(name) -%}
            insert into {{ target }} (node_id, component_id, _built_at)
            select node_id, component_id, {{ tessera.run_timestamp() }}
            from {{ built }}
        {%- endcall %}
    {%- endif -%}
    {% do adapter.drop_relation(built) %}
{%- endmacro %}
