{#- Every raw support ticket, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_support__tickets') }}
),

cleaned as (
    select
        -- ids
        nullif(trim(ticket_id), '') as ticket_id,

        -- strings
        requester_email as requester_email_raw,
        {{ tessera.normalize_email('requester_email') }} as requester_email,
        nullif(lower(trim(status)), '') as ticket_status,
        nullif(lower(trim(channel)), '') as channel,

        -- numerics
        cast(
            {{ tessera.safe_cast_number('satisfaction_score', dbt.type_numeric()) }}
            as {{ dbt.type_int() }}
        ) as satisfaction_score,

        -- timestamps
        cast(created_at as {{ dbt.type_string() }}) as created_at_raw,
        {{ tessera.safe_cast_timestamp('created_at') }} as created_at
    from source
),

numbered as (
    select
        *,
        row_number() over (partition by ticket_id order by created_at_raw) as id_occurrence
    from cleaned
),

validated as (
    select
        ticket_id,
        requester_email_raw,
        requester_email,
        ticket_status,
        channel,
        satisfaction_score,
        created_at_raw,
        created_at,
        case
            when ticket_id is null then 'missing_id'
            when id_occurrence > 1 then 'duplicate_id'
            when created_at_raw is null then 'missing_timestamp'
            when created_at is null then 'unparseable_timestamp'
            when requester_email is null then 'no_identifier'
            when not {{ tessera.is_valid_email('requester_email') }} then 'malformed_email'
            when satisfaction_score not between 1 and 5 then 'invalid_satisfaction_score'
        end as rejection_reason
    from numbered
)

select * from validated
