with

base_items as (
    select * from {{ ref('base_shop__order_items') }}
),

final as (
    select
        order_item_id,
        order_id,
        product_id,
        sku,
        product_name,
        category,
        price,
        quantity
    from base_items
    where rejection_reason is null
)

select * from final
