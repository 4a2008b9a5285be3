{#- `values` (strings) as the items of a SQL `in (...)` list; `null` when there are none, which
    matches nothing (an empty `in ()` is a syntax error). -#}
{% macro quoted_list(values) -%}
    {%- if values | length == 0 -%}
        null
    {%- else -%}
        {%- for value in values -%}
            '{{ value | replace("'", "''") }}'{% if not loop.last %}, {% endif %}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
