with

base_identifies as (
    select * from {{ ref('base_segment__identifies') }}
),

final as (
    select
        identify_id,
        anonymous_id,
        user_id,
        email,
        phone,
        first_name,
        last_name,
        identified_at,
        _loaded_at,
        _staged_at
    from base_identifies
    where rejection_reason is null
)

select * from final
