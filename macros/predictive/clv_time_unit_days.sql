{#- Days in one unit of var tessera_clv_time_unit, the unit recency, T and the horizon are in. -#}
{% macro clv_time_unit_days() -%}
    {%- set units = {'day': 1, 'week': 7} -%}
    {%- set unit = var('tessera_clv_time_unit') -%}
    {%- if unit not in units -%}
        {{ exceptions.raise_compiler_error(
            "tessera_clv_time_unit must be day or week, got '" ~ unit ~ "'"
        ) }}
    {%- endif -%}
    {{ return(units[unit]) }}
{%- endmacro %}
