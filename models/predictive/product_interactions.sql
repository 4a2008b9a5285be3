{#- One row per customer, product and interaction source row: each completed order item
    (purchase), Product Added track (add_to_cart) and Product Viewed track (view) of a customer,
    weighted by its kind (var tessera_recommendation_interaction_weights). What the recommender
    learns from. A product's category is the one its latest order item gives (the product
    catalogue as the shop's orders show it), so a viewed product has one too once somebody
    bought it. -#}
{%- set weights = tessera.recommendation_settings().weights -%}

with

order_items as (
    select * from {{ ref('order_items') }}
),

customer_events as (
    select * from {{ ref('customer_events') }}
),

catalogue as (
    select
        product_id,
        category
    from (
        select
            product_id,
            category,
            row_number() over (
                partition by product_id
                order by ordered_at desc, {{ tessera.bytewise('category') }}
            ) as category_pick
        from order_items
        where product_id is not null and category is not null
    ) as categorised_items
    where category_pick = 1
),

purchases as (
    select
        order_item_id as interaction_id,
        customer_id,
        product_id,
        'purchase' as interaction_kind,
        'order_items' as source_table,
        ordered_at as interacted_at
    from order_items
    where
        order_status = 'completed'
        and customer_id is not null
        and product_id is not null
),

product_events as (
    select
        event_id as interaction_id,
        customer_id,
        nullif(
            trim(
                {{ tessera.json_field_text(tessera.try_parse_json('properties'), 'product_id') }}
            ),
            ''
        ) as product_id,
        case
            when event_name = 'Product Added' then 'add_to_cart' else 'view'
        end as interaction_kind,
        'customer_events' as source_table,
        occurred_at as interacted_at
    from customer_events
    where
        event_type = 'track'
        and event_name in ('Product Viewed', 'Product Added')
        and customer_id is not null
),

interactions as (
    select * from purchases
    union all
    select * from product_events
    where product_id is not null
),

final as (
    select
        -- ids
        interactions.interaction_id,
        interactions.customer_id,
        interactions.product_id,

        -- strings
        interactions.interaction_kind,
        catalogue.category,
        interactions.source_table,

        -- numerics
        cast(
            case interactions.interaction_kind
                when 'purchase' then {{ weights.purchase }}
                when 'add_to_cart' then {{ weights.add_to_cart }}
                else {{ weights.view }}
            end as double precision
        ) as interaction_weight,

        -- timestamps
        interactions.interacted_at
    from interactions
    left join catalogue on interactions.product_id = catalogue.product_id
)

select * from final
