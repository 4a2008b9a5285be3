with

base_items as (
    select * from {{ ref('base_shop__order_items') }}
),

final as (
    select
        rejection_reason,
        order_id,
        product_id,
        sku,
        product_name,
        category,
        price_raw as price,
        quantity_raw as quantity
    from base_items
    where rejection_reason is not null
)

select * from final
