{#- One row per metric: the recommender (macro recommend_products, as customer_recommendations
    serves it) against the most-popular baseline, both trained on the interactions up to a cutoff
    tessera_recommendation_holdout_days days before the latest one and judged on the products
    each customer bought after it. The customers judged are those of customers with a completed
    purchase in the held-out days; k is tessera_recommendation_count:
    - precision@k: the mean over them of (recommended and bought) / k;
    - recall@k: the mean of (recommended and bought) / (distinct products bought);
    - hit rate@k: the share with at least one recommended product bought.
    No rows when nobody bought in the held-out days.

    The columns are in the order of the model evaluation contract (model, model_version, metric,
    value, baseline, baseline_value, higher_is_better, evaluated_on, n), which other models'
    evaluations share and are unioned with by position. -#}
{%- set settings = tessera.recommendation_settings() -%}
{%- set k = settings.count -%}
{%- set model_settings = {} -%}
{%- for name, value in settings.items() if name != 'holdout_days' -%}
    {%- do model_settings.update({name: value}) -%}
{%- endfor -%}
{%- set model_version = 'item_cooccurrence-'
    ~ local_md5(tojson(model_settings, sort_keys=true))[:12] -%}

with

product_interactions as (
    select * from {{ ref('product_interactions') }}
),

customers as (
    select * from {{ ref('customers') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
),

recommendation_exclusions as (
    select * from {{ ref('recommendation_exclusions') }}
),

cutoff as (
    select
        cast(
            {{ dbt.dateadd('day', -settings.holdout_days, 'max(interacted_at)') }} as date
        ) as cutoff_date
    from product_interactions
),

targets as (
    select customers.customer_id
    from customers
    left join customer_erasures on customers.customer_id = customer_erasures.customer_id
    where customer_erasures.customer_id is null
),

held_out_purchases as (
    select distinct
        product_interactions.customer_id,
        product_interactions.product_id
    from product_interactions
    cross join cutoff
    inner join targets on product_interactions.customer_id = targets.customer_id
    where
        product_interactions.interaction_kind = 'purchase'
        and cast(product_interactions.interacted_at as date) > cutoff.cutoff_date
),

evaluated_customers as (
    select
        customer_id,
        count(*) as bought_products
    from held_out_purchases
    group by customer_id
),

model_recommendations as (
    {{ tessera.recommend_products(
        'product_interactions',
        'evaluated_customers',
        'recommendation_exclusions',
        cutoff_date='(select cutoff_date from cutoff)'
    ) }}
),

baseline_recommendations as (
    {{ tessera.recommend_products(
        'product_interactions',
        'evaluated_customers',
        'recommendation_exclusions',
        cutoff_date='(select cutoff_date from cutoff)',
        method='popularity'
    ) }}
),

model_hits as (
    select
        model_recommendations.customer_id,
        count(*) as hits
    from model_recommendations
    inner join held_out_purchases
        on
            model_recommendations.customer_id = held_out_purchases.customer_id
            and model_recommendations.product_id = held_out_purchases.product_id
    group by model_recommendations.customer_id
),

baseline_hits as (
    select
        baseline_recommendations.customer_id,
        count(*) as hits
    from baseline_recommendations
    inner join held_out_purchases
        on
            baseline_recommendations.customer_id = held_out_purchases.customer_id
            and baseline_recommendations.product_id = held_out_purchases.product_id
    group by baseline_recommendations.customer_id
),

customer_hits as (
    select
        evaluated_customers.customer_id,
        cast(evaluated_customers.bought_products as double precision) as bought_products,
        cast(coalesce(model_hits.hits, 0) as double precision) as model_hits,
        cast(coalesce(baseline_hits.hits, 0) as double precision) as baseline_hits
    from evaluated_customers
    left join model_hits on evaluated_customers.customer_id = model_hits.customer_id
    left join baseline_hits on evaluated_customers.customer_id = baseline_hits.customer_id
),

summary as (
    select
        count(*) as evaluated_customers,
        avg(model_hits / {{ k }}) as model_precision,
        avg(baseline_hits / {{ k }}) as baseline_precision,
        avg(model_hits / bought_products) as model_recall,
        avg(baseline_hits / bought_products) as baseline_recall,
        avg(case when model_hits > 0 then 1.0 else 0.0 end) as model_hit_rate,
        avg(case when baseline_hits > 0 then 1.0 else 0.0 end) as baseline_hit_rate
    from customer_hits
    having count(*) > 0
),

metrics as (
    select
        'precision_at_{{ k }}' as metric,
        model_precision as value,
        baseline_precision as baseline_value
    from summary
    union all
    select
        'recall_at_{{ k }}' as metric,
        model_recall as value,
        baseline_recall as baseline_value
    from summary
    union all
    select
        'hit_rate_at_{{ k }}' as metric,
        model_hit_rate as value,
        baseline_hit_rate as baseline_value
    from summary
),

final as (
    select
        'recommendations' as model,
        '{{ model_version }}' as model_version,
        metrics.metric,
        cast(metrics.value as double precision) as value,
        'popularity' as baseline,
        cast(metrics.baseline_value as double precision) as baseline_value,
        true as higher_is_better,
        cutoff.cutoff_date as evaluated_on,
        cast(summary.evaluated_customers as {{ dbt.type_bigint() }}) as n
    from metrics
    cross join summary
    cross join cutoff
)

select * from final
