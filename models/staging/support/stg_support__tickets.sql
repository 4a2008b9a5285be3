with

base_tickets as (
    select * from {{ ref('base_support__tickets') }}
),

final as (
    select
        ticket_id,
        requester_email,
        ticket_status,
        channel,
        satisfaction_score,
        created_at
    from base_tickets
    where rejection_reason is null
)

select * from final
