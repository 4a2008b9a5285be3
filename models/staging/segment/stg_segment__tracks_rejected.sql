with

base_tracks as (
    select * from {{ ref('base_segment__tracks') }}
),

final as (
    select
        rejection_reason,
        track_id,
        anonymous_id,
        user_id,
        device_id,
        event_name,
        properties,
        timestamp_raw as tracked_at
    from base_tracks
    where rejection_reason is not null
)

select * from final
