{#- True where `expr` contains a match of `pattern` (a regular expression, written into the SQL
    as a literal); anchor the pattern for a full match. -#}
{% macro regex_matches(expr, pattern) -%}
    {{ return(tessera.regex_matches_expr(expr, tessera.regex_literal(pattern))) }}
{%- endmacro %}

{#- The same where the pattern is an SQL expression (a column of a seed of rules). -#}
{% macro regex_matches_expr(expr, pattern_expr) -%}
    {{ return(adapter.dispatch('regex_matches_expr', 'tessera')(expr, pattern_expr)) }}
{%- endmacro %}

{#- A regular expression as an SQL literal: BigQuery reads backslashes of a raw string as is. -#}
{% macro regex_literal(pattern) -%}
    {{ return(adapter.dispatch('regex_literal', 'tessera')(pattern)) }}
{%- endmacro %}

{% macro default__regex_literal(pattern) -%}
    {{ return("'" ~ pattern ~ "'") }}
{%- endmacro %}

{% macro bigquery__regex_literal(pattern) -%}
    {{ return("r'" ~ pattern ~ "'") }}
{%- endmacro %}

{% macro default__regex_matches_expr(expr, pattern_expr) -%}
    ({{ expr }} ~ {{ pattern_expr }})
{%- endmacro %}

{% macro duckdb__regex_matches_expr(expr, pattern_expr) -%}
    regexp_matches({{ expr }}, {{ pattern_expr }})
{%- endmacro %}

{% macro snowflake__regex_matches_expr(expr, pattern_expr) -%}
    regexp_instr({{ expr }}, {{ pattern_expr }}) > 0
{%- endmacro %}

{% macro bigquery__regex_matches_expr(expr, pattern_expr) -%}
    regexp_contains({{ expr }}, {{ pattern_expr }})
{%- endmacro %}

{% macro spark__regex_matches_expr(expr, pattern_expr) -%}
    ({{ expr }} rlike {{ pattern_expr }})
{%- endmacro %}
