with

base_consents as (
    select * from {{ ref('base_privacy__consents') }}
),

final as (
    select
        consent_record_id,
        subject_type,
        subject_value,
        purpose,
        consent_source,
        is_granted,
        recorded_at
    from base_consents
    where rejection_reason is null
)

select * from final
