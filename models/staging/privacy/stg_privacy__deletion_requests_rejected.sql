with

base_requests as (
    select * from {{ ref('base_privacy__deletion_requests') }}
),

final as (
    select
        rejection_reason,
        deletion_request_id,
        subject_type,
        subject_value_raw as subject_value,
        requested_at_raw as requested_at
    from base_requests
    where rejection_reason is not null
)

select * from final
