{#- Orders from Segment's e-commerce events, in the orders contract's columns as text (plus
    user_id and anonymous_id, which tie the order to the person): one row per order id, with the
    status of its latest event (completed, refunded, cancelled), the time, total and currency of
    its Order Completed event (else of its latest event; total, else revenue), channel web. An
    event without an order id stays a row of its own, for staging to reject. None when the
    warehouse has no such event table. -#}
{% macro event_orders(tracks_relation) -%}
    {%- set tables = tessera.ecommerce_event_tables(tracks_relation) -%}
    {%- if not tables -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = dbt.type_string() -%}
    {%- set selects = [] -%}
    {%- for relation, status in tables -%}
        {%- set columns = tessera.relation_columns(relation) -%}
        {%- set picked = [] -%}
        {%- for name, candidates in [
            ('message_id', ['id']), ('order_id', ['order_id']), ('user_id', ['user_id']),
            ('anonymous_id', ['anonymous_id']), ('email', ['email', 'context_traits_email']),
            ('phone', ['phone', 'context_traits_phone']), ('total', ['total', 'revenue']),
            ('currency', ['currency']), ('products', ['products']), ('event_time', ['timestamp']),
            ('_loaded_at', ['uuid_ts', 'received_at']),
        ] -%}
            {%- do picked.append(tessera.first_present_column(columns, candidates, 'raw_events') ~ " as " ~ name) -%}
        {%- endfor -%}
        {%- do selects.append("select '" ~ status ~ "' as order_status, " ~ picked | join(', ') ~ " from " ~ relation ~ " as raw_events") -%}
    {%- endfor -%}
    with

    order_events as (
        select
            *,
            coalesce(order_id, 'event:' || message_id) as order_key,
            {{ tessera.safe_cast_timestamp('event_time') }} as event_at
        from (
            {{ selects | join('\n            union all\n            ') }}
        ) as events
    ),

    latest as (
        select
            *,
            row_number() over (
                partition by order_key order by event_at desc, order_status, message_id
            ) as event_rank
        from order_events
    ),

    completed as (
        select
            *,
            row_number() over (partition by order_key order by event_at, message_id) as event_rank
        from order_events
        where order_status = 'completed'
    )

    select
        latest.order_id,
        cast(null as {{ text }}) as customer_ref,
        coalesce(completed.email, latest.email) as email,
        coalesce(completed.phone, latest.phone) as phone,
        coalesce(completed.event_time, latest.event_time) as ordered_at,
        coalesce(completed.total, latest.total) as total_amount,
        coalesce(completed.currency, latest.currency) as currency,
        latest.order_status as status,
        cast('web' as {{ text }}) as channel,
        coalesce(completed.user_id, latest.user_id) as user_id,
        coalesce(completed.anonymous_id, latest.anonymous_id) as anonymous_id,
        coalesce(completed.products, latest.products) as products,
        {{ tessera.safe_cast_timestamp('latest._loaded_at') }} as _loaded_at
    from latest
    left join completed on latest.order_key = completed.order_key and completed.event_rank = 1
    where latest.event_rank = 1
{%- endmacro %}
