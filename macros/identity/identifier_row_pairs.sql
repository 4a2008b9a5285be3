{#- One row per pair of identifiers on the same source row of `observations` (a relation or CTE
    of identity_observations rows): the evidence that links them. Each pair is ordered by
    identifier type name, so (a, b) and (b, a) never both appear; a row holds one identifier of
    each type. -#}
{% macro identifier_row_pairs(observations) -%}
    select
        first_end.identifier_type as identifier_type_a,
        first_end.identifier_value as identifier_value_a,
        second_end.identifier_type as identifier_type_b,
        second_end.identifier_value as identifier_value_b,
        first_end.source_table,
        first_end.source_row_id,
        first_end.observed_at,
        first_end.observed_at as last_observed_at,
        1 as evidence_count
    from {{ observations }} as first_end
    inner join {{ observations }} as second_end
        on
            first_end.source_table = second_end.source_table
            and first_end.source_row_id = second_end.source_row_id
            and first_end.identifier_type < second_end.identifier_type
{%- endmacro %}
