{#- Functions staging needs where the adapter lacks a built-in; run by on-run-start. -#}
{% macro create_udfs() -%}
    {{ return(adapter.dispatch('create_udfs', 'tessera')()) }}
{%- endmacro %}

{% macro default__create_udfs() -%}
    select 1
{%- endmacro %}

{#- try_cast for timestamps: an impossible date such as 2025-02-30 passes any regex but makes a
    plain cast fail the whole query, so the cast is caught here and yields null. -#}
{% macro postgres__create_udfs() -%}
    create schema if not exists {{ target.schema }};
    create or replace function {{ target.schema }}.tessera_try_timestamp(value text)
    returns timestamp
    language plpgsql
    immutable
    as $tessera$
    begin
        if value ~ '{{ tessera.utc_offset_pattern() }}' then
            return (value::timestamptz at time zone 'UTC');
        end if;
        return value::timestamp;
    exception when others then
        return null;
    end;
    $tessera$;
    {#- The same for JSON text (Postgres 15 has no IS JSON): null where it does not parse. #}
    create or replace function {{ target.schema }}.tessera_try_json(value text)
    returns json
    language plpgsql
    immutable
    as $tessera$
    begin
        return value::json;
    exception when others then
        return null;
    end;
    $tessera$
{%- endmacro %}
