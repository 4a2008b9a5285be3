{#- One row per customer with a session: how they first came and how they came last, as traits
    a sync or an audience can use. The first touch is the customer's first session, the last
    touch the latest; their campaign is the landing page's utm_campaign (null without one).
    days_to_first_order counts whole days from the first session to the first completed order,
    null for a customer who has not ordered or whose first order came before any session (in a
    shop or by phone). -#}

with

sessions as (
    select * from {{ ref('sessions') }}
),

orders as (
    select * from {{ ref('orders') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id order by started_at, session_id
        ) as first_rank,
        row_number() over (
            partition by customer_id order by started_at desc, session_id desc
        ) as last_rank
    from sessions
),

summarised as (
    select
        customer_id,
        count(*) as sessions_count,
        sum(case when converted then 1 else 0 end) as converted_sessions_count,
        min(started_at) as first_session_at,
        max(started_at) as last_session_at
    from sessions
    group by customer_id
),

first_orders as (
    select
        customer_id,
        min(ordered_at) as first_order_at
    from orders
    where order_status = 'completed' and customer_id is not null
    group by customer_id
)

select
    summarised.customer_id,
    summarised.sessions_count,
    summarised.converted_sessions_count,
    summarised.first_session_at,
    summarised.last_session_at,
    first_touch.channel as first_touch_channel,
    first_touch.utm_campaign as first_touch_campaign,
    first_touch.source as first_touch_source,
    last_touch.channel as last_touch_channel,
    last_touch.utm_campaign as last_touch_campaign,
    last_touch.source as last_touch_source,
    first_orders.first_order_at,
    case
        when first_orders.first_order_at >= summarised.first_session_at
            then {{ dbt.datediff(
                'summarised.first_session_at', 'first_orders.first_order_at', 'day'
            ) }}
    end as days_to_first_order
from summarised
inner join ranked as first_touch
    on summarised.customer_id = first_touch.customer_id and first_touch.first_rank = 1
inner join ranked as last_touch
    on summarised.customer_id = last_touch.customer_id and last_touch.last_rank = 1
left join first_orders
    on summarised.customer_id = first_orders.customer_id
