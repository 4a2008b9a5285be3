{#- Emails compare case-insensitively and users pad them with spaces: trim and lowercase. -#}
{% macro normalize_email(expr) -%}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}
