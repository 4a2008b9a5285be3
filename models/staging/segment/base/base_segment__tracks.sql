{#- Every raw track, cleaned, with the first contract it breaks (null when none). -#}

{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='track_id',
    on_schema_change='fail',
    pre_hook="{{ tessera.restage_loaded_rows(ref('landed_segment__tracks'), 'tracks', 'track_id') }}",
) }}

with

source as (
    select * from {{ ref('landed_segment__tracks') }}
    {{- tessera.loaded_since_last_run() }}
),

cleaned as (
    select
        -- ids
        nullif(trim(id), '') as track_id,
        nullif(trim(anonymous_id), '') as anonymous_id,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(context_device_id), '') as device_id,

        -- strings
        nullif(trim(event), '') as event_name,
        properties,

        -- timestamps
        cast({{ adapter.quote('timestamp') }} as {{ dbt.type_string() }}) as timestamp_raw,
        {{ tessera.safe_cast_timestamp(adapter.quote('timestamp')) }} as tracked_at,

        -- load
        _loaded_at
    from source
),

{# On incremental runs, the stored rows sharing an id with a fresh one: every delivery of an id is
   ranked again, so the one kept is the one a full build keeps. #}
candidates as (
    select * from cleaned
    {%- if is_incremental() %}
    union all
    select
        track_id,
        anonymous_id,
        user_id,
        device_id,
        event_name,
        properties,
        timestamp_raw,
        tracked_at,
        _loaded_at
    from {{ this }}
    where track_id in (select cleaned.track_id from cleaned)
    {%- endif %}
),

numbered as (
    select
        *,
        row_number() over (
            partition by track_id
            order by
                timestamp_raw, _loaded_at, anonymous_id, user_id, device_id, event_name,
                properties
        ) as id_occurrence
    from candidates
),

validated as (
    select
        track_id,
        anonymous_id,
        user_id,
        device_id,
        event_name,
        properties,
        timestamp_raw,
        tracked_at,
        _loaded_at,
        {{ tessera.run_timestamp() }} as _staged_at,
        case
            when track_id is null then 'missing_id'
            when id_occurrence > 1 then 'duplicate_id'
            when timestamp_raw is null then 'missing_timestamp'
            when tracked_at is null then 'unparseable_timestamp'
            when event_name is null then 'missing_event'
            when coalesce(anonymous_id, user_id, device_id) is null then 'no_identifier'
        end as rejection_reason
    from numbered
)

select * from validated
