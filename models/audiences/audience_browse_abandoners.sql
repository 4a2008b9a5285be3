{#- One row per customer who viewed products at least 3 times in the 7 days up to the audience's
    reference time (macro audience_as_of) and placed no order in those days, with an email and
    email marketing consent: the people a "still thinking about it?" email is for. A view is a
    Product Viewed track (the Segment e-commerce event); page views are not counted too, because
    a tracked site sends both for one view. Any order in the window, whatever its status, takes
    the customer out. -#}
{%- set window_days = 7 -%}
{%- set min_product_views = 3 -%}

with

customers as (
    select * from {{ ref('customers') }}
),

customer_events as (
    select * from {{ ref('customer_events') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
),

time_window as (
    select
        {{ dbt.dateadd('day', -window_days, 'as_of') }} as window_start,
        as_of as window_end
    from (select {{ tessera.audience_as_of('customer_events') }} as as_of) as reference_time
),

window_events as (
    select customer_events.*
    from customer_events
    cross join time_window
    where
        customer_events.customer_id is not null
        and customer_events.occurred_at > time_window.window_start
        and customer_events.occurred_at <= time_window.window_end
),

window_activity as (
    select
        customer_id,
        sum(
            case when event_type = 'track' and event_name = 'Product Viewed' then 1 else 0 end
        ) as product_views_count,
        sum(case when event_type = 'order' then 1 else 0 end) as orders_count,
        max(
            case when event_type = 'track' and event_name = 'Product Viewed' then occurred_at end
        ) as last_product_viewed_at
    from window_events
    group by customer_id
),

members as (
    select
        customer_id,
        product_views_count,
        last_product_viewed_at
    from window_activity
    where product_views_count >= {{ min_product_views }} and orders_count = 0
),

final as (
    select
        -- ids
        members.customer_id,

        -- strings and consent flags
        {{ tessera.audience_profile_columns('customers') }},

        -- numerics
        members.product_views_count,

        -- timestamps
        members.last_product_viewed_at
    from members
    inner join customers on members.customer_id = customers.customer_id
    left join customer_erasures on members.customer_id = customer_erasures.customer_id
    where
        customer_erasures.customer_id is null
        and customers.has_consent_email_marketing
        and customers.email is not null
)

select * from final
