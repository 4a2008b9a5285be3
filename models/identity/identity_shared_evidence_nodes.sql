{#- The part of the graph that decides which identifiers are shared by several people.

    A candidate is an identifier linked directly to more accounts (var
    tessera_identity_account_types) of a type at least as strong as its own (var
    tessera_identity_type_priority) than var tessera_identity_shared_max_people: an email on three
    logins, a phone on eighty shop accounts, a browser three people logged in on. Whether those
    accounts are otherwise separate people is judged on the graph without the candidates and
    without the screened identifiers (identity_screened_identifiers), up to var
    tessera_identity_evidence_depth links away from each candidate: those identifiers are this
    model's nodes, numbered for identity_shared_evidence_groups, whose connected components are
    the groups. The candidates themselves are rows too (is_candidate), with their rank. -#}
{%- set accounts = var('tessera_identity_account_types') -%}
{%- set max_people = var('tessera_identity_shared_max_people') -%}
{%- set depth = var('tessera_identity_evidence_depth') -%}

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

candidates as (
    select
        identifier_type,
        identifier_value
    from links
    where
        linked_type in ({{ tessera.quoted_list(accounts) }})
        and {{ tessera.identifier_type_rank('linked_type') }}
        <= {{ tessera.identifier_type_rank('identifier_type') }}
    group by identifier_type, identifier_value
    having count(*) > {{ max_people }}
),

{#- Breadth-first from the candidates, never through one. -#}
{%- for hop in range(1, depth + 1) %}
    {%- set previous = 'candidates' if hop == 1 else 'hop_' ~ (hop - 1) %}

hop_{{ hop }} as (
    select distinct
        links.linked_type as identifier_type,
        links.linked_value as identifier_value
    from links
    inner join {{ previous }} as frontier
        on
            links.identifier_type = frontier.identifier_type
            and links.identifier_value = frontier.identifier_value
    left join candidates as excluded
        on
            links.linked_type = excluded.identifier_type
            and links.linked_value = excluded.identifier_value
    where excluded.identifier_type is null
),
{%- endfor %}

reached as (
    {%- for hop in range(1, depth + 1) %}
        select
            identifier_type,
            identifier_value,
            false as is_candidate
        from hop_{{ hop }}
        union
    {%- endfor %}
    select
        identifier_type,
        identifier_value,
        true as is_candidate
    from candidates
),

final as (
    select
        identifier_type,
        identifier_value,
        is_candidate,
        {{ tessera.identifier_type_rank('identifier_type') }} as type_rank,
        identifier_type in ({{ tessera.quoted_list(accounts) }}) as is_account,
        cast(
            row_number() over (order by identifier_type, identifier_value)
            as {{ dbt.type_bigint() }}
        ) as evidence_node_id
    from reached
)

select * from final
