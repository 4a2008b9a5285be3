{#- One row per customer: the golden record, chosen field by field by the survivorship rules of
    var tessera_survivorship (macro survive_field), with activity, order and consent traits.
    Erased customers are not here.

    Incremental: a run rebuilds only the customers whose inputs changed since it last ran
    (macro customers_changed_by_identity): those an identifier moved to or from, those whose
    identifiers were observed or withdrawn (every event, order, ticket, identify and contact row
    is observed through its identifiers), and those whose order, product or consent traits,
    recomputed for every customer (cheap aggregates), differ from the stored row; every customer
    when the rows were built under other survivorship rules or consent purposes. The pre-hook
    first deletes the customers who are gone (merged into another, erased). Editing a CRM contact
    in place without moving its updated_at is not seen, as in the identity graph. -#}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ tessera.delete_vanished_customers(
        tessera.customers_purchase_columns() + ['_built_with']
    ) }}",
) }}
{%- set identifier_types = [
    'anonymous_id', 'user_id', 'email', 'phone', 'crm_contact_id', 'shop_customer_ref', 'device_id',
] -%}
{#- The golden-record fields; field_candidates below says where their values come from. Email and
    phone candidates are the customer's own linkable identifiers, so a blocked value such as
    test@test.com never becomes a golden email. -#}
{%- set golden_fields = ['email', 'phone', 'first_name', 'last_name', 'company'] -%}
{%- set survivorship = var('tessera_survivorship') -%}
{%- for field in survivorship if field not in golden_fields -%}
    {{ exceptions.raise_compiler_error(
        "tessera_survivorship names unknown field " ~ field ~ "; fields: " ~ golden_fields | join(', ')
    ) }}
{%- endfor -%}
{%- for field in golden_fields if field not in survivorship -%}
    {{ exceptions.raise_compiler_error(
        "tessera_survivorship has no rule for " ~ field ~ ", e.g. " ~ field ~ ": {rule: most_recent}"
    ) }}
{%- endfor -%}
{%- set purposes = var('tessera_consent_purposes') -%}
{%- for purpose in purposes if not modules.re.match('^[a-z][a-z0-9_]*$', purpose) -%}
    {{ exceptions.raise_compiler_error(
        "tessera_consent_purposes: " ~ purpose ~ " is not a lowercase snake_case purpose"
    ) }}
{%- endfor -%}

{%- set purchase_columns = tessera.customers_purchase_columns() -%}
{#- shape: rows built before the golden record named its sources are rebuilt once. -#}
{%- set built_with = tessera.settings_digest(
    ['tessera_survivorship', 'tessera_consent_purposes'], shape='golden record with sources'
) -%}
{%- set incremental = tessera.builds_incrementally(purchase_columns + ['_built_with']) %}
-- depends_on: {{ ref('identity_customer_registry') }}
-- depends_on: {{ ref('identity_edges') }}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),

reassigned_identifiers as (
    select distinct * from (
        {{ tessera.identifiers_stamped_since_built('identity_customer_registry', 'assigned_at') }}
    ) as reassigned
),
{%- endif %}

customer_identities as (
    select * from {{ ref('customer_identities') }}
),

customer_events as (
    select * from {{ ref('customer_events') }}
),

orders as (
    select * from {{ ref('orders') }}
),

order_items as (
    select * from {{ ref('order_items') }}
),

identity_observations as (
    select * from {{ ref('identity_observations') }}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

stg_segment__identifies as (
    select * from {{ ref('stg_segment__identifies') }}
),

stg_crm__contacts as (
    select * from {{ ref('stg_crm__contacts') }}
),

stg_privacy__consents as (
    select * from {{ ref('stg_privacy__consents') }}
),

customer_ids as (
    select distinct customer_id from customer_identities
),

order_traits as (
    select
        customer_id,
        count(*) as orders_count,
        sum(case when order_status = 'completed' then 1 else 0 end) as completed_orders_count,
        sum(revenue) as lifetime_revenue,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at
    from orders
    where customer_id is not null
    group by customer_id
),

-- What each customer bought in completed orders: distinct products, and the categories that
-- took most of the money (up to three, ties by name).
bought_items as (
    select
        customer_id,
        category,
        line_amount,
        coalesce(product_id, sku) as product_key
    from order_items
    where customer_id is not null and order_status = 'completed'
),

product_traits as (
    select
        customer_id,
        count(distinct product_key) as distinct_products_count
    from bought_items
    group by customer_id
),

category_amounts as (
    select
        customer_id,
        category,
        sum(line_amount) as category_amount
    from bought_items
    where category is not null
    group by customer_id, category
),

ranked_categories as (
    select
        customer_id,
        category,
        row_number() over (
            partition by customer_id
            order by category_amount desc, {{ tessera.bytewise('category') }}
        ) as category_rank
    from category_amounts
),

category_traits as (
    select
        customer_id,
        {{ dbt.listagg('category', "','", 'order by category_rank') }} as top_categories
    from ranked_categories
    where category_rank <= 3
    group by customer_id
),

order_channels as (
    select distinct
        customer_id,
        channel
    from orders
    where customer_id is not null and channel is not null
),

channel_traits as (
    select
        customer_id,
        {{ dbt.listagg('channel', "','", 'order by ' ~ tessera.bytewise('channel')) }}
            as channels
    from order_channels
    group by customer_id
),

consent_records as (
    select
        identity_customer_map.customer_id,
        stg_privacy__consents.purpose,
        stg_privacy__consents.is_granted,
        stg_privacy__consents.recorded_at,
        stg_privacy__consents.consent_record_id
    from stg_privacy__consents
    inner join identity_customer_map
        on
            stg_privacy__consents.subject_type = identity_customer_map.identifier_type
            and stg_privacy__consents.subject_value = identity_customer_map.identifier_value
),

latest_consents as (
    select
        *,
        row_number() over (
            partition by customer_id, purpose
            order by
                recorded_at desc,
                -- at the same instant a revocation beats a grant: when in doubt, no consent
                is_granted asc,
                {{ tessera.bytewise('consent_record_id') }} asc
        ) as record_rank
    from consent_records
),

consent_traits as (
    select
        customer_id,
        {%- for purpose in purposes %}
            max(case when purpose = '{{ purpose }}' and is_granted then 1 else 0 end) = 1
                as has_consent_{{ purpose }},
        {%- endfor %}
        max(recorded_at) as consent_updated_at
    from latest_consents
    where record_rank = 1
    group by customer_id
),

{# The traits of orders, products and consents, for every customer: cheap aggregates, so an
   incremental run computes them all and compares them with the stored rows. #}
purchase_traits as (
    select
        customer_ids.customer_id,
        channel_traits.channels,
        category_traits.top_categories,
        coalesce(order_traits.orders_count, 0) as orders_count,
        coalesce(order_traits.completed_orders_count, 0) as completed_orders_count,
        cast(coalesce(order_traits.lifetime_revenue, 0) as decimal(18, 2)) as lifetime_revenue,
        {{ tessera.divide_money(
            'order_traits.lifetime_revenue', 'order_traits.completed_orders_count'
        ) }} as average_order_value,
        coalesce(product_traits.distinct_products_count, 0) as distinct_products_count,
        {%- for purpose in purposes %}
            coalesce(consent_traits.has_consent_{{ purpose }}, false) as has_consent_{{ purpose }},
        {%- endfor %}
        order_traits.first_order_at,
        order_traits.last_order_at,
        consent_traits.consent_updated_at
    from customer_ids
    left join order_traits on customer_ids.customer_id = order_traits.customer_id
    left join channel_traits on customer_ids.customer_id = channel_traits.customer_id
    left join product_traits on customer_ids.customer_id = product_traits.customer_id
    left join category_traits on customer_ids.customer_id = category_traits.customer_id
    left join consent_traits on customer_ids.customer_id = consent_traits.customer_id
),

{# The customers this run builds: every one, or those whose inputs changed since the last run. #}
rebuilt_customers as (
    {%- if incremental %}
        {{ tessera.customers_changed_by_identity() }}
        union
        select purchase_traits.customer_id
        from purchase_traits
        left join {{ this }} as stored on purchase_traits.customer_id = stored.customer_id
        where
            stored.customer_id is null
            or stored._built_with <> '{{ built_with }}'
            {%- for column in purchase_columns %}
                or purchase_traits.{{ column }} is distinct from stored.{{ column }}
            {%- endfor %}
    {%- else %}
        select customer_id from customer_ids
    {%- endif %}
),

rebuilt_identities as (
    {{ tessera.rows_of_rebuilt_customers('customer_identities', incremental) }}
),

rebuilt_events as (
    {{ tessera.rows_of_rebuilt_customers('customer_events', incremental) }}
),

rebuilt_customer_map as (
    {{ tessera.rows_of_rebuilt_customers('identity_customer_map', incremental) }}
),

identity_traits as (
    select
        customer_id,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        {% for identifier_type in identifier_types -%}
            sum(case when identifier_type = '{{ identifier_type }}' then 1 else 0 end)
                as {{ identifier_type }}s_count,
        {% endfor -%}
        count(*) as identifiers_count
    from rebuilt_identities
    group by customer_id
),

event_traits as (
    select
        customer_id,
        sum(case when event_type = 'page' then 1 else 0 end) as page_views_count,
        sum(case when event_type = 'track' then 1 else 0 end) as track_events_count,
        sum(case when event_type = 'ticket' then 1 else 0 end) as support_tickets_count
    from rebuilt_events
    where customer_id is not null
    group by customer_id
),

identifies_resolved as (
    {{ tessera.resolve_customer_id('stg_segment__identifies', 'identity_customer_map', [
        ('user_id', 'user_id'), ('email', 'email'), ('phone', 'phone'),
        ('anonymous_id', 'anonymous_id'),
    ]) }}
),

crm_contacts_resolved as (
    {{ tessera.resolve_customer_id('stg_crm__contacts', 'identity_customer_map', [
        ('crm_contact_id', 'crm_contact_id'), ('email', 'email'), ('phone', 'phone'),
    ]) }}
),

identifier_candidates as (
    select
        rebuilt_customer_map.customer_id,
        identity_observations.identifier_type as field_name,
        identity_observations.identifier_value as field_value,
        identity_observations.source_table,
        identity_observations.observed_at
    from identity_observations
    inner join rebuilt_customer_map
        on
            identity_observations.identifier_type = rebuilt_customer_map.identifier_type
            and identity_observations.identifier_value = rebuilt_customer_map.identifier_value
    where identity_observations.identifier_type in ('email', 'phone')
),

attribute_values as (
    select
        customer_id,
        'first_name' as field_name,
        nullif(trim(first_name), '') as field_value,
        'identifies' as source_table,
        identified_at as observed_at
    from identifies_resolved
    union all
    select
        customer_id,
        'last_name' as field_name,
        nullif(trim(last_name), '') as field_value,
        'identifies' as source_table,
        identified_at as observed_at
    from identifies_resolved
    union all
    select
        customer_id,
        'first_name' as field_name,
        nullif(trim(first_name), '') as field_value,
        'crm_contacts' as source_table,
        updated_at as observed_at
    from crm_contacts_resolved
    union all
    select
        customer_id,
        'last_name' as field_name,
        nullif(trim(last_name), '') as field_value,
        'crm_contacts' as source_table,
        updated_at as observed_at
    from crm_contacts_resolved
    union all
    select
        customer_id,
        'company' as field_name,
        nullif(trim(company), '') as field_value,
        'crm_contacts' as source_table,
        updated_at as observed_at
    from crm_contacts_resolved
),

rebuilt_attribute_values as (
    {{ tessera.rows_of_rebuilt_customers('attribute_values', incremental) }}
),

attribute_candidates as (
    select * from rebuilt_attribute_values
    where customer_id is not null and field_value is not null
),

field_candidates as (
    select * from identifier_candidates
    union all
    select * from attribute_candidates
),

surviving_email as (
    {{ tessera.survive_field('field_candidates', 'email', survivorship.email) }}
),

surviving_phone as (
    {{ tessera.survive_field('field_candidates', 'phone', survivorship.phone) }}
),

surviving_first_name as (
    {{ tessera.survive_field('field_candidates', 'first_name', survivorship.first_name) }}
),

surviving_last_name as (
    {{ tessera.survive_field('field_candidates', 'last_name', survivorship.last_name) }}
),

surviving_company as (
    {{ tessera.survive_field('field_candidates', 'company', survivorship.company) }}
),

final as (
    select
        -- ids
        identity_traits.customer_id,

        -- strings
        surviving_email.email,
        surviving_phone.phone,
        surviving_first_name.first_name,
        surviving_last_name.last_name,
        surviving_company.company,
        surviving_email.email_source,
        surviving_phone.phone_source,
        surviving_first_name.first_name_source,
        surviving_last_name.last_name_source,
        surviving_company.company_source,
        purchase_traits.channels,
        purchase_traits.top_categories,

        -- numerics
        coalesce(event_traits.page_views_count, 0) as page_views_count,
        coalesce(event_traits.track_events_count, 0) as track_events_count,
        purchase_traits.orders_count,
        purchase_traits.completed_orders_count,
        purchase_traits.lifetime_revenue,
        purchase_traits.average_order_value,
        purchase_traits.distinct_products_count,
        coalesce(event_traits.support_tickets_count, 0) as support_tickets_count,
        identity_traits.identifiers_count,
        {%- for identifier_type in identifier_types %}
            identity_traits.{{ identifier_type }}s_count,
        {%- endfor %}

        -- booleans
        {%- for purpose in purposes %}
            purchase_traits.has_consent_{{ purpose }},
        {%- endfor %}

        -- timestamps
        identity_traits.first_seen_at,
        identity_traits.last_seen_at,
        purchase_traits.first_order_at,
        purchase_traits.last_order_at,
        purchase_traits.consent_updated_at,
        {{ tessera.run_timestamp() }} as _built_at,
        '{{ built_with }}' as _built_with
    from rebuilt_customers
    inner join identity_traits on rebuilt_customers.customer_id = identity_traits.customer_id
    inner join purchase_traits on identity_traits.customer_id = purchase_traits.customer_id
    left join surviving_email on identity_traits.customer_id = surviving_email.customer_id
    left join surviving_phone on identity_traits.customer_id = surviving_phone.customer_id
    left join surviving_first_name
        on identity_traits.customer_id = surviving_first_name.customer_id
    left join surviving_last_name
        on identity_traits.customer_id = surviving_last_name.customer_id
    left join surviving_company on identity_traits.customer_id = surviving_company.customer_id
    left join event_traits on identity_traits.customer_id = event_traits.customer_id
)

select * from final
