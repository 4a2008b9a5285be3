{#- One row per session: a customer's page views and track calls with no gap longer than
    var tessera_session_timeout_minutes, across every browser and device identity has stitched
    to the customer. The landing page (the session's first page view) gives the referrer, the
    UTM values and so the source, medium and channel (seed channel_rules); a session of track
    calls only (an app) is direct. A session converted when the customer completed an order
    between its start and the timeout after its last event. Events without a customer (only
    blocked identifiers) are not sessionised. Rebuilt whole each run: a late event can merge two
    sessions. -#}
{%- set timeout = var('tessera_session_timeout_minutes') | int -%}

with

customer_events as (
    select
        event_id,
        customer_id,
        event_type,
        occurred_at,
        page_url,
        page_path,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign
    from {{ ref('customer_events') }}
    where customer_id is not null and event_type in ('page', 'track')
),

orders as (
    select * from {{ ref('orders') }}
),

channel_rules as (
    select * from {{ ref('channel_rules') }}
),

gaps as (
    select
        *,
        lag(occurred_at) over (
            partition by customer_id order by occurred_at, {{ tessera.bytewise('event_id') }}
        ) as previous_at
    from customer_events
),

starts as (
    select
        *,
        case
            when previous_at is null then 1
            when occurred_at > {{ dbt.dateadd('minute', timeout, 'previous_at') }} then 1
            else 0
        end as is_session_start
    from gaps
),

numbered as (
    select
        *,
        sum(is_session_start) over (
            partition by customer_id order by occurred_at, {{ tessera.bytewise('event_id') }}
            rows between unbounded preceding and current row
        ) as session_number
    from starts
),

landing_pages as (
    select
        customer_id,
        session_number,
        page_url,
        page_path,
        referrer,
        nullif(lower(trim(utm_source)), '') as utm_source,
        nullif(lower(trim(utm_medium)), '') as utm_medium,
        nullif(trim(utm_campaign), '') as utm_campaign,
        case
            when referrer like '%://%'
                then nullif(lower({{ dbt.split_part(
                    dbt.split_part('referrer', "'/'", 3), "':'", 1
                ) }}), '')
        end as referrer_host,
        case
            when page_url like '%://%'
                then nullif(lower({{ dbt.split_part(
                    dbt.split_part('page_url', "'/'", 3), "':'", 1
                ) }}), '')
        end as page_host
    from (
        select
            *,
            row_number() over (
                partition by customer_id, session_number
                order by occurred_at, {{ tessera.bytewise('event_id') }}
            ) as page_rank
        from numbered
        where event_type = 'page'
    ) as pages
    where page_rank = 1
),

summarised as (
    select
        customer_id,
        session_number,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as event_count,
        sum(case when event_type = 'page' then 1 else 0 end) as page_view_count
    from numbered
    group by customer_id, session_number
),

session_ids as (
    select
        customer_id,
        session_number,
        event_id as session_id
    from numbered
    where is_session_start = 1
),

{# A referrer from the site itself (a tab left open past the timeout) is no referrer. #}
sourced as (
    select
        summarised.*,
        session_ids.session_id,
        landing_pages.page_path as landing_page,
        landing_pages.page_url as landing_page_url,
        landing_pages.referrer,
        landing_pages.referrer_host,
        landing_pages.utm_source,
        landing_pages.utm_medium,
        landing_pages.utm_campaign,
        case
            when landing_pages.referrer_host = landing_pages.page_host then null
            else landing_pages.referrer_host
        end as external_host
    from summarised
    inner join session_ids
        on
            summarised.customer_id = session_ids.customer_id
            and summarised.session_number = session_ids.session_number
    left join landing_pages
        on
            summarised.customer_id = landing_pages.customer_id
            and summarised.session_number = landing_pages.session_number
),

source_mediums as (
    select
        *,
        coalesce(utm_source, external_host, '(direct)') as source,
        coalesce(
            utm_medium,
            case
                when utm_source is not null then '(not set)'
                when external_host is not null then 'referral'
                else '(none)'
            end
        ) as medium
    from sourced
),

{# The rules are tried on each distinct source and medium once, not on every session. #}
pairs as (
    select distinct
        source,
        medium
    from source_mediums
),

matched_rules as (
    select
        pairs.source,
        pairs.medium,
        channel_rules.channel,
        row_number() over (
            partition by pairs.source, pairs.medium order by channel_rules.priority
        ) as rule_rank
    from pairs
    inner join channel_rules
        on
            case
                when channel_rules.match = 'any'
                    then
                        (
                            channel_rules.source_pattern is not null
                            and {{ tessera.regex_matches_expr(
                                'pairs.source', 'channel_rules.source_pattern'
                            ) }}
                        )
                        or (
                            channel_rules.medium_pattern is not null
                            and {{ tessera.regex_matches_expr(
                                'pairs.medium', 'channel_rules.medium_pattern'
                            ) }}
                        )
                else
                    (
                        channel_rules.source_pattern is null
                        or {{ tessera.regex_matches_expr(
                            'pairs.source', 'channel_rules.source_pattern'
                        ) }}
                    )
                    and (
                        channel_rules.medium_pattern is null
                        or {{ tessera.regex_matches_expr(
                            'pairs.medium', 'channel_rules.medium_pattern'
                        ) }}
                    )
            end
),

channels as (
    select
        pairs.source,
        pairs.medium,
        coalesce(matched_rules.channel, 'unassigned') as channel
    from pairs
    left join matched_rules
        on
            pairs.source = matched_rules.source
            and pairs.medium = matched_rules.medium
            and matched_rules.rule_rank = 1
),

conversions as (
    select
        source_mediums.session_id,
        count(*) as orders_count,
        sum(orders.revenue) as revenue
    from source_mediums
    inner join orders
        on
            source_mediums.customer_id = orders.customer_id
            and orders.order_status = 'completed'
            and source_mediums.started_at <= orders.ordered_at
            and orders.ordered_at <= {{ dbt.dateadd('minute', timeout, 'source_mediums.ended_at') }}
    group by source_mediums.session_id
)

select
    source_mediums.session_id,
    source_mediums.customer_id,
    source_mediums.session_number,
    source_mediums.started_at,
    source_mediums.ended_at,
    {{ dbt.datediff('source_mediums.started_at', 'source_mediums.ended_at', 'second') }}
        as duration_seconds,
    source_mediums.event_count,
    source_mediums.page_view_count,
    source_mediums.landing_page,
    source_mediums.landing_page_url,
    source_mediums.referrer,
    source_mediums.referrer_host,
    source_mediums.utm_source,
    source_mediums.utm_medium,
    source_mediums.utm_campaign,
    source_mediums.source,
    source_mediums.medium,
    channels.channel,
    coalesce(conversions.orders_count, 0) > 0 as converted,
    coalesce(conversions.orders_count, 0) as orders_count,
    coalesce(conversions.revenue, 0) as revenue
from source_mediums
inner join channels
    on
        source_mediums.source = channels.source
        and source_mediums.medium = channels.medium
left join conversions
    on source_mediums.session_id = conversions.session_id
