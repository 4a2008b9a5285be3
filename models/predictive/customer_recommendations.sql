{#- One row per customer and recommended product: up to tessera_recommendation_count products for
    every customer of customers, ranked, with a score and the reason in words (macro
    recommend_products: item-to-item co-occurrence in the look-back window, weighted by recency,
    filled up with what is popular). Erased customers, and customers merged into another since,
    get nothing. -#}
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

targets as (
    select customers.customer_id
    from customers
    left join customer_erasures on customers.customer_id = customer_erasures.customer_id
    where customer_erasures.customer_id is null
),

recommendations as (
    {{ tessera.recommend_products(
        'product_interactions', 'targets', 'recommendation_exclusions'
    ) }}
),

final as (
    select
        -- ids
        customer_id,
        product_id,

        -- strings
        reason,
        recommendation_source,

        -- numerics
        recommendation_rank as rank,
        score
    from recommendations
)

select * from final
