{#- Every raw identify, cleaned, with the first contract it breaks (null when none). The staged and
    rejected models split this one set, so together they hold every raw row exactly once. -#}

{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='identify_id',
    on_schema_change='fail',
    pre_hook="{{ tessera.restage_loaded_rows(ref('landed_segment__identifies'), 'identifies', 'identify_id') }}",
) }}

with

source as (
    select * from {{ ref('landed_segment__identifies') }}
    {{- tessera.loaded_since_last_run() }}
),

default_country as (
    select * from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("tessera_default_country") }}'
),

cleaned as (
    select
        -- ids
        nullif(trim(source.id), '') as identify_id,
        nullif(trim(source.anonymous_id), '') as anonymous_id,
        nullif(trim(source.user_id), '') as user_id,

        -- strings
        source.email as email_raw,
        {{ tessera.normalize_email('source.email') }} as email,
        source.phone as phone_raw,
        {{ tessera.normalize_phone('source.phone') }} as phone,
        nullif(trim(source.first_name), '') as first_name,
        nullif(trim(source.last_name), '') as last_name,

        -- timestamps
        cast(source.{{ adapter.quote('timestamp') }} as {{ dbt.type_string() }}) as timestamp_raw,
        {{ tessera.safe_cast_timestamp('source.' ~ adapter.quote('timestamp')) }} as identified_at,

        -- load
        source._loaded_at
    from source
    left join default_country on 1 = 1
),

{# On incremental runs, the stored rows sharing an id with a fresh one: every delivery of an id is
   ranked again, so the one kept is the one a full build keeps. #}
candidates as (
    select * from cleaned
    {%- if is_incremental() %}
    union all
    select
        identify_id,
        anonymous_id,
        user_id,
        email_raw,
        email,
        phone_raw,
        phone,
        first_name,
        last_name,
        timestamp_raw,
        identified_at,
        _loaded_at
    from {{ this }}
    where identify_id in (select cleaned.identify_id from cleaned)
    {%- endif %}
),

numbered as (
    select
        *,
        row_number() over (
            partition by identify_id
            order by
                timestamp_raw, _loaded_at, anonymous_id, user_id, email_raw, email, phone_raw,
                phone, first_name, last_name
        ) as id_occurrence
    from candidates
),

validated as (
    select
        identify_id,
        anonymous_id,
        user_id,
        email_raw,
        email,
        phone_raw,
        phone,
        first_name,
        last_name,
        timestamp_raw,
        identified_at,
        _loaded_at,
        {{ tessera.run_timestamp() }} as _staged_at,
        case
            when identify_id is null then 'missing_id'
            when id_occurrence > 1 then 'duplicate_id'
            when timestamp_raw is null then 'missing_timestamp'
            when identified_at is null then 'unparseable_timestamp'
            when email is not null and not {{ tessera.is_valid_email('email') }}
                then 'malformed_email'
            when
                nullif(trim(phone_raw), '') is not null
                and (phone is null or not {{ tessera.is_valid_e164('phone') }})
                then 'malformed_phone'
            when coalesce(anonymous_id, user_id, email, phone) is null then 'no_identifier'
        end as rejection_reason
    from numbered
)

select * from validated
