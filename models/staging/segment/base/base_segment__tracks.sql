{#- Every raw track, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_segment__tracks') }}
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
        {{ tessera.safe_cast_timestamp(adapter.quote('timestamp')) }} as tracked_at
    from source
),

numbered as (
    select
        *,
        row_number() over (partition by track_id order by timestamp_raw) as id_occurrence
    from cleaned
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
