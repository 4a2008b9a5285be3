{#- One row per run and pair of customers between which identifiers moved, read from
    identity_customer_registry: `merge` when the customer they left no longer exists after that
    run (it was merged into customer_id, which kept the oldest id), `split` when it still does
    (customer_id was split off from it), `unassigned` when they left every customer (blocked, or
    their source rows are gone). -#}
with

registry as (
    select * from {{ ref('identity_customer_registry') }}
),

validity as (
    select
        identifier_type,
        identifier_value,
        customer_id,
        assigned_at as valid_from,
        lead(assigned_at) over (
            partition by identifier_type, identifier_value order by assigned_at
        ) as valid_to,
        lag(customer_id) over (
            partition by identifier_type, identifier_value order by assigned_at
        ) as previous_customer_id
    from registry
),

moves as (
    select
        valid_from as logged_at,
        previous_customer_id as from_customer_id,
        customer_id as to_customer_id,
        count(*) as identifiers_moved
    from validity
    where
        previous_customer_id is not null
        and (customer_id is null or customer_id <> previous_customer_id)
    group by valid_from, previous_customer_id, customer_id
),

survivors as (
    select distinct
        moves.logged_at,
        moves.from_customer_id
    from moves
    inner join validity
        on
            moves.from_customer_id = validity.customer_id
            and moves.logged_at >= validity.valid_from
            and (validity.valid_to is null or moves.logged_at < validity.valid_to)
),

final as (
    select
        moves.logged_at,
        moves.to_customer_id as customer_id,
        moves.from_customer_id as previous_customer_id,
        moves.identifiers_moved,
        case
            when moves.to_customer_id is null then 'unassigned'
            when survivors.from_customer_id is null then 'merge'
            else 'split'
        end as event_type
    from moves
    left join survivors
        on
            moves.logged_at = survivors.logged_at
            and moves.from_customer_id = survivors.from_customer_id
)

select * from final
