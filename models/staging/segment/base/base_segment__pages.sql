{#- Every raw page view, cleaned, with the first contract it breaks (null when none). -#}

{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='page_view_id',
    on_schema_change='fail',
    pre_hook="{{ tessera.restage_loaded_rows(ref('landed_segment__pages'), 'pages', 'page_view_id') }}",
) }}

with

source as (
    select * from {{ ref('landed_segment__pages') }}
    {{- tessera.loaded_since_last_run() }}
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
        {{ tessera.safe_cast_timestamp(adapter.quote('timestamp')) }} as viewed_at,

        -- load
        _loaded_at
    from source
),

{# On incremental runs, the stored rows sharing an id with a fresh one: every delivery of an id is
   ranked again, so the one kept is the one a full build keeps. #}
candidates as (
    select * from cleaned
    {%- if is_incremental() %}
    union all
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
        _loaded_at
    from {{ this }}
    where page_view_id in (select cleaned.page_view_id from cleaned)
    {%- endif %}
),

numbered as (
    select
        *,
        row_number() over (
            partition by page_view_id
            order by
                timestamp_raw, _loaded_at, anonymous_id, user_id, url, path, referrer,
                utm_source, utm_medium, utm_campaign, utm_term, utm_content
        ) as id_occurrence
    from candidates
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
        _loaded_at,
        {{ tessera.run_timestamp() }} as _staged_at,
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
