{#- Materialization: the model's SQL returns an edge list (node_a, node_b, integers); the table
    built holds (node_id, component_id) for every node on an edge, component_id being the smallest
    node id of its connected component, computed by macro large_small_star until it converges.
    config max_rounds (default 500) only turns a bug into an error instead of a hang. -#}
{% materialization connected_components, default -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set input = this.incorporate(path={'identifier': this.identifier ~ '__cc_input'}, type='table') -%}
    {%- set built = this.incorporate(path={'identifier': this.identifier ~ '__cc_built'}, type='table') -%}

    {{ run_hooks(pre_hooks) }}
    {% do adapter.drop_relation(input) %}
    {% call statement('connected_components_input') -%}
        create table {{ input }} as {{ sql }}
    {%- endcall %}
    {%- set rounds = tessera.large_small_star(input, built, config.get('max_rounds', 500)) -%}
    {% do log("connected_components: " ~ this ~ " converged after " ~ rounds ~ " rounds", info=true) %}

    {% call statement('main') -%}
        select count(*) from {{ built }}
    {%- endcall %}
    {% do adapter.drop_relation(target_relation) %}
    {% do adapter.rename_relation(built, target_relation) %}
    {% do adapter.drop_relation(input) %}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}
