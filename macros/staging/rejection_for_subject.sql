{#- Why a privacy subject (type + normalised value) is unusable, or null when it is usable. -#}
{% macro rejection_for_subject(type_expr, value_raw_expr, value_expr) -%}
    case
        when {{ value_expr }} is null and nullif(trim({{ value_raw_expr }}), '') is null
            then 'no_identifier'
        when {{ type_expr }} is null or {{ type_expr }} not in {{ tessera.identifier_types() }}
            then 'unknown_subject_type'
        when {{ type_expr }} = 'email' and not {{ tessera.is_valid_email(value_expr) }}
            then 'malformed_email'
        when {{ type_expr }} = 'phone'
            and ({{ value_expr }} is null or not {{ tessera.is_valid_e164(value_expr) }})
            then 'malformed_phone'
    end
{%- endmacro %}
