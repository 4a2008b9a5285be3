{#- A FROM-clause item yielding one row per element of the JSON array text `expr`, as column
    `element` of the alias given; no rows where the text is not a JSON array. Read an element's
    fields with json_field_text. -#}
{% macro json_array_elements(expr, alias) -%}
    {{ adapter.dispatch('json_array_elements', 'tessera')(expr, alias) }}
{%- endmacro %}

{% macro duckdb__json_array_elements(expr, alias) -%}
    (
        select unnest(cast(json({{ expr }}) as json[])) as element
        where json_valid({{ expr }}) and json_type(json({{ expr }})) = 'ARRAY'
    ) as {{ alias }}
{%- endmacro %}

{% macro postgres__json_array_elements(expr, alias) -%}
    lateral (
        select value as element
        from json_array_elements(
            case
                when json_typeof({{ target.schema }}.tessera_try_json({{ expr }})) = 'array'
                    then {{ target.schema }}.tessera_try_json({{ expr }})
            end
        )
    ) as {{ alias }}
{%- endmacro %}
