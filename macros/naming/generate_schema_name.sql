{#- Schemas are named exactly as DESIGN.md says (staging, marts, ...) on every adapter, instead of
    dbt's default "<target schema>_<custom schema>", so BI tools and syncs find them by name. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
