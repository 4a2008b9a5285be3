{#- Every raw order item, cleaned, with the first contract it breaks (null when none). A product
    is keyed by its product id, else its SKU, and appears once per order. -#}
with

source as (
    select * from {{ ref('landed_shop__order_items') }}
),

staged_orders as (
    select order_id from {{ ref('stg_shop__orders') }}
),

cleaned as (
    select
        -- ids
        nullif(trim(source.order_id), '') as order_id,
        nullif(trim(source.product_id), '') as product_id,
        nullif(trim(source.sku), '') as sku,

        -- strings
        nullif(trim(source.name), '') as product_name,
        nullif(lower(trim(source.category)), '') as category,

        -- numerics
        source.price as price_raw,
        {{ tessera.safe_cast_number('source.price', 'decimal(18, 2)') }} as price,
        source.quantity as quantity_raw,
        {{ tessera.safe_cast_number('source.quantity', dbt.type_numeric()) }} as quantity_number
    from source
),

keyed as (
    select
        *,
        coalesce(product_id, sku) as product_key
    from cleaned
),

numbered as (
    select
        keyed.*,
        staged_orders.order_id is not null as order_is_staged,
        row_number() over (
            partition by keyed.order_id, keyed.product_key
            order by keyed.price_raw, keyed.quantity_raw, keyed.product_name
        ) as key_occurrence
    from keyed
    left join staged_orders on keyed.order_id = staged_orders.order_id
),

validated as (
    select
        {{ tessera.surrogate_key(['order_id', 'product_key']) }} as order_item_id,
        order_id,
        product_id,
        sku,
        product_name,
        category,
        price_raw,
        price,
        quantity_raw,
        case
            when quantity_number = floor(quantity_number) and quantity_number > 0
                then cast(quantity_number as {{ dbt.type_int() }})
        end as quantity,
        case
            when order_id is null then 'missing_id'
            when product_key is null then 'missing_product'
            when key_occurrence > 1 then 'duplicate_id'
            when not order_is_staged then 'unknown_order'
            when
                quantity_number is null
                or quantity_number <> floor(quantity_number)
                or quantity_number <= 0
                then 'invalid_quantity'
            when price is null then 'missing_price'
            when price < 0 then 'negative_price'
        end as rejection_reason
    from numbered
)

select * from validated
