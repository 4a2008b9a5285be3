{#- A source row's load timestamp column as identity stores it, or a null timestamp for a source
    without one (`loaded_at` none). -#}
{% macro source_loaded_at(loaded_at) -%}
    {%- if loaded_at is none -%}
        cast(null as {{ dbt.type_timestamp() }})
    {%- else -%}
        {{ loaded_at }}
    {%- endif -%}
{%- endmacro %}
