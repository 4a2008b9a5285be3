{#- One row per identifier of each customer, with when and in how many sources it was seen.
    Blocked identifiers belong to no customer and are not here; neither are erased customers.

    Incremental: a run rebuilds only the identifiers observed, retracted or given another
    customer since it last ran (from all their observations); the pre-hook first deletes their
    rows and those of customers erased since. A withdrawn deletion request is only seen by a
    --full-refresh. -#}
{{ config(
    materialized='incremental',
    unique_key=['identifier_type', 'identifier_value'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{{ tessera.delete_stale_customer_identities() }}",
) }}
{%- set incremental = tessera.builds_incrementally() %}
-- depends_on: {{ ref('identity_customer_registry') }}
-- depends_on: {{ ref('identity_retracted_observations') }}
-- depends_on: {{ ref('customer_erasures') }}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),

changed_identifiers as (
    {{ tessera.identifiers_changed_since_built() }}
),
{%- endif %}

identity_observations as (
    select observations.*
    from {{ ref('identity_observations') }} as observations
    {%- if incremental %}
    inner join changed_identifiers
        on
            observations.identifier_type = changed_identifiers.identifier_type
            and observations.identifier_value = changed_identifiers.identifier_value
    {%- endif %}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

stg_privacy__deletion_requests as (
    select * from {{ ref('stg_privacy__deletion_requests') }}
),

erased_customers as (
    {{ tessera.erased_customers('stg_privacy__deletion_requests', 'identity_customer_map') }}
),

observed as (
    select
        identifier_type,
        identifier_value,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(distinct source_table) as source_count,
        count(*) as observation_count
    from identity_observations
    group by identifier_type, identifier_value
),

final as (
    select
        -- ids
        identity_customer_map.customer_id,

        -- strings
        identity_customer_map.identifier_type,
        identity_customer_map.identifier_value,

        -- numerics
        observed.source_count,
        observed.observation_count,

        -- timestamps
        observed.first_seen_at,
        observed.last_seen_at,
        {{ tessera.run_timestamp() }} as _built_at
    from identity_customer_map
    inner join observed
        on
            identity_customer_map.identifier_type = observed.identifier_type
            and identity_customer_map.identifier_value = observed.identifier_value
    left join erased_customers
        on identity_customer_map.customer_id = erased_customers.customer_id
    where erased_customers.customer_id is null
)

select * from final
