{#- Every identity override in force, from seed identity_overrides (edited by people) and table
    identity.identity_tool_overrides (written by `tessera identity unmerge`), normalised as staging
    normalises identifiers, with why it is refused (refused_reason) when it cannot be applied:
    an unknown action or identifier type, a missing or malformed value, a link of an identifier
    with itself, an ignore naming a second identifier, or an always_link contradicted by a
    never_link of the same pair (the never_link wins: keeping people apart is the safe side).
    A decision repeated (same action and identifiers) is one override, the earliest written.

    Both tables survive --full-refresh: the seed is a file, the tool table is not built by dbt. -#}
{%- set tool_table = this.incorporate(path={'identifier': 'identity_tool_overrides'}) -%}

with

seeded as (
    select
        action,
        identifier_type,
        identifier_value,
        other_identifier_type,
        other_identifier_value,
        created_by,
        reason,
        cast(null as {{ dbt.type_timestamp() }}) as created_at,
        'seed identity_overrides' as origin
    from {{ tessera.identity_seed('identity_overrides') }}
),

written as (
    select
        action,
        identifier_type,
        identifier_value,
        other_identifier_type,
        other_identifier_value,
        created_by,
        reason,
        created_at,
        'table identity_tool_overrides' as origin
    from {{ tessera.relation_or_empty(tool_table, [
        ('action', dbt.type_string()),
        ('identifier_type', dbt.type_string()),
        ('identifier_value', dbt.type_string()),
        ('other_identifier_type', dbt.type_string()),
        ('other_identifier_value', dbt.type_string()),
        ('created_by', dbt.type_string()),
        ('reason', dbt.type_string()),
        ('created_at', dbt.type_timestamp()),
    ], 'no table identity.identity_tool_overrides yet: no override written by a tool') }} as tool
),

default_country as (
    select * from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("tessera_default_country") }}'
),

requested as (
    select
        nullif(lower(trim(overrides.action)), '') as action,
        nullif(lower(trim(overrides.identifier_type)), '') as identifier_type,
        overrides.identifier_value as identifier_value_raw,
        {{ tessera.normalize_identifier(
            "nullif(lower(trim(overrides.identifier_type)), '')", 'overrides.identifier_value'
        ) }} as identifier_value,
        nullif(lower(trim(overrides.other_identifier_type)), '') as other_identifier_type,
        overrides.other_identifier_value as other_identifier_value_raw,
        {{ tessera.normalize_identifier(
            "nullif(lower(trim(overrides.other_identifier_type)), '')",
            'overrides.other_identifier_value'
        ) }} as other_identifier_value,
        overrides.created_by,
        overrides.reason,
        overrides.created_at,
        overrides.origin
    from (
        select * from seeded
        union all
        select * from written
    ) as overrides
    left join default_country on 1 = 1
),

checked as (
    select
        *,
        case
            when action is null or action not in ('always_link', 'never_link', 'ignore')
                then 'unknown action (always_link, never_link or ignore)'
            else coalesce(
                {{ tessera.rejection_for_subject(
                    'identifier_type', 'identifier_value_raw', 'identifier_value'
                ) }},
                case
                    when
                        action = 'ignore' and (
                            other_identifier_type is not null
                            or nullif(trim(other_identifier_value_raw), '') is not null
                        )
                        then 'ignore names one identifier only'
                    when action <> 'ignore' then
                        coalesce(
                            'other identifier: ' || {{ tessera.rejection_for_subject(
                                'other_identifier_type',
                                'other_identifier_value_raw',
                                'other_identifier_value'
                            ) }},
                            case
                                when
                                    identifier_type = other_identifier_type
                                    and identifier_value = other_identifier_value
                                    then 'an identifier cannot be linked with itself'
                            end
                        )
                end
            )
        end as invalid_reason
    from requested
),

{# A link is stored with its two identifiers in one order (type, then value), so a pair given
    either way round is one override. #}
ordered as (
    select
        action,
        created_by,
        reason,
        created_at,
        origin,
        invalid_reason,
        case when swap then other_identifier_type else identifier_type end as identifier_type,
        case when swap then other_identifier_value_raw else identifier_value_raw end
            as identifier_value_raw,
        case when swap then other_identifier_value else identifier_value end as identifier_value,
        case when swap then identifier_type else other_identifier_type end as other_identifier_type,
        case when swap then identifier_value_raw else other_identifier_value_raw end
            as other_identifier_value_raw,
        case when swap then identifier_value else other_identifier_value end
            as other_identifier_value
    from (
        select
            *,
            coalesce(
                action in ('always_link', 'never_link')
                and (
                    other_identifier_type < identifier_type
                    or (
                        other_identifier_type = identifier_type
                        and other_identifier_value < identifier_value
                    )
                ),
                false
            ) as swap
        from checked
    ) as requested_pairs
),

keyed as (
    select
        *,
        {{ tessera.surrogate_key([
            'action', 'identifier_type', 'identifier_value',
            'other_identifier_type', 'other_identifier_value',
        ]) }} as override_id,
        row_number() over (
            partition by
                action, identifier_type, identifier_value, other_identifier_type,
                other_identifier_value
            order by
                case when created_at is null then 0 else 1 end,
                created_at,
                origin,
                created_by,
                reason
        ) as occurrence
    from ordered
),

never_linked as (
    select distinct
        identifier_type,
        identifier_value,
        other_identifier_type,
        other_identifier_value
    from keyed
    where action = 'never_link' and invalid_reason is null
),

final as (
    select
        keyed.override_id,
        keyed.action,
        keyed.identifier_type,
        keyed.identifier_value,
        keyed.other_identifier_type,
        keyed.other_identifier_value,
        keyed.created_by,
        keyed.reason,
        keyed.created_at,
        keyed.origin,
        coalesce(
            keyed.invalid_reason,
            case
                when keyed.action = 'always_link' and never_linked.identifier_type is not null
                    then 'contradicted by a never_link of the same identifiers'
            end
        ) as refused_reason
    from keyed
    left join never_linked
        on
            keyed.identifier_type = never_linked.identifier_type
            and keyed.identifier_value = never_linked.identifier_value
            and keyed.other_identifier_type = never_linked.other_identifier_type
            and keyed.other_identifier_value = never_linked.other_identifier_value
    where keyed.occurrence = 1
)

select * from final
