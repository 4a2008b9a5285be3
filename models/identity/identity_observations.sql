{#- Every identifier seen on every valid source row: what the graph is built from, and what
    `tessera explain` shows as evidence.

    Incremental: a run appends the identifiers of source rows not stored yet. Rows that changed or left
    staging were retracted first (identity_retracted_observations, deleted by the pre-hook), so
    their current version counts as not stored and is unpivoted again. Of the incrementally staged
    sources (events) only the rows staged since this model last ran, and those whose observations
    this run retracted, are read: the others were unpivoted then and have not changed since. -#}
{#- append_new_columns: a store built before source_loaded_at existed gains the column (its
    event rows are retracted and unpivoted again with it, see identity_retracted_observations). #}
{{ config(
    materialized='incremental',
    on_schema_change='append_new_columns',
    pre_hook="{{ tessera.delete_retracted_observations() }}",
) }}
-- depends_on: {{ ref('identity_retracted_observations') }}

with

observations as (
    {%- for source in tessera.identity_sources() %}
        {%- set relation = ref(source.model) %}
        {%- if is_incremental() and source.get('staged_at') %}
            {%- set relation = tessera.recently_staged(
                relation, source.staged_at, source.source_table, source.row_id
            ) %}
        {%- endif %}
    {{ tessera.identifier_observations(
        relation, source.source_table, source.row_id, source.observed_at,
        source.identifiers, source.get('loaded_at')
    ) }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

final as (
    select
        observations.*,
        {{ tessera.run_timestamp() }} as loaded_at
    from observations
    {%- if is_incremental() %}
        where not exists (
            select 1 from {{ this }} as stored
            where
                stored.source_table = observations.source_table
                and stored.source_row_id = observations.source_row_id
        )
    {%- endif %}
)

select * from final
