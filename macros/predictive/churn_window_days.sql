{#- Var tessera_churn_window_days, checked: a whole number of days of at least 1. -#}
{% macro churn_window_days() -%}
    {%- set days = var('tessera_churn_window_days') -%}
    {%- if days is not number or days != days | int or days < 1 -%}
        {{ exceptions.raise_compiler_error(
            "tessera_churn_window_days must be a whole number of days of at least 1, got '"
            ~ days ~ "'"
        ) }}
    {%- endif -%}
    {{ return(days | int) }}
{%- endmacro %}
