{#- One row per customer scored by the last predictive run who is still a customer: a merge or
    an erasure since then drops the old row here rather than showing a person who is gone. -#}
with

customer_clv_predictions as (
    select * from {{ tessera.predictions_or_empty('customer_clv_predictions') }}
        as predictions
),

customers as (
    select * from {{ ref('customers') }}
),

final as (
    select
        -- ids
        customer_clv_predictions.customer_id,

        -- strings
        customer_clv_predictions.time_unit,

        -- numerics
        customer_clv_predictions.frequency,
        customer_clv_predictions.recency,
        customer_clv_predictions.t,
        customer_clv_predictions.monetary_value,
        customer_clv_predictions.p_alive,
        customer_clv_predictions.expected_purchases,
        customer_clv_predictions.expected_average_value,
        customer_clv_predictions.discounted_clv,
        customer_clv_predictions.horizon,
        customer_clv_predictions.discount_rate,

        -- timestamps
        customer_clv_predictions.calibration_end_date,
        customer_clv_predictions.scored_at
    from customer_clv_predictions
    inner join customers on customer_clv_predictions.customer_id = customers.customer_id
)

select * from final
