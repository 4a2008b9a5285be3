{#- One row per identifier of each customer, with when and in how many sources it was seen.
    Blocked identifiers belong to no customer and are not here; neither are erased customers.

    Incremental: a run rebuilds only the identifiers aggregated again by identity_identifiers,
    withdrawn or given another customer since it last ran; the pre-hook first deletes their rows
    and those of customers erased since. A withdrawn deletion request is only seen by a
    --full-refresh. -#}
{{ config(
    materialized='incremental',
    unique_key=['identifier_type', 'identifier_value'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook=[
        "{{ tessera.delete_rebuilt_identifiers(tessera.customer_identities_to_rebuild()) }}",
        "{{ tessera.delete_erased_customers() }}",
    ],
) }}
{%- set incremental = tessera.builds_incrementally() %}
-- depends_on: {{ ref('identity_customer_registry') }}
-- depends_on: {{ ref('identity_retracted_observations') }}

with

{%- if incremental %}

last_built as (
    {{ tessera.last_built() }}
),

changed_identifiers as (
    {{ tessera.customer_identities_to_rebuild() }}
),
{%- endif %}

observed as (
    {%- if incremental %}
    {{ tessera.rows_of_changed_identifiers(ref('identity_identifiers')) }}
    {%- else %}
        select * from {{ ref('identity_identifiers') }}
    {%- endif %}
),

identity_customer_map as (
    select * from {{ ref('identity_customer_map') }}
),

customer_erasures as (
    select * from {{ ref('customer_erasures') }}
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
    left join customer_erasures
        on identity_customer_map.customer_id = customer_erasures.customer_id
    where customer_erasures.customer_id is null
)

select * from final
