{#- One row per model and metric: every model of the last runs beside its baseline on data it
    did not see. CLV and churn from the CLV and churn step, the propensity models from theirs
    (orchestration/predictive), the recommender from dbt (recommendation_evaluations). -#}
{%- set columns = [
    'model', 'model_version', 'metric', 'value', 'baseline', 'baseline_value',
    'higher_is_better', 'evaluated_on', 'n'
] -%}

with

clv_churn_evaluations as (
    select * from {{ tessera.predictions_or_empty('clv_churn_evaluations') }} as evaluations
),

propensity_evaluations as (
    select * from {{ tessera.predictions_or_empty('propensity_evaluations') }} as evaluations
),

recommendation_evaluations as (
    select * from {{ ref('recommendation_evaluations') }}
),

unioned as (
    select {{ columns | join(', ') }} from clv_churn_evaluations
    union all
    select {{ columns | join(', ') }} from propensity_evaluations
    union all
    select {{ columns | join(', ') }} from recommendation_evaluations
),

final as (
    select
        -- strings
        model,
        model_version,
        metric,
        baseline,

        -- numerics
        value,
        baseline_value,
        n,

        -- booleans
        higher_is_better,

        -- dates
        evaluated_on,

        -- derived
        case
            when higher_is_better then value < baseline_value
            else value > baseline_value
        end as is_below_baseline
    from unioned
)

select * from final
