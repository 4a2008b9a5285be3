with

base_contacts as (
    select * from {{ ref('base_crm__contacts') }}
),

final as (
    select
        rejection_reason,
        crm_contact_id,
        email_raw as email,
        phone_raw as phone,
        first_name,
        last_name,
        company,
        lifecycle_stage,
        created_at_raw as created_at,
        updated_at_raw as updated_at
    from base_contacts
    where rejection_reason is not null
)

select * from final
