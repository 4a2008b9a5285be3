{#- E.164: a plus, a non-zero country code digit, at most 15 digits in all. -#}
{% macro is_valid_e164(expr) -%}
    {{ tessera.regex_matches(expr, '^[+][1-9][0-9]{6,14}$') }}
{%- endmacro %}
