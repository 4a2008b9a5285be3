with

base_orders as (
    select * from {{ ref('base_shop__orders') }}
),

final as (
    select
        rejection_reason,
        order_id,
        shop_customer_ref,
        user_id,
        anonymous_id,
        email_raw as email,
        phone_raw as phone,
        currency,
        order_status,
        channel,
        total_amount_raw as total_amount,
        ordered_at_raw as ordered_at
    from base_orders
    where rejection_reason is not null
)

select * from final
