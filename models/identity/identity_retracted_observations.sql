{#- One row per identifier observation withdrawn from the graph, append-only: each run adds the
    stored observations of source rows that changed (a CRM contact updated in place, an event
    loaded again with a new load timestamp, a duplicate that arrived with an earlier timestamp)
    or left staging since the last run. identity_observations deletes them and identity_edges
    re-derives every pair that touched them, so an incremental run ends where a full build would.

    It reads the stored identity_observations through the catalog, not ref(), because it must see
    them as the previous run left them: ref() would make the model its own ancestor. The diff reads
    row keys only (table, id, time, load timestamp); no identifier is re-derived from history.

    Only the sources in var tessera_mutable_sources are checked: all of them by default,
    so an incremental run always ends where a full build would. Leaving out sources whose rows are
    never edited or deleted once loaded (event tables) skips most of this scan. -#}
{{ config(materialized='incremental') }}
{%- set mutable_sources = var('tessera_mutable_sources') %}
{%- set stored_relation = none %}
{%- set stored_loaded_at = 'stored_observations.source_loaded_at' %}
{%- if execute and not flags.FULL_REFRESH %}
    {%- set stored_relation = adapter.get_relation(
        database=this.database, schema=this.schema, identifier='identity_observations'
    ) %}
    {#- Observations stored before rows were keyed by their load timestamp have none: the event
        rows among them no longer match their staged rows, so they are retracted and derived
        again once, with it (identity_observations adds the column). #}
    {%- if stored_relation is not none
        and 'source_loaded_at' not in tessera.relation_columns(stored_relation) %}
        {%- set stored_loaded_at = 'cast(null as ' ~ dbt.type_timestamp() ~ ')' %}
    {%- endif %}
{%- endif %}

with

staged_rows as (
    {{ tessera.identity_source_rows(mutable_sources) }}
),

retracted as (
    {%- if stored_relation is not none and mutable_sources %}
        select
            stored_observations.source_table,
            stored_observations.source_row_id,
            stored_observations.identifier_type,
            stored_observations.identifier_value,
            stored_observations.observed_at,
            {{ tessera.run_timestamp() }} as retracted_at
        from {{ stored_relation }} as stored_observations
        left join staged_rows
            on
                stored_observations.source_table = staged_rows.source_table
                and stored_observations.source_row_id = staged_rows.source_row_id
                and stored_observations.observed_at = staged_rows.observed_at
                and {{ stored_loaded_at }} is not distinct from staged_rows.source_loaded_at
        where
            staged_rows.source_row_id is null
            and stored_observations.source_table in (
                {%- for name in mutable_sources %}
                    '{{ name }}'{% if not loop.last %},{% endif %}
                {%- endfor %}
            )
    {%- else %}
        select
            source_table,
            source_row_id,
            cast(null as {{ dbt.type_string() }}) as identifier_type,
            cast(null as {{ dbt.type_string() }}) as identifier_value,
            observed_at,
            cast(null as {{ dbt.type_timestamp() }}) as retracted_at
        from staged_rows
        where 1 = 0
    {%- endif %}
)

select * from retracted
