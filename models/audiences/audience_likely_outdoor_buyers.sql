{#- One row per customer likely to buy soon who looks at outdoor products but has never bought
    one: in the high or medium cohort of propensity model will_purchase_30d
    (customer_propensity_scores), with a product view or cart add in category outdoor and no
    completed order item in it (product_interactions), with an email and email marketing
    consent. Carries the customer's recommended products and favourite categories
    (customer_product_traits) for the campaign. Empty until the propensity step has run. -#}
{%- set category = 'outdoor' -%}
{%- set propensity_model = 'will_purchase_30d' -%}
{%- set likely_cohorts = "'high', 'medium'" -%}

with

customers as (
    select * from {{ ref('customers') }}
),

customer_propensity_scores as (
    select * from {{ ref('customer_propensity_scores') }}
),

product_interactions as (
    select * from {{ ref('product_interactions') }}
),

customer_product_traits as (
    select * from {{ ref('customer_product_traits') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
),

likely_buyers as (
    select
        customer_id,
        probability as purchase_probability,
        cohort as purchase_cohort
    from customer_propensity_scores
    where
        model = '{{ propensity_model }}'
        and cohort in ({{ likely_cohorts }})
),

category_interest as (
    select
        customer_id,
        max(case when interaction_kind = 'purchase' then 1 else 0 end) as has_bought,
        max(interacted_at) as last_interest_at
    from product_interactions
    where category = '{{ category }}'
    group by customer_id
),

members as (
    select
        likely_buyers.customer_id,
        likely_buyers.purchase_probability,
        likely_buyers.purchase_cohort,
        category_interest.last_interest_at
    from likely_buyers
    inner join category_interest
        on likely_buyers.customer_id = category_interest.customer_id
    where category_interest.has_bought = 0
),

final as (
    select
        -- ids
        members.customer_id,

        -- strings and consent flags
        {{ tessera.audience_profile_columns('customers') }},
        members.purchase_cohort,
        customer_product_traits.product_affinity,
        customer_product_traits.recommended_products,
        customer_product_traits.top_recommended_product,

        -- numerics
        members.purchase_probability,

        -- timestamps
        members.last_interest_at
    from members
    inner join customers on members.customer_id = customers.customer_id
    left join customer_product_traits
        on members.customer_id = customer_product_traits.customer_id
    left join customer_erasures on members.customer_id = customer_erasures.customer_id
    where
        customer_erasures.customer_id is null
        and customers.has_consent_email_marketing
        and customers.email is not null
)

select * from final
