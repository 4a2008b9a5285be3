with

base_pages as (
    select * from {{ ref('base_segment__pages') }}
),

final as (
    select
        page_view_id,
        anonymous_id,
        user_id,
        url,
        path,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        viewed_at,
        _loaded_at,
        _staged_at
    from base_pages
    where rejection_reason is null
)

select * from final
