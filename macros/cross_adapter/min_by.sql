{#- Aggregate: the `value` (SQL expression) of the group's row with the smallest `keys` (a list
    of SQL expressions, compared in order, as an order by would): the evidence row of a group
    without a window over the whole input. Rows tied on every key must agree on `value`. -#}
{% macro min_by(value, keys) -%}
    {{ return(adapter.dispatch('min_by', 'tessera')(value, keys)) }}
{%- endmacro %}

{% macro default__min_by(value, keys) -%}
    arg_min({{ value }}, {{ '(' ~ keys | join(', ') ~ ')' if keys | length > 1 else keys[0] }})
{%- endmacro %}

{% macro postgres__min_by(value, keys) -%}
    (array_agg({{ value }} order by {{ keys | join(', ') }}))[1]
{%- endmacro %}

{% macro spark__min_by(value, keys) -%}
    min_by({{ value }}, {{ 'struct(' ~ keys | join(', ') ~ ')' if keys | length > 1 else keys[0] }})
{%- endmacro %}
