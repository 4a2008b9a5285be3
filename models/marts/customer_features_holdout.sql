{#- One row per customer with a completed order by the start of the holdout period: features as
    of that day and what the customer did in the holdout. The holdout is the last
    tessera_churn_window_days days of the calibration period; the churn classifier learns from
    it (churned = no purchase and no activity in it) and the BG/NBD fit is checked on it
    (predicted against actual purchases).

    Incremental as customer_features is: the customers rebuilt in customers since the last run,
    and those whose features from orders alone or holdout purchases, recomputed for everyone,
    differ from the stored row. -#}
{%- set window_days = tessera.churn_window_days() -%}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ tessera.delete_customers_without_purchases(
        tessera.clv_calibration_end(ref('orders')) ~ ' - ' ~ tessera.churn_window_days(),
        tessera.order_feature_columns() + ['holdout_purchase_days', '_built_with'],
    ) }}",
) }}
{%- set built_with = tessera.settings_digest(tessera.feature_settings()) -%}
{%- set incremental = tessera.builds_incrementally(
    tessera.order_feature_columns() + ['holdout_purchase_days', '_built_with']
) %}
-- depends_on: {{ ref('customers') }}

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

{# Every customer's features from orders alone: what the comparison with the stored rows needs. #}
no_events as (
    select * from customer_events
    where 1 = 0
),

order_features as (
    select
        features_from_orders.*,
        coalesce(holdout_purchases.holdout_purchase_days, 0) as holdout_purchase_days
    from (
        {{ tessera.customer_features_as_of(
            'orders', 'no_events', '(select holdout_start_date from holdout_period)',
        ) }}
    ) as features_from_orders
    left join holdout_purchases
        on features_from_orders.customer_id = holdout_purchases.customer_id
),

rebuilt_customers as (
    {{ tessera.customers_with_changed_features(
        'order_features', 'as_of_date', 'holdout_start_date', built_with, incremental,
        ['holdout_purchase_days'],
    ) }}
),

rebuilt_orders as (
    {{ tessera.rows_of_rebuilt_customers('orders', incremental) }}
),

rebuilt_events as (
    {{ tessera.rows_of_rebuilt_customers('customer_events', incremental) }}
),

features as (
    {{ tessera.customer_features_as_of(
        'rebuilt_orders',
        'rebuilt_events',
        '(select holdout_start_date from holdout_period)',
    ) }}
),

holdout_activity as (
    select
        rebuilt_events.customer_id,
        count(distinct cast(rebuilt_events.occurred_at as date)) as holdout_active_days
    from rebuilt_events
    cross join holdout_period
    where
        rebuilt_events.customer_id is not null
        and cast(rebuilt_events.occurred_at as date) > holdout_period.holdout_start_date
        and cast(rebuilt_events.occurred_at as date) <= holdout_period.holdout_end_date
    group by rebuilt_events.customer_id
),

final as (
    select
        -- ids
        features.customer_id,

        -- strings
        '{{ var("tessera_clv_time_unit") }}' as time_unit,

        -- numerics
        {{ tessera.customer_feature_numerics('features') }},
        coalesce(holdout_purchases.holdout_purchase_days, 0) as holdout_purchase_days,
        coalesce(holdout_activity.holdout_active_days, 0) as holdout_active_days,

        -- booleans
        holdout_purchases.customer_id is null
        and holdout_activity.customer_id is null as is_churned,

        -- dates
        features.first_purchase_date,
        features.last_purchase_date,
        holdout_period.holdout_start_date,
        holdout_period.holdout_end_date,

        -- timestamps
        {{ tessera.run_timestamp() }} as _built_at,
        '{{ built_with }}' as _built_with
    from features
    inner join rebuilt_customers on features.customer_id = rebuilt_customers.customer_id
    cross join holdout_period
    left join holdout_purchases on features.customer_id = holdout_purchases.customer_id
    left join holdout_activity on features.customer_id = holdout_activity.customer_id
)

select * from final
