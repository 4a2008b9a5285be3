{#- Gather planner statistics of `relation`, a table this run just created. Postgres plans the
    next statement from statistics only autovacuum would gather, later and outside the
    transaction: without them a join of two fresh tables of a million rows each is planned as
    if they held a few thousand. DuckDB and Spark need nothing. -#}
{% macro analyze_table(relation) -%}
    {{ return(adapter.dispatch('analyze_table', 'tessera')(relation)) }}
{%- endmacro %}

{% macro default__analyze_table(relation) -%}
{%- endmacro %}

{% macro postgres__analyze_table(relation) -%}
    {% call statement('analyze_' ~ relation.identifier) -%}
        analyze {{ relation }}
    {%- endcall %}
{%- endmacro %}
