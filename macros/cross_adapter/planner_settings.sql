{#- Pre-hook of every model (dbt_project.yml): planner settings for the model's transaction.

    Postgres: no nested-loop joins and no JIT. Tessera's tables have no indexes, so a nested
    loop only wins on a join of a few rows, and Postgres estimates the rows that pass a filter
    on row_number() (every "first of each" CTE) or come out of a fresh table as a handful:
    identity_customer_registry's rerun at 200,000 customers ran for minutes on a nested loop
    over two 700,000-row inputs, and 11 s without one. A join with no equality condition still
    gets its nested loop. JIT compilation cost about a second per statement and saved less.
    work_mem, when var tessera_postgres_work_mem sets it: the server's default (4MB) makes the
    hash joins and sorts of a large model spill to disk.
    Other warehouses: nothing. -#}
{% macro planner_settings() -%}
    {{ return(adapter.dispatch('planner_settings', 'tessera')()) }}
{%- endmacro %}

{% macro default__planner_settings() -%}
{%- endmacro %}

{% macro postgres__planner_settings() -%}
    {%- set work_mem = var('tessera_postgres_work_mem', none) -%}
    select
        set_config('enable_nestloop', 'off', true),
        set_config('jit', 'off', true)
        {%- if work_mem %},
        set_config('work_mem', '{{ work_mem }}', true)
        {%- endif %}
{%- endmacro %}
