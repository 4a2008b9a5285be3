with

base_pages as (
    select * from {{ ref('base_segment__pages') }}
),

final as (
    select
        rejection_reason,
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
        timestamp_raw as viewed_at
    from base_pages
    where rejection_reason is not null
)

select * from final
