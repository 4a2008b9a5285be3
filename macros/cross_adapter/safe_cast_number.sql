{#- Text (or a number) to `data_type`, e.g. decimal(18, 2); null where the text is not a plain
    decimal number such as 12 or -3.5, or one in exponent form (1.5e-05, as a DOUBLE column
    reads as text) of magnitude under 1e15, so that no value can fail the build. -#}
{% macro safe_cast_number(expr, data_type) -%}
    {%- set text_value = "trim(cast(" ~ expr ~ " as " ~ dbt.type_string() ~ "))" -%}
    {%- set as_double = "cast(" ~ text_value ~ " as " ~ dbt.type_float() ~ ")" -%}
    {#- The outer cast keeps the type's scale, which Postgres drops from a case's result. -#}
    cast(case
        when {{ tessera.regex_matches(text_value, '^[+-]?([0-9]{1,15}([.][0-9]*)?|[.][0-9]+)$') }}
            then cast({{ text_value }} as {{ data_type }})
        when {{ tessera.regex_matches(text_value, '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)[eE][+-]?[0-9]{1,2}$') }}
            then case when abs({{ as_double }}) < 1e15 then cast({{ as_double }} as {{ data_type }}) end
    end as {{ data_type }})
{%- endmacro %}
