{#- When this dbt invocation started, as a timestamp literal: every model of one run stamps its
    rows with the same instant, which is what lets the next run tell old rows from new. -#}
{% macro run_timestamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}
