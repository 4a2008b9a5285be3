{#- One row per customer with at least 2 completed orders who consented to advertising and has
    an email or a phone to match on: the seed of lookalike and loyalty campaigns on ad
    platforms. A trait filter on customers, with no time window. -#}
{%- set min_completed_orders = 2 -%}

with

customers as (
    select * from {{ ref('customers') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
),

members as (
    select
        customer_id,
        completed_orders_count,
        lifetime_revenue,
        last_order_at
    from customers
    where
        completed_orders_count >= {{ min_completed_orders }}
        and has_consent_advertising
        and (email is not null or phone is not null)
),

final as (
    select
        -- ids
        members.customer_id,

        -- strings and consent flags
        {{ tessera.audience_profile_columns('customers') }},

        -- numerics
        members.completed_orders_count,
        members.lifetime_revenue,

        -- timestamps
        members.last_order_at
    from members
    inner join customers on members.customer_id = customers.customer_id
    left join customer_erasures on members.customer_id = customer_erasures.customer_id
    where customer_erasures.customer_id is null
)

select * from final
