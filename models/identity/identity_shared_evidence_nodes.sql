{#- The part of the graph that decides which identifiers are shared by several people.

    A candidate is an identifier linked directly to more accounts of one type (var
    tessera_identity_account_types) at least as strong as its own (var
    tessera_identity_type_priority) than var tessera_identity_shared_max_people: an email on three
    logins, a phone on eighty shop accounts, a browser three people logged in on, a phone on three
    CRM duplicates of one person. Whether the accounts a candidate joins are otherwise separate
    people is judged on the graph without it: for each
    candidate, the identifiers within var tessera_identity_evidence_depth links of it, reached
    without passing through it, through a screened identifier (identity_screened_identifiers) or
    through a candidate linked directly to more than `obvious_hub` accounts of a type (a hub that
    joins
    that many accounts is not one person, and would otherwise be copied into the neighbourhood of
    every candidate near it). One row per candidate and identifier of its neighbourhood, numbered
    for identity_shared_evidence_groups, whose connected components are the groups; and one row
    per candidate itself (is_candidate). -#}
{%- set accounts = var('tessera_identity_account_types') -%}
{%- set max_people = var('tessera_identity_shared_max_people') -%}
{%- set depth = var('tessera_identity_evidence_depth') -%}
{%- set obvious_hub = 50 -%}

with

edges as (
    select * from {{ ref('identity_edges') }}
),

screened as (
    select * from {{ ref('identity_screened_identifiers') }}
),

clean_edges as (
    select
        edges.identifier_type_a,
        edges.identifier_value_a,
        edges.identifier_type_b,
        edges.identifier_value_b
    from edges
    left join screened as screened_a
        on
            edges.identifier_type_a = screened_a.identifier_type
            and edges.identifier_value_a = screened_a.identifier_value
    left join screened as screened_b
        on
            edges.identifier_type_b = screened_b.identifier_type
            and edges.identifier_value_b = screened_b.identifier_value
    where screened_a.identifier_type is null and screened_b.identifier_type is null
),

links as (
    select
        identifier_type_a as identifier_type,
        identifier_value_a as identifier_value,
        identifier_type_b as linked_type,
        identifier_value_b as linked_value
    from clean_edges
    union all
    select
        identifier_type_b as identifier_type,
        identifier_value_b as identifier_value,
        identifier_type_a as linked_type,
        identifier_value_a as linked_value
    from clean_edges
),

accounts_linked as (
    select
        identifier_type,
        identifier_value,
        linked_type,
        count(*) as accounts_linked
    from links
    where
        linked_type in ({{ tessera.quoted_list(accounts) }})
        and {{ tessera.identifier_type_rank('linked_type') }}
        <= {{ tessera.identifier_type_rank('identifier_type') }}
    group by identifier_type, identifier_value, linked_type
),

candidates as (
    select
        identifier_type,
        identifier_value,
        max(accounts_linked) as accounts_linked
    from accounts_linked
    where accounts_linked > {{ max_people }}
    group by identifier_type, identifier_value
),

hubs as (
    select * from candidates
    where accounts_linked > {{ obvious_hub }}
),

{#- Breadth-first from each candidate, never through it or through a hub. -#}
{%- for hop in range(1, depth + 1) %}

    hop_{{ hop }} as (
        select distinct
            {%- if hop == 1 %}
                frontier.identifier_type as candidate_type,
                frontier.identifier_value as candidate_value,
            {%- else %}
                frontier.candidate_type,
                frontier.candidate_value,
            {%- endif %}
            links.linked_type as identifier_type,
            links.linked_value as identifier_value
        from links
        inner join {{ 'candidates' if hop == 1 else 'hop_' ~ (hop - 1) }} as frontier
            on
                links.identifier_type = frontier.identifier_type
                and links.identifier_value = frontier.identifier_value
        left join hubs
            on
                links.linked_type = hubs.identifier_type
                and links.linked_value = hubs.identifier_value
        where
            hubs.identifier_type is null
            {%- if hop > 1 %}
                and not (
                    links.linked_type = frontier.candidate_type
                    and links.linked_value = frontier.candidate_value
                )
            {%- endif %}
    ),
{%- endfor %}

reached as (
    {%- for hop in range(1, depth + 1) %}
        select
            candidate_type,
            candidate_value,
            identifier_type,
            identifier_value,
            false as is_candidate
        from hop_{{ hop }}
        union
    {%- endfor %}
    select
        identifier_type as candidate_type,
        identifier_value as candidate_value,
        identifier_type,
        identifier_value,
        true as is_candidate
    from candidates
),

final as (
    select
        candidate_type,
        candidate_value,
        identifier_type,
        identifier_value,
        is_candidate,
        {{ tessera.identifier_type_rank('identifier_type') }} as type_rank,
        identifier_type in ({{ tessera.quoted_list(accounts) }}) as is_account,
        cast(
            row_number()
                over (
                    order by candidate_type, candidate_value, identifier_type, identifier_value
                )
            as {{ dbt.type_bigint() }}
        ) as evidence_node_id
    from reached
)

select * from final
