{#- A boolean from a boolean or from text such as true/false, t/f, yes/no, 1/0; null otherwise. -#}
{% macro safe_cast_boolean(expr) -%}
    case lower(trim(cast({{ expr }} as {{ dbt.type_string() }})))
        when 'true' then true
        when 't' then true
        when 'yes' then true
        when '1' then true
        when 'false' then false
        when 'f' then false
        when 'no' then false
        when '0' then false
    end
{%- endmacro %}
