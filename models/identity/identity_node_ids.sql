{#- One row per identifier ever seen, with the integer id the graph algorithms know it by.
    Append-only and kept through full refreshes: an identifier keeps its node id for good, so
    the components stored by one run are still valid in the next and identity_components can
    re-solve only the components that changed. New identifiers are numbered after the highest
    id given out, in order of type and value. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='fail',
) }}

with

identifiers as (
    select
        identifier_type,
        identifier_value
    from {{ ref('identity_identifiers') }}
),

numbered_before as (
    {%- if is_incremental() %}
        select coalesce(max(node_id), 0) as highest_node_id from {{ this }}
    {%- else %}
        select cast(0 as {{ dbt.type_bigint() }}) as highest_node_id
    {%- endif %}
),

new_identifiers as (
    {%- if is_incremental() %}
        select identifiers.*
        from identifiers
        left join {{ this }} as known
            on
                identifiers.identifier_type = known.identifier_type
                and identifiers.identifier_value = known.identifier_value
        where known.node_id is null
    {%- else %}
        select * from identifiers
    {%- endif %}
),

final as (
    select
        new_identifiers.identifier_type,
        new_identifiers.identifier_value,
        cast(
            numbered_before.highest_node_id + row_number() over (
                order by new_identifiers.identifier_type, new_identifiers.identifier_value
            ) as {{ dbt.type_bigint() }}
        ) as node_id,
        {{ tessera.run_timestamp() }} as numbered_at
    from new_identifiers
    cross join numbered_before
)

select * from final
