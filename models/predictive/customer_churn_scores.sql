{#- One row per customer scored by the last predictive run who is still a customer, with a risk
    tier from the churn probability and P(alive) (var tessera_churn_risk_tiers). P(alive) is 1
    for every one-time buyer, so it can only raise a tier, never lower one. -#}
{%- set tiers = var('tessera_churn_risk_tiers') -%}
{%- set valid = tiers.high is number and tiers.medium is number
    and 0 < tiers.medium <= tiers.high < 1 -%}
{%- if not valid -%}
    {{ exceptions.raise_compiler_error(
        "tessera_churn_risk_tiers must be {high: h, medium: m} with 0 < m <= h < 1, got " ~ tiers
    ) }}
{%- endif -%}

with

customer_churn_predictions as (
    select * from {{ tessera.predictions_or_empty('customer_churn_predictions') }}
        as predictions
),

customers as (
    select * from {{ ref('customers') }}
),

tiered as (
    select
        customer_churn_predictions.*,
        case
            when
                customer_churn_predictions.churn_probability >= {{ tiers.high }}
                or customer_churn_predictions.p_alive < 1 - {{ tiers.high }}
                then 'high'
            when
                customer_churn_predictions.churn_probability >= {{ tiers.medium }}
                or customer_churn_predictions.p_alive < 1 - {{ tiers.medium }}
                then 'medium'
            else 'low'
        end as risk_tier
    from customer_churn_predictions
    inner join customers on customer_churn_predictions.customer_id = customers.customer_id
),

final as (
    select
        -- ids
        customer_id,

        -- strings
        risk_tier,
        model_version,

        -- numerics
        churn_probability,
        p_alive,

        -- timestamps
        scored_at
    from tiered
)

select * from final
