with

base_requests as (
    select * from {{ ref('base_privacy__deletion_requests') }}
),

final as (
    select
        deletion_request_id,
        subject_type,
        subject_value,
        requested_at
    from base_requests
    where rejection_reason is null
)

select * from final
