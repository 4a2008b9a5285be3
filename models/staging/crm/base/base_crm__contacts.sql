{#- Every raw CRM contact, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_crm__contacts') }}
),

default_country as (
    select * from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("tessera_default_country") }}'
),

cleaned as (
    select
        -- ids
        nullif(trim(source.contact_id), '') as crm_contact_id,

        -- strings
        source.email as email_raw,
        {{ tessera.normalize_email('source.email') }} as email,
        source.phone as phone_raw,
        {{ tessera.normalize_phone('source.phone') }} as phone,
        nullif(trim(source.first_name), '') as first_name,
        nullif(trim(source.last_name), '') as last_name,
        nullif(trim(source.company), '') as company,
        nullif(lower(trim(source.lifecycle_stage)), '') as lifecycle_stage,

        -- timestamps
        cast(source.created_at as {{ dbt.type_string() }}) as created_at_raw,
        {{ tessera.safe_cast_timestamp('source.created_at') }} as created_at,
        cast(source.updated_at as {{ dbt.type_string() }}) as updated_at_raw,
        {{ tessera.safe_cast_timestamp('source.updated_at') }} as updated_at
    from source
    left join default_country on 1 = 1
),

numbered as (
    select
        *,
        {#- A CRM export can hold a contact twice; its latest version wins. -#}
        
        row_number() over (
            partition by crm_contact_id order by updated_at_raw desc, created_at_raw desc
        ) as id_occurrence
    from cleaned
),

validated as (
    select
        crm_contact_id,
        email_raw,
        email,
        phone_raw,
        phone,
        first_name,
        last_name,
        company,
        lifecycle_stage,
        created_at_raw,
        created_at,
        updated_at_raw,
        updated_at,
        case
            when crm_contact_id is null then 'missing_id'
            when id_occurrence > 1 then 'duplicate_id'
            when created_at_raw is null then 'missing_timestamp'
            when created_at is null then 'unparseable_timestamp'
            when updated_at_raw is not null and updated_at is null then 'unparseable_timestamp'
            when email is not null and not {{ tessera.is_valid_email('email') }}
                then 'malformed_email'
            when
                nullif(trim(phone_raw), '') is not null
                and (phone is null or not {{ tessera.is_valid_e164('phone') }})
                then 'malformed_phone'
            when coalesce(email, phone) is null then 'no_identifier'
        end as rejection_reason
    from numbered
)

select * from validated
