{#- One row per distinct identifier, with when and where it was seen and whether it is blocked
    from linking people.

    Incremental: a run aggregates again only the identifiers observed or withdrawn since it last
    ran, and those whose blocked status changed (each from all of its observations). The
    pre-hooks first write that list to a table (it compares with the stored rows, so it must be
    taken before they go), then delete their rows, so an identifier whose every observation was
    withdrawn is gone. -#}
{{ config(
    materialized='incremental',
    unique_key=['identifier_type', 'identifier_value'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook=[
        "{{ tessera.stage_identifiers_to_rebuild() }}",
        "{{ tessera.delete_rebuilt_identifiers(tessera.staged_identifiers_to_rebuild()) }}",
    ],
    post_hook="{{ tessera.drop_staged_identifiers_to_rebuild() }}",
) }}
{%- set incremental = tessera.builds_incrementally() %}
-- depends_on: {{ ref('identity_retracted_observations') }}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),

changed_identifiers as (
    {{ tessera.staged_identifiers_to_rebuild() }}
),
{%- endif %}

observations as (
    {%- if incremental %}
    {{ tessera.rows_of_changed_identifiers(ref('identity_observations')) }}
    {%- else %}
        select * from {{ ref('identity_observations') }}
    {%- endif %}
),

blocked as (
    select * from {{ ref('identity_blocked_identifiers') }}
),

aggregated as (
    select
        identifier_type,
        identifier_value,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as observation_count,
        count(distinct source_table) as source_count
    from observations
    group by identifier_type, identifier_value
),

final as (
    select
        aggregated.identifier_type,
        aggregated.identifier_value,
        aggregated.first_seen_at,
        aggregated.last_seen_at,
        aggregated.observation_count,
        aggregated.source_count,
        blocked.blocked_reason,
        blocked.identifier_type is not null as is_blocked,
        {{ tessera.run_timestamp() }} as _built_at
    from aggregated
    left join blocked
        on
            aggregated.identifier_type = blocked.identifier_type
            and aggregated.identifier_value = blocked.identifier_value
)

select * from final
