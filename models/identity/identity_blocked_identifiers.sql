{#- One row per identifier excluded from linking people, with the first reason that applies:
    the screened ones (identity_screened_identifiers: blocklist seed, blocklist pattern, more
    browsers or devices than one person uses), then the identifiers shared by several people.

    Shared, on evidence: an identifier is shared when it joins more than var
    tessera_identity_shared_max_people groups of identifiers that are otherwise separate people.
    Its neighbours are grouped by the graph without it (and without the screened identifiers,
    within var tessera_identity_evidence_depth links: identity_shared_evidence_nodes and
    identity_shared_evidence_groups), and the groups holding an account (var
    tessera_identity_account_types) of one type at least as strong as the identifier's own are
    counted: several groups with a login each are several people, while a login, a CRM contact
    and a shop account tied together only by their common email are one person in three systems.
    So an email on three logins, or a phone on the accounts of eighty shop customers that share
    nothing else, is shared; one login with six emails, or a phone on three CRM duplicates that
    the person's login ties together, is not: the addresses and CRM records of a login are its
    person's, and only another login is evidence of another person. -#}
{%- set max_people = var('tessera_identity_shared_max_people') -%}

with

edges as (
    select * from {{ ref('identity_edges') }}
),

screened as (
    select * from {{ ref('identity_screened_identifiers') }}
),

evidence_nodes as (
    select * from {{ ref('identity_shared_evidence_nodes') }}
),

evidence_groups as (
    select * from {{ ref('identity_shared_evidence_groups') }}
),

candidates as (
    select * from evidence_nodes
    where is_candidate
),

grouped_nodes as (
    select
        evidence_nodes.candidate_type,
        evidence_nodes.candidate_value,
        evidence_nodes.identifier_type,
        evidence_nodes.identifier_value,
        evidence_nodes.type_rank,
        evidence_nodes.is_account,
        coalesce(evidence_groups.component_id, evidence_nodes.evidence_node_id) as group_id
    from evidence_nodes
    left join evidence_groups on evidence_nodes.evidence_node_id = evidence_groups.node_id
    where not evidence_nodes.is_candidate
),

{# The account types each group holds. #}
group_accounts as (
    select distinct
        group_id,
        identifier_type as account_type,
        type_rank
    from grouped_nodes
    where is_account
),

{# Each candidate's neighbours, in the groups of its own neighbourhood. #}
candidate_neighbours as (
    select
        candidates.identifier_type,
        candidates.identifier_value,
        candidates.type_rank,
        grouped_nodes.group_id
    from edges
    inner join candidates
        on
            edges.identifier_type_a = candidates.identifier_type
            and edges.identifier_value_a = candidates.identifier_value
    inner join grouped_nodes
        on
            edges.identifier_type_b = grouped_nodes.identifier_type
            and edges.identifier_value_b = grouped_nodes.identifier_value
            and candidates.identifier_type = grouped_nodes.candidate_type
            and candidates.identifier_value = grouped_nodes.candidate_value
    union all
    select
        candidates.identifier_type,
        candidates.identifier_value,
        candidates.type_rank,
        grouped_nodes.group_id
    from edges
    inner join candidates
        on
            edges.identifier_type_b = candidates.identifier_type
            and edges.identifier_value_b = candidates.identifier_value
    inner join grouped_nodes
        on
            edges.identifier_type_a = grouped_nodes.identifier_type
            and edges.identifier_value_a = grouped_nodes.identifier_value
            and candidates.identifier_type = grouped_nodes.candidate_type
            and candidates.identifier_value = grouped_nodes.candidate_value
),

{# Per candidate and account type: the groups holding an account of that type. Accounts of
    different types are one person's in different systems (a login, a CRM contact and a shop
    account on one email); several groups holding accounts of one type are several people. -#}

people_by_type as (
    select
        candidate_neighbours.identifier_type,
        candidate_neighbours.identifier_value,
        group_accounts.account_type,
        min(group_accounts.type_rank) as account_rank,
        count(distinct candidate_neighbours.group_id) as people_count
    from candidate_neighbours
    inner join group_accounts on candidate_neighbours.group_id = group_accounts.group_id
    where group_accounts.type_rank <= candidate_neighbours.type_rank
    group by
        candidate_neighbours.identifier_type,
        candidate_neighbours.identifier_value,
        group_accounts.account_type
),

people_joined as (
    select * from (
        select
            *,
            row_number() over (
                partition by identifier_type, identifier_value
                order by people_count desc, account_rank asc
            ) as type_order
        from people_by_type
    ) as ordered
    where type_order = 1
),

shared as (
    select
        identifier_type,
        identifier_value,
        4 as reason_priority,
        'shared: joins ' || cast(people_count as {{ dbt.type_string() }})
        || ' separate people by ' || account_type
        || ' (more than {{ max_people }})' as blocked_reason
    from people_joined
    where people_count > {{ max_people }}
),

final as (
    select
        identifier_type,
        identifier_value,
        blocked_reason
    from screened
    union all
    select
        identifier_type,
        identifier_value,
        blocked_reason
    from shared
)

select * from final
