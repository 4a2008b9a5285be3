{#- Every attribution model gives each conversion credits adding up to 1 and revenue credits
    adding up to its revenue (to 1e-9, the rounding of double precision sums). -#}
with

sums as (
    select
        conversion_id,
        model,
        sum(credit) as credit,
        sum(revenue_credit) as revenue_credit
    from {{ ref('attribution_credits') }}
    group by conversion_id, model
),

conversions as (
    select * from {{ ref('attribution_conversions') }}
)

select
    conversions.conversion_id,
    sums.model,
    sums.credit,
    sums.revenue_credit,
    conversions.revenue
from conversions
left join sums
    on conversions.conversion_id = sums.conversion_id
where
    sums.conversion_id is null
    or abs(sums.credit - 1) > 1e-9
    or abs(sums.revenue_credit - conversions.revenue) > 1e-9 * greatest(1, abs(conversions.revenue))
