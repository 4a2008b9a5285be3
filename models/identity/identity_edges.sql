{#- One row per pair of identifiers seen together on at least one valid source row, with the
    first such row as evidence (so every merge can be explained) and how often the pair was seen. -#}
with

pairs as (
    {%- for source in tessera.identity_sources() if source.identifiers | length > 1 %}
    {{ tessera.identifier_pairs(
        ref(source.model), source.source_table, source.row_id, source.observed_at,
        source.identifiers
    ) }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

numbered as (
    select
        *,
        row_number() over (
            partition by
                identifier_type_a, identifier_value_a, identifier_type_b, identifier_value_b
            order by observed_at, source_table, source_row_id
        ) as evidence_rank,
        count(*) over (
            partition by
                identifier_type_a, identifier_value_a, identifier_type_b, identifier_value_b
        ) as evidence_count,
        max(observed_at) over (
            partition by
                identifier_type_a, identifier_value_a, identifier_type_b, identifier_value_b
        ) as last_observed_at
    from pairs
),

final as (
    select
        identifier_type_a,
        identifier_value_a,
        identifier_type_b,
        identifier_value_b,
        source_table as first_source_table,
        source_row_id as first_source_row_id,
        observed_at as first_observed_at,
        last_observed_at,
        evidence_count
    from numbered
    where evidence_rank = 1
)

select * from final
