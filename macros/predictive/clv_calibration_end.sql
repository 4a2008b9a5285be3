{#- The last day of the calibration period as a SQL date expression: var
    tessera_clv_calibration_end ('YYYY-MM-DD'), or by default the date of the last order in
    `orders` (a relation or CTE name with ordered_at). -#}
{% macro clv_calibration_end(orders) -%}
    {%- set configured = var('tessera_clv_calibration_end') -%}
    {%- if configured is none or configured == '' -%}
        (select max(cast(ordered_at as date)) from {{ orders }})
    {%- elif modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', configured | string) -%}
        cast('{{ configured }}' as date)
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "tessera_clv_calibration_end must be a date 'YYYY-MM-DD' or null, got '"
            ~ configured ~ "'"
        ) }}
    {%- endif -%}
{%- endmacro %}
