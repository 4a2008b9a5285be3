{#- One row per customer and propensity model of the last propensity run who is still a
    customer: the probability, its percentile among the model's customers, a cohort by
    percentile (var tessera_propensity_cohorts) and the factors raising and lowering it. -#}
{%- set cohorts = var('tessera_propensity_cohorts') -%}
{%- set valid = cohorts.high is number and cohorts.medium is number
    and 0 < cohorts.medium <= cohorts.high < 100 -%}
{%- if not valid -%}
    {{ exceptions.raise_compiler_error(
        "tessera_propensity_cohorts must be {high: h, medium: m} with 0 < m <= h < 100, got "
        ~ cohorts
    ) }}
{%- endif -%}

with

customer_propensity_predictions as (
    select * from {{ tessera.predictions_or_empty('customer_propensity_predictions') }}
        as predictions
),

customers as (
    select * from {{ ref('customers') }}
),

current_customers as (
    select customer_propensity_predictions.*
    from customer_propensity_predictions
    inner join customers
        on customer_propensity_predictions.customer_id = customers.customer_id
),

ranked as (
    select
        current_customers.*,
        100 * percent_rank() over (
            partition by current_customers.model
            order by current_customers.probability
        ) as percentile
    from current_customers
),

final as (
    select
        -- ids
        customer_id,

        -- strings
        model,
        case
            when percentile >= {{ cohorts.high }} then 'high'
            when percentile >= {{ cohorts.medium }} then 'medium'
            else 'low'
        end as cohort,
        factors_raising,
        factors_lowering,
        model_version,

        -- numerics
        probability,
        percentile,

        -- timestamps
        scored_at
    from ranked
)

select * from final
