{#- One @, something before it, a dotted domain after it, no whitespace: deliberately loose, as the
    only aim is to reject values that cannot be an address. Takes a normalised email. -#}
{% macro is_valid_email(expr) -%}
    {{ tessera.regex_matches(expr, '^[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:].]+$') }}
{%- endmacro %}
