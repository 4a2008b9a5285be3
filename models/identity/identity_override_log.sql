{#- One row per change of an identity override, append-only and kept through full refreshes: when
    it was first applied or refused (with why), refused or applied again after a change, and
    withdrawn (gone from the seed and the tool table), with who decided it and why
    (identity_override_requests). The rows stamped by a run name the identifiers whose
    components identity_components solves again. -#}
{{ config(materialized='incremental', full_refresh=false, on_schema_change='fail') }}

with

requests as (
    select
        *,
        case when refused_reason is null then 'applied' else 'refused' end as status
    from {{ ref('identity_override_requests') }}
),

history as (
    {%- if is_incremental() %}
        select * from {{ this }}
    {%- else %}
        select
            cast(null as {{ dbt.type_timestamp() }}) as logged_at,
            cast(null as {{ dbt.type_string() }}) as override_id,
            cast(null as {{ dbt.type_string() }}) as change,
            cast(null as {{ dbt.type_string() }}) as action,
            cast(null as {{ dbt.type_string() }}) as identifier_type,
            cast(null as {{ dbt.type_string() }}) as identifier_value,
            cast(null as {{ dbt.type_string() }}) as other_identifier_type,
            cast(null as {{ dbt.type_string() }}) as other_identifier_value,
            cast(null as {{ dbt.type_string() }}) as created_by,
            cast(null as {{ dbt.type_string() }}) as reason,
            cast(null as {{ dbt.type_string() }}) as origin,
            cast(null as {{ dbt.type_string() }}) as detail
        where 1 = 0
    {%- endif %}
),

latest as (
    select * from (
        select
            *,
            row_number() over (partition by override_id order by logged_at desc) as recency
        from history
    ) as ranked
    where recency = 1
),

changes as (
    select
        requests.override_id,
        requests.status as change,
        requests.action,
        requests.identifier_type,
        requests.identifier_value,
        requests.other_identifier_type,
        requests.other_identifier_value,
        requests.created_by,
        requests.reason,
        requests.origin,
        requests.refused_reason as detail
    from requests
    left join latest on requests.override_id = latest.override_id
    where
        latest.override_id is null
        or latest.change <> requests.status
        or latest.detail is distinct from requests.refused_reason
    union all
    select
        latest.override_id,
        'withdrawn' as change,
        latest.action,
        latest.identifier_type,
        latest.identifier_value,
        latest.other_identifier_type,
        latest.other_identifier_value,
        latest.created_by,
        latest.reason,
        latest.origin,
        cast(null as {{ dbt.type_string() }}) as detail
    from latest
    left join requests on latest.override_id = requests.override_id
    where requests.override_id is null and latest.change <> 'withdrawn'
),

final as (
    select
        {{ tessera.run_timestamp() }} as logged_at,
        override_id,
        change,
        action,
        identifier_type,
        identifier_value,
        other_identifier_type,
        other_identifier_value,
        created_by,
        reason,
        origin,
        detail
    from changes
)

select * from final
