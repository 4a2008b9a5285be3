{#- A JSON object, as compact text, of `pairs` (a list of (key, SQL expression)): keys whose
    value is null are left out, `{}` when every one is. Values keep their JSON type (a number
    stays a number). Built by concatenation in chunks, since Postgres allows a function 100
    arguments. -#}
{% macro json_object_text(pairs) -%}
    {%- if not pairs -%}
        '{}'
    {%- else -%}
        {%- set chunks = [] -%}
        {%- for chunk in pairs | batch(50) -%}
            {%- set members = [] -%}
            {%- for key, expr in chunk -%}
                {%- do members.append("case when " ~ expr ~ " is not null then '" ~ tojson(key) ~ ":' || " ~ tessera.json_scalar_text(expr) ~ " end") -%}
            {%- endfor -%}
            {%- do chunks.append("nullif(concat_ws(',', " ~ members | join(', ') ~ "), '')") -%}
        {%- endfor -%}
        '{' || coalesce(concat_ws(',', {{ chunks | join(', ') }}), '') || '}'
    {%- endif -%}
{%- endmacro %}

{#- One value as JSON text: a string quoted and escaped, a number or boolean as itself. -#}
{% macro json_scalar_text(expr) -%}
    {{ adapter.dispatch('json_scalar_text', 'tessera')(expr) }}
{%- endmacro %}

{% macro default__json_scalar_text(expr) -%}
    cast(to_json({{ expr }}) as {{ dbt.type_string() }})
{%- endmacro %}
