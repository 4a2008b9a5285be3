{#- `landed` (land_source of `table_name`) followed by the rows of `extra` (SQL in the same
    contract columns and _loaded_at, or none), in the contract's column order. -#}
{% macro union_landed(table_name, landed, extra) -%}
    {%- if extra is none %}
    {{ landed }}
    {%- else -%}
    {%- set columns = [] -%}
    {%- for name, data_type in tessera.source_contract(table_name) -%}
        {%- do columns.append(adapter.quote(name)) -%}
    {%- endfor -%}
    {%- do columns.append('_loaded_at') -%}
    with

    landed as (
        {{ landed }}
    ),

    extra as (
        {{ extra }}
    )

    select {{ columns | join(', ') }} from landed
    union all
    select {{ columns | join(', ') }} from extra
    {%- endif %}
{%- endmacro %}
