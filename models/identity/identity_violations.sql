{#- One row per edge dropped to keep a customer within the identity limits: the two identifiers,
    the source row that linked them, and why the link was cut. An edge is stored with its two
    identifiers in either order, so the drops are matched to the edges taken both ways with one
    equality join (a join on "this order or that" cannot hash: it compared every drop with every
    edge). -#}
with

drops as (
    select * from {{ ref('identity_limit_drops') }}
),

nodes as{{ tessera.materialized_cte(false) }} (
    select * from {{ ref('identity_nodes') }}
),

edges as{{ tessera.materialized_cte(false) }} (
    select * from {{ ref('identity_edges') }}
),

described as (
    select
        drops.rule,
        drops.limited_type,
        drops.found_count,
        drops.limit_value,
        drops.resolution_round,
        node_a.identifier_type as identifier_type_a,
        node_a.identifier_value as identifier_value_a,
        node_b.identifier_type as identifier_type_b,
        node_b.identifier_value as identifier_value_b,
        kept.identifier_type as kept_identifier_type,
        kept.identifier_value as kept_identifier_value,
        excess.identifier_type as excess_identifier_type,
        excess.identifier_value as excess_identifier_value
    from drops
    inner join nodes as node_a on drops.node_a = node_a.node_id
    inner join nodes as node_b on drops.node_b = node_b.node_id
    left join nodes as kept on drops.kept_node = kept.node_id
    left join nodes as excess on drops.excess_node = excess.node_id
),

edges_either_way as (
    select
        identifier_type_a,
        identifier_value_a,
        identifier_type_b,
        identifier_value_b,
        first_source_table,
        first_source_row_id,
        first_observed_at,
        evidence_count
    from edges
    union all
    select
        identifier_type_b as identifier_type_a,
        identifier_value_b as identifier_value_a,
        identifier_type_a as identifier_type_b,
        identifier_value_a as identifier_value_b,
        first_source_table,
        first_source_row_id,
        first_observed_at,
        evidence_count
    from edges
),

final as (
    select
        described.identifier_type_a,
        described.identifier_value_a,
        described.identifier_type_b,
        described.identifier_value_b,
        described.rule,
        case
            when described.rule = 'never_link'
                then
                    'a never_link override keeps '
                    || described.excess_identifier_type || ' ' || described.excess_identifier_value
                    || ' apart from ' || described.kept_identifier_type || ' '
                    || described.kept_identifier_value
            when described.rule = 'type_limit'
                then
                    'one customer would hold '
                    || cast(described.found_count as {{ dbt.type_string() }}) || ' '
                    || described.limited_type || ' identifiers (limit '
                    || cast(described.limit_value as {{ dbt.type_string() }})
                    || '): this link ties '
                    || described.excess_identifier_type || ' ' || described.excess_identifier_value
                    || ' to ' || described.kept_identifier_type || ' '
                    || described.kept_identifier_value
            else
                'one customer would hold '
                || cast(described.found_count as {{ dbt.type_string() }})
                || ' identifiers (cap '
                || cast(described.limit_value as {{ dbt.type_string() }}) || '): '
                || described.excess_identifier_type || ' ' || described.excess_identifier_value
                || ' ranks beyond the cap'
        end as reason,
        described.resolution_round,
        edges_either_way.first_source_table,
        edges_either_way.first_source_row_id,
        edges_either_way.first_observed_at,
        edges_either_way.evidence_count
    from
        described
        {#- left: an always_link override cut by a never_link one has no source row. #}
    left join edges_either_way
        on
            described.identifier_type_a = edges_either_way.identifier_type_a
            and described.identifier_value_a = edges_either_way.identifier_value_a
            and described.identifier_type_b = edges_either_way.identifier_type_b
            and described.identifier_value_b = edges_either_way.identifier_value_b
)

select * from final
