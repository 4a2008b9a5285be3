{#- `expr` compared byte by byte, for tie-breaks that must order the same on every adapter:
    Postgres otherwise sorts text by the database's locale ('a' < 'B' under en_US, not under C),
    DuckDB's default collation is already binary. -#}
{% macro bytewise(expr) -%}
    {{ return(adapter.dispatch('bytewise', 'tessera')(expr)) }}
{%- endmacro %}

{% macro default__bytewise(expr) -%}
    {{ expr }}
{%- endmacro %}

{% macro postgres__bytewise(expr) -%}
    ({{ expr }} collate "C")
{%- endmacro %}
