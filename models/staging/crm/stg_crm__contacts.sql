with

base_contacts as (
    select * from {{ ref('base_crm__contacts') }}
),

final as (
    select
        crm_contact_id,
        email,
        phone,
        first_name,
        last_name,
        company,
        lifecycle_stage,
        created_at,
        coalesce(updated_at, created_at) as updated_at
    from base_contacts
    where rejection_reason is null
)

select * from final
