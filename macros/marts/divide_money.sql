{#- `amount` (a non-negative decimal in currency units) divided by `divisor` (a whole number),
    rounded half up to cents; null when the divisor is 0 or null. Done on whole cents because
    DuckDB divides decimals as doubles: 100.01 / 2 would round to 50.00 there, 50.01 on Postgres. -#}
{% macro divide_money(amount, divisor) -%}
    {%- set divisor = "nullif(" ~ divisor ~ ", 0)" -%}
    {%- set cents = "cast(" ~ amount ~ " * 100 as bigint)" -%}
    {%- set remainder = "(" ~ cents ~ " % " ~ divisor ~ ")" -%}
    cast(
        (
            cast(({{ cents }} - {{ remainder }}) / {{ divisor }} as bigint)
            + case when 2 * {{ remainder }} >= {{ divisor }} then 1 else 0 end
        ) * 0.01 as decimal(18, 2)
    )
{%- endmacro %}
