{#- The first non-null of `exprs` (SQL expressions), or `default` when the list is empty. -#}
{% macro first_of(exprs, default) -%}
    {%- if not exprs -%}
        {{ default }}
    {%- elif exprs | length == 1 -%}
        {{ exprs[0] }}
    {%- else -%}
        coalesce({{ exprs | join(', ') }})
    {%- endif -%}
{%- endmacro %}
