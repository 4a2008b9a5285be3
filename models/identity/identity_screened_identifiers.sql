{#- One row per identifier excluded from linking people before any evidence is weighed, with the
    first reason that applies: an ignore override (identity_override_requests), listed in seed
    identifier_blocklist, matching var
    tessera_identity_blocklist_regex, or linked to more browsers or devices than one person uses
    (var tessera_identity_shared_device_thresholds: a shop login used on 25 browsers, a company
    inbox typed on 50). identity_blocked_identifiers adds the identifiers shared by several
    people on the evidence of the graph without these. -#}
{%- set thresholds = var('tessera_identity_shared_device_thresholds') -%}

with

observations as (
    select * from {{ ref('identity_observations') }}
),

edges as (
    select * from {{ ref('identity_edges') }}
),

blocklist as (
    select * from {{ tessera.identity_seed('identifier_blocklist') }}
),

ignores as (
    select * from {{ ref('identity_override_requests') }}
    where action = 'ignore' and refused_reason is null
),

observed as (
    select distinct
        identifier_type,
        identifier_value
    from observations
),

ignored as (
    select
        observed.identifier_type,
        observed.identifier_value,
        0 as reason_priority,
        'override: ignored by ' || coalesce(ignores.created_by, 'unknown') || ': '
        || coalesce(ignores.reason, 'no reason given') as blocked_reason
    from observed
    inner join ignores
        on
            observed.identifier_type = ignores.identifier_type
            and observed.identifier_value = ignores.identifier_value
),

listed as (
    select
        observed.identifier_type,
        observed.identifier_value,
        1 as reason_priority,
        'blocklist: ' || blocklist.reason as blocked_reason
    from observed
    inner join blocklist
        on
            observed.identifier_type = blocklist.identifier_type
            and observed.identifier_value = blocklist.identifier_value
),

patterned as (
    select
        identifier_type,
        identifier_value,
        2 as reason_priority,
        'blocklist pattern' as blocked_reason
    from observed
    where
        {{ tessera.regex_matches(
            'lower(identifier_value)', var('tessera_identity_blocklist_regex')
        ) }}
),

{#- Edges are stored with their two ends ordered by type name, so each device type is counted
    from the end it sits on. -#}
device_links as (
    select
        identifier_type_a as identifier_type,
        identifier_value_a as identifier_value,
        identifier_type_b as device_type
    from edges
    where identifier_type_b in ({{ tessera.quoted_list(thresholds.keys() | list) }})
    union all
    select
        identifier_type_b as identifier_type,
        identifier_value_b as identifier_value,
        identifier_type_a as device_type
    from edges
    where identifier_type_a in ({{ tessera.quoted_list(thresholds.keys() | list) }})
),

fanout as (
    select
        identifier_type,
        identifier_value,
        device_type,
        count(*) as linked_count
    from device_links
    group by identifier_type, identifier_value, device_type
),

thresholds as (
    {%- for device_type, threshold in thresholds.items() %}
        select
            '{{ device_type }}' as device_type,
            {{ threshold }} as max_linked
        {% if not loop.last %}union all{% endif %}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as device_type,
            0 as max_linked
        where 1 = 0
    {%- endfor %}
),

on_many_devices as (
    select
        fanout.identifier_type,
        fanout.identifier_value,
        3 as reason_priority,
        'shared: linked to ' || cast(fanout.linked_count as {{ dbt.type_string() }})
        || ' ' || fanout.device_type || ' values (more than '
        || cast(thresholds.max_linked as {{ dbt.type_string() }}) || ')' as blocked_reason
    from fanout
    inner join thresholds on fanout.device_type = thresholds.device_type
    where fanout.linked_count > thresholds.max_linked
),

reasons as (
    select * from ignored
    union all
    select * from listed
    union all
    select * from patterned
    union all
    select * from on_many_devices
),

ranked as (
    select
        *,
        row_number() over (
            partition by identifier_type, identifier_value
            order by reason_priority, blocked_reason
        ) as reason_rank
    from reasons
),

final as (
    select
        identifier_type,
        identifier_value,
        blocked_reason
    from ranked
    where reason_rank = 1
)

select * from final
