{#- One row per customer with a completed order by the start of the holdout period: features as
    of that day and what the customer did in the holdout. The holdout is the last
    tessera_churn_window_days days of the calibration period; the churn classifier learns from
    it (churned = no purchase and no activity in it) and the BG/NBD fit is checked on it
    (predicted against actual purchases). -#}
{%- set window_days = tessera.churn_window_days() -%}

with

orders as (
    select * from {{ ref('orders') }}
),

customer_events as (
    select * from {{ ref('customer_events') }}
),

holdout_period as (
    select
        {{ tessera.clv_calibration_end('orders') }} - {{ window_days }} as holdout_start_date,
        {{ tessera.clv_calibration_end('orders') }} as holdout_end_date
),

features as (
    {{ tessera.customer_features_as_of(
        'orders',
        'customer_events',
        '(select holdout_start_date from holdout_period)',
    ) }}
),

holdout_purchases as (
    select
        orders.customer_id,
        count(distinct cast(orders.ordered_at as date)) as holdout_purchase_days
    from orders
    cross join holdout_period
    where
        orders.customer_id is not null
        and orders.order_status = 'completed'
        and cast(orders.ordered_at as date) > holdout_period.holdout_start_date
        and cast(orders.ordered_at as date) <= holdout_period.holdout_end_date
    group by orders.customer_id
),

holdout_activity as (
    select
        customer_events.customer_id,
        count(distinct cast(customer_events.occurred_at as date)) as holdout_active_days
    from customer_events
    cross join holdout_period
    where
        customer_events.customer_id is not null
        and cast(customer_events.occurred_at as date) > holdout_period.holdout_start_date
        and cast(customer_events.occurred_at as date) <= holdout_period.holdout_end_date
    group by customer_events.customer_id
),

final as (
    select
        -- ids
        features.customer_id,

        -- strings
        '{{ var("tessera_clv_time_unit") }}' as time_unit,

        -- numerics
        features.frequency,
        features.recency,
        features.t,
        features.monetary_value,
        features.purchase_days_count,
        features.first_purchase_value,
        features.completed_revenue,
        features.orders_count,
        features.uncompleted_orders_count,
        features.days_since_last_purchase,
        features.purchase_days_in_window,
        features.events_count,
        features.support_tickets_count,
        features.active_days_in_window,
        features.days_since_last_activity,
        coalesce(holdout_purchases.holdout_purchase_days, 0) as holdout_purchase_days,
        coalesce(holdout_activity.holdout_active_days, 0) as holdout_active_days,

        -- booleans
        holdout_purchases.customer_id is null
        and holdout_activity.customer_id is null as is_churned,

        -- dates
        features.first_purchase_date,
        features.last_purchase_date,
        holdout_period.holdout_start_date,
        holdout_period.holdout_end_date
    from features
    cross join holdout_period
    left join holdout_purchases on features.customer_id = holdout_purchases.customer_id
    left join holdout_activity on features.customer_id = holdout_activity.customer_id
)

select * from final
