{#- Every raw deletion request, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_privacy__deletion_requests') }}
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

        -- timestamps
        cast(source.requested_at as {{ dbt.type_string() }}) as requested_at_raw,
        {{ tessera.safe_cast_timestamp('source.requested_at') }} as requested_at
    from source
    left join default_country on 1 = 1
),

keyed as (
    select
        *,
        {{ tessera.surrogate_key(['subject_type', 'subject_value', 'requested_at']) }}
            as deletion_request_id
    from cleaned
),

numbered as (
    select
        *,
        row_number()
            over (
                partition by deletion_request_id order by requested_at_raw, subject_value_raw
            )
            as request_occurrence
    from keyed
),

validated as (
    select
        deletion_request_id,
        subject_type,
        subject_value_raw,
        subject_value,
        requested_at_raw,
        requested_at,
        coalesce(
            {{ tessera.rejection_for_subject(
                'subject_type', 'subject_value_raw', 'subject_value'
            ) }},
            case
                when requested_at_raw is null then 'missing_timestamp'
                when requested_at is null then 'unparseable_timestamp'
                when request_occurrence > 1 then 'duplicate_record'
            end
        ) as rejection_reason
    from numbered
)

select * from validated
