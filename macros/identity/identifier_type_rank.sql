{#- The rank of identifier type `column` in var tessera_identity_type_priority: 1 for the
    strongest type (a login), higher for weaker ones; a type the var does not list ranks last. -#}
{% macro identifier_type_rank(column) -%}
    {%- set type_priority = var('tessera_identity_type_priority') -%}
    case {{ column }}
        {%- for identifier_type in type_priority %}
            when '{{ identifier_type }}' then {{ loop.index }}
        {%- endfor %}
        else {{ type_priority | length + 1 }}
    end
{%- endmacro %}
