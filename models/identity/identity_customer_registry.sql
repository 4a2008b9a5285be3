{#- One row per change of an identifier's customer, append-only and kept through full refreshes:
    the memory that makes customer_id stable. Each run assigns every cluster of identity_map a
    customer id:
    - a cluster whose identifiers already had customer ids keeps the oldest of them (a merge
      keeps the oldest id);
    - when a split leaves several clusters claiming one id, the cluster holding the identifier
      that has held it longest keeps it (ties: the cluster holding most of that customer's
      identifiers, then the smallest identifier); the others take their next oldest unclaimed
      id, or a new one;
    - a new id is derived from the cluster's smallest identifier and how many assignments that
      identifier had before, so it never repeats an id given out earlier.
    Only identifiers whose customer changed get a row; one that left the graph (now blocked, or
    its rows gone) gets a row with a null customer_id. -#}
{{ config(materialized='incremental', full_refresh=false) }}

with

identity_map as (
    select * from {{ ref('identity_map') }}
),

history as (
    {%- if is_incremental() %}
        select * from {{ this }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as identifier_type,
            cast(null as {{ dbt.type_string() }}) as identifier_value,
            cast(null as {{ dbt.type_string() }}) as customer_id,
            cast(null as {{ dbt.type_timestamp() }}) as assigned_at
        where 1 = 0
    {%- endif %}
),

ranked_history as (
    select
        *,
        row_number() over (
            partition by identifier_type, identifier_value order by assigned_at desc
        ) as recency
    from history
),

previous as (
    select
        identifier_type,
        identifier_value,
        customer_id,
        assigned_at
    from ranked_history
    where recency = 1 and customer_id is not null
),

customer_ages as (
    select
        customer_id,
        min(assigned_at) as created_at
    from history
    where customer_id is not null
    group by customer_id
),

assignment_counts as (
    select
        identifier_type || ':' || identifier_value as identifier_key,
        count(*) as assignment_count
    from history
    group by identifier_type, identifier_value
),

clusters as (
    select
        cluster_id,
        min(identifier_type || ':' || identifier_value) as representative
    from identity_map
    group by cluster_id
),

candidates as (
    select
        identity_map.cluster_id,
        previous.customer_id,
        count(*) as shared_count,
        min(previous.assigned_at) as held_since
    from identity_map
    inner join previous
        on
            identity_map.identifier_type = previous.identifier_type
            and identity_map.identifier_value = previous.identifier_value
    group by identity_map.cluster_id, previous.customer_id
),

preferences as (
    select
        candidates.cluster_id,
        candidates.customer_id,
        candidates.shared_count,
        candidates.held_since,
        clusters.representative,
        row_number() over (
            partition by candidates.cluster_id
            order by customer_ages.created_at asc, candidates.customer_id asc
        ) as preference
    from candidates
    inner join customer_ages on candidates.customer_id = customer_ages.customer_id
    inner join clusters on candidates.cluster_id = clusters.cluster_id
),

first_claims as (
    select
        cluster_id,
        customer_id,
        row_number() over (
            partition by customer_id
            order by held_since asc, shared_count desc, representative asc
        ) as claim_rank
    from preferences
    where preference = 1
),

first_grants as (
    select
        cluster_id,
        customer_id
    from first_claims
    where claim_rank = 1
),

second_preferences as (
    select
        preferences.cluster_id,
        preferences.customer_id,
        preferences.shared_count,
        preferences.held_since,
        preferences.representative,
        row_number() over (
            partition by preferences.cluster_id order by preferences.preference
        ) as preference
    from preferences
    left join first_grants as granted_cluster
        on preferences.cluster_id = granted_cluster.cluster_id
    left join first_grants as granted_id
        on preferences.customer_id = granted_id.customer_id
    where granted_cluster.cluster_id is null and granted_id.customer_id is null
),

second_claims as (
    select
        cluster_id,
        customer_id,
        row_number() over (
            partition by customer_id
            order by held_since asc, shared_count desc, representative asc
        ) as claim_rank
    from second_preferences
    where preference = 1
),

grants as (
    select * from first_grants
    union all
    select
        cluster_id,
        customer_id
    from second_claims
    where claim_rank = 1
),

assigned as (
    select
        clusters.cluster_id,
        coalesce(
            grants.customer_id,
            'cus_' || substr(
                md5(
                    clusters.representative || '#'
                    || cast(
                        coalesce(assignment_counts.assignment_count, 0) as {{ dbt.type_string() }}
                    )
                ),
                1,
                16
            )
        ) as customer_id
    from clusters
    left join grants on clusters.cluster_id = grants.cluster_id
    left join assignment_counts on clusters.representative = assignment_counts.identifier_key
),

current_assignments as (
    select
        identity_map.identifier_type,
        identity_map.identifier_value,
        assigned.customer_id
    from identity_map
    inner join assigned on identity_map.cluster_id = assigned.cluster_id
),

changed as (
    select current_assignments.*
    from current_assignments
    left join previous
        on
            current_assignments.identifier_type = previous.identifier_type
            and current_assignments.identifier_value = previous.identifier_value
    where previous.customer_id is null or previous.customer_id <> current_assignments.customer_id
),

left_graph as (
    select
        previous.identifier_type,
        previous.identifier_value,
        cast(null as {{ dbt.type_string() }}) as customer_id
    from previous
    left join current_assignments
        on
            previous.identifier_type = current_assignments.identifier_type
            and previous.identifier_value = current_assignments.identifier_value
    where current_assignments.customer_id is null
),

final as (
    select
        identifier_type,
        identifier_value,
        customer_id,
        {{ tessera.run_timestamp() }} as assigned_at
    from (
        select * from changed
        union all
        select * from left_graph
    ) as changes
)

select * from final
