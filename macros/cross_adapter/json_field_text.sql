{#- Field `key` of the JSON object `expr` (an element of json_array_elements) as text; null
    when absent. -#}
{% macro json_field_text(expr, key) -%}
    {{ adapter.dispatch('json_field_text', 'tessera')(expr, key) }}
{%- endmacro %}

{% macro duckdb__json_field_text(expr, key) -%}
    json_extract_string({{ expr }}, '$.{{ key }}')
{%- endmacro %}

{% macro postgres__json_field_text(expr, key) -%}
    ({{ expr }} ->> '{{ key }}')
{%- endmacro %}
