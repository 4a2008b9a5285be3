with

base_tickets as (
    select * from {{ ref('base_support__tickets') }}
),

final as (
    select
        rejection_reason,
        ticket_id,
        requester_email_raw as requester_email,
        ticket_status,
        channel,
        satisfaction_score,
        created_at_raw as created_at
    from base_tickets
    where rejection_reason is not null
)

select * from final
