with

base_tracks as (
    select * from {{ ref('base_segment__tracks') }}
),

final as (
    select
        track_id,
        anonymous_id,
        user_id,
        device_id,
        event_name,
        properties,
        tracked_at,
        _loaded_at,
        _staged_at
    from base_tracks
    where rejection_reason is null
)

select * from final
