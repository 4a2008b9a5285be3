{#- One row per identifier excluded from linking people, with the first reason that applies:
    listed in seed identifier_blocklist, matching var tessera_identity_blocklist_regex, or linked
    to more identifiers of one type than var tessera_identity_shared_identifier_thresholds allows
    (a value typed by many different people, also when none of them ever logged in). -#}
{%- set thresholds = var('tessera_identity_shared_identifier_thresholds') -%}

with

observations as (
    select * from {{ ref('identity_observations') }}
),

edges as (
    select * from {{ ref('identity_edges') }}
),

blocklist as (
    select * from {{ ref('identifier_blocklist') }}
),

observed as (
    select distinct
        identifier_type,
        identifier_value
    from observations
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

links as (
    select
        identifier_type_a as identifier_type,
        identifier_value_a as identifier_value,
        identifier_type_b as linked_type,
        identifier_value_b as linked_value
    from edges
    union all
    select
        identifier_type_b as identifier_type,
        identifier_value_b as identifier_value,
        identifier_type_a as linked_type,
        identifier_value_a as linked_value
    from edges
),

fanout as (
    select
        identifier_type,
        identifier_value,
        linked_type,
        count(distinct linked_value) as linked_count
    from links
    group by identifier_type, identifier_value, linked_type
),

thresholds as (
    {%- for identifier_type, threshold in thresholds.items() %}
        select
            '{{ identifier_type }}' as linked_type,
            {{ threshold }} as max_linked
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

shared as (
    select
        fanout.identifier_type,
        fanout.identifier_value,
        3 as reason_priority,
        'shared: linked to ' || cast(fanout.linked_count as {{ dbt.type_string() }})
        || ' ' || fanout.linked_type || ' values (threshold '
        || cast(thresholds.max_linked as {{ dbt.type_string() }}) || ')' as blocked_reason
    from fanout
    inner join thresholds on fanout.linked_type = thresholds.linked_type
    where fanout.linked_count > thresholds.max_linked
),

reasons as (
    select * from listed
    union all
    select * from patterned
    union all
    select * from shared
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
