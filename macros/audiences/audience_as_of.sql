{#- The instant audience time windows end at, as a SQL timestamp expression: var
    tessera_audience_as_of ('YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS', UTC), or by default the time of
    the latest event in `customer_events` (a relation or CTE name with occurred_at). The default
    follows the data rather than the clock, so a warehouse loaded last month, or the demo's data
    from the past, still has customers inside "the last 7 days". -#}
{% macro audience_as_of(customer_events) -%}
    {%- set configured = var('tessera_audience_as_of') -%}
    {%- if configured is none or configured == '' -%}
        (select max(occurred_at) from {{ customer_events }})
    {%- elif modules.re.match(
        '^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?$', configured | string
    ) -%}
        cast('{{ configured }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "tessera_audience_as_of must be 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM:SS' or null, got '"
            ~ configured ~ "'"
        ) }}
    {%- endif -%}
{%- endmacro %}
