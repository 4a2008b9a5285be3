with

base_identifies as (
    select * from {{ ref('base_segment__identifies') }}
),

final as (
    select
        rejection_reason,
        identify_id,
        anonymous_id,
        user_id,
        email_raw as email,
        phone_raw as phone,
        first_name,
        last_name,
        timestamp_raw as identified_at
    from base_identifies
    where rejection_reason is not null
)

select * from final
