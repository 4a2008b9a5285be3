{#- One row per valid order, attributed to the customer of its identifiers in priority order: the
    shop's own customer ref names an account, an email or phone can be a household's. An order
    whose identifiers are all blocked stays, unattributed; an order of an erased customer stays
    too (bookkeeping must still add up) but loses its customer. -#}
{%- set order_identifiers = [
    ('shop_customer_ref', 'shop_customer_ref'),
    ('email', 'email'),
    ('phone', 'phone'),
    ('user_id', 'user_id'),
    ('anonymous_id', 'anonymous_id'),
] -%}

with

stg_shop__orders as (
    select * from {{ ref('stg_shop__orders') }}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
),

resolved as (
    {{ tessera.resolve_customer_id(
        'stg_shop__orders', 'identity_customer_map', order_identifiers
    ) }}
),

attributed as (
    select
        resolved.order_id,
        resolved.currency,
        resolved.order_status,
        resolved.channel,
        resolved.total_amount,
        resolved.ordered_at,
        cast(
            case when resolved.order_status = 'completed' then resolved.total_amount else 0 end
            as decimal(18, 2)
        ) as revenue,
        case
            when customer_erasures.customer_id is null then resolved.customer_id
        end as customer_id,
        case
            when customer_erasures.customer_id is not null then 'erased'
            when resolved.customer_id is not null then 'attributed'
            else 'unresolved'
        end as attribution_status
    from resolved
    left join customer_erasures on resolved.customer_id = customer_erasures.customer_id
),

sequenced as (
    select
        *,
        case
            when customer_id is not null
                then row_number() over (
                    partition by customer_id
                    order by ordered_at, {{ tessera.bytewise('order_id') }}
                )
        end as order_sequence
    from attributed
),

flagged as (
    select
        *,
        order_sequence = 1 as is_first_order
    from sequenced
),

final as (
    select
        -- ids
        order_id,
        customer_id,

        -- strings
        currency,
        order_status,
        channel,
        attribution_status,

        -- numerics
        total_amount,
        revenue,
        order_sequence,

        -- booleans
        is_first_order,

        -- timestamps
        ordered_at
    from flagged
)

select * from final
