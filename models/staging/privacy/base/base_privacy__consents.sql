{#- Every raw consent record, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_privacy__consents') }}
),

default_country as (
    select * from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("tessera_default_country") }}'
),

cleaned as (
    select
        -- strings
        nullif(lower(trim(source.subject_type)), '') as subject_type,
        source.subject_value as subject_value_raw,
        {{ tessera.normalize_identifier(
            'nullif(lower(trim(source.subject_type)), \'\')', 'source.subject_value') }}
            as subject_value,
        nullif(lower(trim(source.purpose)), '') as purpose,
        nullif(trim(source.source), '') as consent_source,

        -- booleans
        cast(source.granted as {{ dbt.type_string() }}) as granted_raw,
        {{ tessera.safe_cast_boolean('source.granted') }} as is_granted,

        -- timestamps
        cast(source.recorded_at as {{ dbt.type_string() }}) as recorded_at_raw,
        {{ tessera.safe_cast_timestamp('source.recorded_at') }} as recorded_at
    from source
    left join default_country on 1 = 1
),

keyed as (
    select
        *,
        {{ tessera.surrogate_key(
            ['subject_type', 'subject_value', 'purpose', 'is_granted', 'recorded_at', 'consent_source']
        ) }} as consent_record_id
    from cleaned
),

numbered as (
    select
        *,
        row_number()
            over (
                partition by consent_record_id order by recorded_at_raw, subject_value_raw
            )
            as record_occurrence
    from keyed
),

validated as (
    select
        consent_record_id,
        subject_type,
        subject_value_raw,
        subject_value,
        purpose,
        consent_source,
        granted_raw,
        is_granted,
        recorded_at_raw,
        recorded_at,
        coalesce(
            {{ tessera.rejection_for_subject(
                'subject_type', 'subject_value_raw', 'subject_value'
            ) }},
            case
                when recorded_at_raw is null then 'missing_timestamp'
                when recorded_at is null then 'unparseable_timestamp'
                when purpose is null then 'missing_purpose'
                when is_granted is null then 'missing_granted'
                when record_occurrence > 1 then 'duplicate_record'
            end
        ) as rejection_reason
    from numbered
)

select * from validated
