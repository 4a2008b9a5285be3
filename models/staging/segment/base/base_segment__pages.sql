{#- Every raw page view, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_segment__pages') }}
),

cleaned as (
    select
        -- ids
        nullif(trim(id), '') as page_view_id,
        nullif(trim(anonymous_id), '') as anonymous_id,
        nullif(trim(user_id), '') as user_id,

        -- strings
        url,
        path,
        nullif(trim(referrer), '') as referrer,
        nullif(lower(trim(utm_source)), '') as utm_source,
        nullif(lower(trim(utm_medium)), '') as utm_medium,
        nullif(lower(trim(utm_campaign)), '') as utm_campaign,
        nullif(lower(trim(utm_term)), '') as utm_term,
        nullif(lower(trim(utm_content)), '') as utm_content,

        -- timestamps
        cast({{ adapter.quote('timestamp') }} as {{ dbt.type_string() }}) as timestamp_raw,
        {{ tessera.safe_cast_timestamp(adapter.quote('timestamp')) }} as viewed_at
    from source
),

numbered as (
    select
        *,
        row_number() over (partition by page_view_id order by timestamp_raw) as id_occurrence
    from cleaned
),

validated as (
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
        timestamp_raw,
        viewed_at,
        case
            when page_view_id is null then 'missing_id'
            when id_occurrence > 1 then 'duplicate_id'
            when timestamp_raw is null then 'missing_timestamp'
            when viewed_at is null then 'unparseable_timestamp'
            when coalesce(anonymous_id, user_id) is null then 'no_identifier'
        end as rejection_reason
    from numbered
)

select * from validated
