{#- Every row of `relation` with the customer its identifiers resolve to: the customer of the first
    identifier in `identifiers` (priority-ordered (identifier_type, column) pairs) that is in
    `customer_map` (shaped like identity_customer_map), null when none is, so a row whose
    identifiers are all missing or blocked is kept, unattributed. The identifiers on one row are
    normally one customer's; priority decides when the identity graph's limits split them. -#}
{% macro resolve_customer_id(relation, customer_map, identifiers) -%}
    select
        {{ relation }}.*,
        coalesce(
            {%- for identifier_type, column in identifiers %}
            {{ identifier_type }}_customers.customer_id{{ "," if not loop.last }}
            {%- endfor %}
        ) as customer_id
    from {{ relation }}
    {%- for identifier_type, column in identifiers %}
    left join {{ customer_map }} as {{ identifier_type }}_customers
        on
            {{ identifier_type }}_customers.identifier_type = '{{ identifier_type }}'
            and {{ relation }}.{{ column }} = {{ identifier_type }}_customers.identifier_value
    {%- endfor %}
{%- endmacro %}
