with

base_consents as (
    select * from {{ ref('base_privacy__consents') }}
),

final as (
    select
        rejection_reason,
        consent_record_id,
        subject_type,
        subject_value_raw as subject_value,
        purpose,
        consent_source,
        granted_raw,
        recorded_at_raw as recorded_at
    from base_consents
    where rejection_reason is not null
)

select * from final
