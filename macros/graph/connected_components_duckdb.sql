{#- DuckDB's connected_components materialization: the same table as the default one (node_id,
    component_id for every node on an edge, component_id the smallest node id of its component),
    computed in process instead of in SQL rounds. dbt picks an adapter's materialization over the
    default one, so every model materialized as connected_components gets it on DuckDB.

    The Python below runs through dbt-duckdb's own Python-model machinery (statement language
    'python' -> adapter.submit_python_job), which executes it in dbt's process on the cursor of
    this model's connection: it reads the edges and writes the table inside the transaction the
    SQL statements here opened, and dbt-duckdb calls model(dbt, con) then materialize(df, con).
    Orchestration.identity.components holds the algorithm; this file only wires it in.

    The SQL rounds take ~10x as long as scipy on a 10M-edge graph (reference notes). Var
    tessera_identity_fast_path: false runs the default SQL materialization instead, so tests can
    compare the two. -#}
{% materialization connected_components, adapter='duckdb' -%}
    {%- set started = modules.datetime.datetime.now() -%}
    {%- if var('tessera_identity_fast_path', true) | string | lower != 'true' -%}
        {%- set result = materialization_connected_components_default() -%}
        {%- set seconds = (modules.datetime.datetime.now() - started).total_seconds() -%}
        {% do log(
            "connected_components: " ~ this ~ " built by the SQL path (large/small-star) in "
            ~ "%.2f" | format(seconds) ~ " s", info=true) %}
        {{ return(result) }}
    {%- endif -%}

    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set input = this.incorporate(path={'identifier': this.identifier ~ '__cc_input'}, type='table') -%}
    {%- set built = this.incorporate(path={'identifier': this.identifier ~ '__cc_built'}, type='table') -%}
    {%- set incremental = tessera.solves_incrementally() -%}

    {{ run_hooks(pre_hooks) }}
    {% do adapter.drop_relation(built) %}
    {#- A partial run keeps its edges: the nodes they name are the stored rows replaced. -#}
    {%- set edges_sql = sql -%}
    {%- if incremental -%}
        {% do adapter.drop_relation(input) %}
        {% call statement('connected_components_input') -%}
            create table {{ input }} as {{ sql }}
        {%- endcall %}
        {%- set edges_sql = 'select node_a, node_b from ' ~ input.render() -%}
    {%- endif %}
    {% call statement('main', language='python') -%}
from dbt.adapters.events.logging import AdapterLogger

from orchestration.identity.components import write_components


class dbtObj:
    # dbt-duckdb hands its Python models a dbt object; this job reads through `con` only.
    def __init__(self, load_df_function):
        self.load_df_function = load_df_function


def model(dbt, con):
    run = write_components(con, {{ tojson(edges_sql) }}, {{ tojson(built.render()) }})
    AdapterLogger("Tessera").info("connected_components fast path: " + run.describe())
    # A relation, not a data frame: dbt-duckdb then calls materialize() on this same cursor
    # instead of opening a new one outside the model's transaction.
    return con.sql("select 1 as written")


def materialize(df, con):
    # write_components already created the table inside the transaction.
    pass
    {%- endcall %}
    {% do tessera.store_components(target_relation, built, input if incremental else none, false) %}
    {% do adapter.drop_relation(input) %}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {%- set seconds = (modules.datetime.datetime.now() - started).total_seconds() -%}
    {% do log(
        "connected_components: " ~ this ~ " built by the DuckDB fast path (in-process scipy) in "
        ~ "%.2f" | format(seconds) ~ " s", info=true) %}
    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}
