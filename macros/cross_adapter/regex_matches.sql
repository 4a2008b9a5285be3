{#- True where `expr` contains a match of `pattern`; anchor the pattern for a full match. -#}
{% macro regex_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('regex_matches', 'tessera')(expr, pattern)) }}
{%- endmacro %}

{% macro default__regex_matches(expr, pattern) -%}
    ({{ expr }} ~ '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__regex_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro snowflake__regex_matches(expr, pattern) -%}
    regexp_instr({{ expr }}, '{{ pattern }}') > 0
{%- endmacro %}

{% macro bigquery__regex_matches(expr, pattern) -%}
    regexp_contains({{ expr }}, r'{{ pattern }}')
{%- endmacro %}

{% macro spark__regex_matches(expr, pattern) -%}
    ({{ expr }} rlike '{{ pattern }}')
{%- endmacro %}
