{#- One row per customer with a completed order by the end of the calibration period (var
    tessera_clv_calibration_end, default the date of the last order): the inputs of the CLV
    models and of the churn score, as of that day (macro customer_features_as_of).

    Incremental: a run rebuilds the customers rebuilt in customers since it last ran (their
    identifiers, and so their events, changed) and those whose features from orders alone,
    recomputed for everyone (cheap: no events), differ from the stored row. When the
    calibration end moves, T changes for everyone and every customer is rebuilt. The pre-hook
    first deletes the customers with no completed order by the calibration end any more. -#}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ tessera.delete_customers_without_purchases(
        tessera.clv_calibration_end(ref('orders')),
        tessera.order_feature_columns() + ['_built_with'],
    ) }}",
) }}
{%- set built_with = tessera.settings_digest(tessera.feature_settings()) -%}
{%- set incremental = tessera.builds_incrementally(
    tessera.order_feature_columns() + ['_built_with']
) %}
-- depends_on: {{ ref('customers') }}

with

orders as (
    select * from {{ ref('orders') }}
),

customer_events as (
    select * from {{ ref('customer_events') }}
),

{# Every customer's features from orders alone: what the comparison with the stored rows needs. #}
no_events as (
    select * from customer_events
    where 1 = 0
),

order_features as (
    {{ tessera.customer_features_as_of(
        'orders', 'no_events', tessera.clv_calibration_end('orders')
    ) }}
),

rebuilt_customers as (
    {{ tessera.customers_with_changed_features(
        'order_features', 'as_of_date', 'calibration_end_date', built_with, incremental
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
        'rebuilt_orders', 'rebuilt_events', tessera.clv_calibration_end('orders')
    ) }}
),

final as (
    select
        -- ids
        features.customer_id,

        -- strings
        '{{ var("tessera_clv_time_unit") }}' as time_unit,

        -- numerics
        {{ tessera.customer_feature_numerics('features') }},

        -- dates
        features.first_purchase_date,
        features.last_purchase_date,
        features.as_of_date as calibration_end_date,

        -- timestamps
        {{ tessera.run_timestamp() }} as _built_at,
        '{{ built_with }}' as _built_with
    from features
    inner join rebuilt_customers on features.customer_id = rebuilt_customers.customer_id
)

select * from final
