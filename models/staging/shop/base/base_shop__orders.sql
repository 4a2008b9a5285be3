{#- Every raw order, cleaned, with the first contract it breaks (null when none). -#}
with

source as (
    select * from {{ ref('landed_shop__orders') }}
),

default_country as (
    select * from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("tessera_default_country") }}'
),

cleaned as (
    select
        -- ids
        nullif(trim(source.order_id), '') as order_id,
        nullif(trim(source.customer_ref), '') as shop_customer_ref,
        nullif(trim(source.user_id), '') as user_id,
        nullif(trim(source.anonymous_id), '') as anonymous_id,

        -- strings
        source.email as email_raw,
        {{ tessera.normalize_email('source.email') }} as email,
        source.phone as phone_raw,
        {{ tessera.normalize_phone('source.phone') }} as phone,
        nullif(upper(trim(source.currency)), '') as currency,
        nullif(lower(trim(source.status)), '') as order_status,
        nullif(lower(trim(source.channel)), '') as channel,

        -- numerics
        source.total_amount as total_amount_raw,
        {{ tessera.safe_cast_number('source.total_amount', 'decimal(18, 2)') }} as total_amount,

        -- timestamps
        cast(source.ordered_at as {{ dbt.type_string() }}) as ordered_at_raw,
        {{ tessera.safe_cast_timestamp('source.ordered_at') }} as ordered_at
    from source
    left join default_country on 1 = 1
),

numbered as (
    select
        *,
        row_number() over (partition by order_id order by ordered_at_raw) as id_occurrence
    from cleaned
),

validated as (
    select
        order_id,
        shop_customer_ref,
        user_id,
        anonymous_id,
        email_raw,
        email,
        phone_raw,
        phone,
        currency,
        order_status,
        channel,
        total_amount_raw,
        total_amount,
        ordered_at_raw,
        ordered_at,
        case
            when order_id is null then 'missing_id'
            when id_occurrence > 1 then 'duplicate_id'
            when ordered_at_raw is null then 'missing_timestamp'
            when ordered_at is null then 'unparseable_timestamp'
            when email is not null and not {{ tessera.is_valid_email('email') }}
                then 'malformed_email'
            when
                nullif(trim(phone_raw), '') is not null
                and (phone is null or not {{ tessera.is_valid_e164('phone') }})
                then 'malformed_phone'
            when coalesce(shop_customer_ref, email, phone, user_id, anonymous_id) is null
                then 'no_identifier'
            when nullif(trim(total_amount_raw), '') is null then 'missing_amount'
            when total_amount is null then 'unparseable_amount'
            when total_amount < 0 then 'negative_amount'
        end as rejection_reason
    from numbered
)

select * from validated
