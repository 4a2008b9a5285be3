{#- One row per customer with a completed order by the end of the calibration period (var
    tessera_clv_calibration_end, default the date of the last order): the inputs of the CLV
    models and of the churn score, as of that day (macro customer_features_as_of). -#}
with

orders as (
    select * from {{ ref('orders') }}
),

customer_events as (
    select * from {{ ref('customer_events') }}
),

features as (
    {{ tessera.customer_features_as_of(
        'orders', 'customer_events', tessera.clv_calibration_end('orders')
    ) }}
),

final as (
    select
        -- ids
        customer_id,

        -- strings
        '{{ var("tessera_clv_time_unit") }}' as time_unit,

        -- numerics
        frequency,
        recency,
        t,
        monetary_value,
        purchase_days_count,
        first_purchase_value,
        completed_revenue,
        orders_count,
        uncompleted_orders_count,
        days_since_last_purchase,
        purchase_days_in_window,
        events_count,
        support_tickets_count,
        active_days_in_window,
        days_since_last_activity,

        -- dates
        first_purchase_date,
        last_purchase_date,
        as_of_date as calibration_end_date
    from features
)

select * from final
