{#- JSON text `expr` ready for json_field_text, or null where it does not parse, so that one
    malformed value (a track's properties are as sent) cannot fail a query. -#}
{% macro try_parse_json(expr) -%}
    {{ return(adapter.dispatch('try_parse_json', 'tessera')(expr)) }}
{%- endmacro %}

{#- Engines whose JSON functions read text and yield null for malformed text (Spark's
    get_json_object) need nothing. -#}
{% macro default__try_parse_json(expr) -%}
    {{ expr }}
{%- endmacro %}

{#- DuckDB's json_extract_string reads text, but fails the query on malformed text. -#}
{% macro duckdb__try_parse_json(expr) -%}
    case when json_valid({{ expr }}) then {{ expr }} end
{%- endmacro %}

{#- A json value: ->> does not read text. -#}
{% macro postgres__try_parse_json(expr) -%}
    {{ target.schema }}.tessera_try_json({{ expr }})
{%- endmacro %}
