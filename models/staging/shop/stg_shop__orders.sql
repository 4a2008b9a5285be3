with

base_orders as (
    select * from {{ ref('base_shop__orders') }}
),

final as (
    select
        order_id,
        shop_customer_ref,
        user_id,
        anonymous_id,
        email,
        phone,
        currency,
        order_status,
        channel,
        total_amount,
        ordered_at
    from base_orders
    where rejection_reason is null
)

select * from final
