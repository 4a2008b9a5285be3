{#- One row per customer to erase from the marts, with when erasure was first requested: every
    customer one of whose identifiers is the subject of a deletion request (subject_type names
    the identifier type). A request naming an identifier that is blocked or unknown resolves to
    nobody and erases nothing: a blocked value such as a shared inbox belongs to several people,
    and erasing all of them would be wrong. The request stays in force for as long as it is in
    the source, so the customer stays erased through every later run. -#}
{% macro erased_customers(deletion_requests, customer_map) -%}
    select
        {{ customer_map }}.customer_id,
        min({{ deletion_requests }}.requested_at) as requested_at
    from {{ deletion_requests }}
    inner join {{ customer_map }}
        on
            {{ deletion_requests }}.subject_type = {{ customer_map }}.identifier_type
            and {{ deletion_requests }}.subject_value = {{ customer_map }}.identifier_value
    group by {{ customer_map }}.customer_id
{%- endmacro %}
