{#- The columns of `relation` as a mapping of lowercased name to name as the warehouse spells it;
    none where the relation does not exist, or while dbt only parses. -#}
{% macro relation_columns(relation) -%}
    {%- if not execute or load_relation(relation) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set columns = {} -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do columns.update({column.name | lower: column.name}) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}
