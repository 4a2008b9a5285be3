{#- Text to a UTC timestamp without time zone; null where the text is not an ISO-8601 timestamp or
    names an impossible date. A value with an offset is converted to UTC, one without is UTC. -#}
{% macro safe_cast_timestamp(expr) -%}
    {%- set text_value = "trim(cast(" ~ expr ~ " as " ~ dbt.type_string() ~ "))" -%}
    case
        when {{ tessera.regex_matches(text_value, tessera.iso_timestamp_pattern()) }}
            then {{ adapter.dispatch('parse_iso_timestamp', 'tessera')(text_value) }}
    end
{%- endmacro %}

{% macro default__parse_iso_timestamp(text_value) -%}
    {{ target.schema }}.tessera_try_timestamp({{ text_value }})
{%- endmacro %}

{% macro duckdb__parse_iso_timestamp(text_value) -%}
    case
        when {{ tessera.regex_matches(text_value, tessera.utc_offset_pattern()) }}
            then timezone('UTC', try_cast({{ text_value }} as timestamptz))
        else try_cast({{ text_value }} as timestamp)
    end
{%- endmacro %}
