{#- One row per valid product of an order, with the order's customer, status and time: what each
    customer bought. -#}
with

stg_shop__order_items as (
    select * from {{ ref('stg_shop__order_items') }}
),

orders as (
    select * from {{ ref('orders') }}
),

final as (
    select
        -- ids
        items.order_item_id,
        items.order_id,
        orders.customer_id,
        items.product_id,
        items.sku,

        -- strings
        items.product_name,
        items.category,
        orders.currency,
        orders.order_status,

        -- numerics
        items.price,
        items.quantity,
        cast(items.price * items.quantity as decimal(18, 2)) as line_amount,

        -- timestamps
        orders.ordered_at
    from stg_shop__order_items as items
    inner join orders on items.order_id = orders.order_id
)

select * from final
