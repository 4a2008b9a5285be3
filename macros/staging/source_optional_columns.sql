{#- The contract columns of `table_name` a raw table may lack without a word: read as null. -#}
{% macro source_optional_columns(table_name) -%}
    {{ return({
        'pages': ['utm_term', 'utm_content'],
        'orders': ['user_id', 'anonymous_id'],
    }.get(table_name, [])) }}
{%- endmacro %}
