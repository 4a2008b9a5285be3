{#- A TIMESTAMP WITH TIME ZONE as the UTC timestamp without time zone it names. -#}
{% macro utc_timestamp(expr) -%}
    {{ return(adapter.dispatch('utc_timestamp', 'tessera')(expr)) }}
{%- endmacro %}

{% macro default__utc_timestamp(expr) -%}
    ({{ expr }} at time zone 'UTC')
{%- endmacro %}

{% macro duckdb__utc_timestamp(expr) -%}
    timezone('UTC', {{ expr }})
{%- endmacro %}

{#- Spark's timestamps are instants already. -#}
{% macro spark__utc_timestamp(expr) -%}
    cast({{ expr }} as timestamp)
{%- endmacro %}
