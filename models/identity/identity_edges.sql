{#- One row per pair of identifiers seen together on at least one valid source row, with the
    first such row as evidence (so every merge can be explained) and how often the pair was seen.
    Pairs come from identity_observations: two identifiers on one row, ordered by type name.

    Incremental: the pre-hooks delete the pairs touching an identifier whose evidence changed
    (identity_changed_identifiers); the run re-derives exactly those pairs from every row holding
    such an identifier. Pairs between two untouched identifiers lie on untouched rows only, so
    they stand as stored. -#}
{{ config(
    materialized='incremental',
    on_schema_change='fail',
    pre_hook=[
        "{{ tessera.delete_changed_edges('a') }}",
        "{{ tessera.delete_changed_edges('b') }}",
    ],
) }}
-- depends_on: {{ ref('identity_changed_identifiers') }}

with

observations as (
    select * from {{ ref('identity_observations') }}
),

row_observations as (
    select observations.*
    from observations
    {%- if is_incremental() %}
    where exists (
        select 1
        from {{ ref('identity_observations') }} as held
        inner join {{ ref('identity_changed_identifiers') }} as changed
            on
                held.identifier_type = changed.identifier_type
                and held.identifier_value = changed.identifier_value
        where
            held.source_table = observations.source_table
            and held.source_row_id = observations.source_row_id
    )
    {%- endif %}
),

pairs as (
    select
        first_end.identifier_type as identifier_type_a,
        first_end.identifier_value as identifier_value_a,
        second_end.identifier_type as identifier_type_b,
        second_end.identifier_value as identifier_value_b,
        first_end.source_table,
        first_end.source_row_id,
        first_end.observed_at
    from row_observations as first_end
    inner join row_observations as second_end
        on
            first_end.source_table = second_end.source_table
            and first_end.source_row_id = second_end.source_row_id
            and first_end.identifier_type < second_end.identifier_type
    {%- if is_incremental() %}
    where
        exists (
            select 1 from {{ ref('identity_changed_identifiers') }} as changed
            where
                changed.identifier_type = first_end.identifier_type
                and changed.identifier_value = first_end.identifier_value
        )
        or exists (
            select 1 from {{ ref('identity_changed_identifiers') }} as changed
            where
                changed.identifier_type = second_end.identifier_type
                and changed.identifier_value = second_end.identifier_value
        )
    {%- endif %}
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
        evidence_count,
        {{ tessera.run_timestamp() }} as updated_at
    from numbered
    where evidence_rank = 1
)

select * from final
