{#- The columns every audience table carries for its syncs, taken from `customers` (a relation
    or CTE name shaped like the customers mart): the contact fields syncs map, and one
    has_consent_<purpose> flag per purpose of var tessera_consent_purposes, which the sync engine
    filters on by each destination's purpose even when the audience requires a consent itself. -#}
{% macro audience_profile_columns(customers) -%}
    {{ customers }}.email,
    {{ customers }}.phone,
    {{ customers }}.first_name,
    {{ customers }}.last_name,
    {%- for purpose in var('tessera_consent_purposes') %}
        {{ customers }}.has_consent_{{ purpose }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
