{#- A subject value in the normal form of its identifier type (emails lowercased, phones E.164,
    other ids trimmed). Phones need the default-country row joined as `default_country`. -#}
{% macro normalize_identifier(type_expr, value_expr) -%}
    case {{ type_expr }}
        when 'email' then {{ tessera.normalize_email(value_expr) }}
        when 'phone' then {{ tessera.normalize_phone(value_expr) }}
        else nullif(trim({{ value_expr }}), '')
    end
{%- endmacro %}
