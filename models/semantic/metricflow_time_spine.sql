{#- One row per day of the years the data spans: from 1 January of the year of the earliest
    customer sighting or order to 31 December of the year of the latest one, or of today when that
    is later. MetricFlow fills metric_time and the windows of cumulative metrics from it, joining
    every day of it to the rows of a cumulative metric, which Postgres can only do pair by pair:
    on the 1,500-customer demo (tests/conftest.py) saved query customer_growth_monthly took 54 s
    on Postgres over a fixed 2000 to 2049 spine (18,263 days), 6.5 s over the data's three years
    (1,096 days).
    The days are numbered by a cross join of five digits (0 to 99,999: 273 years) and added to the
    first day with dbt's own cross-database macros, so the model needs no dbt package and no
    adapter's series function (DuckDB's range, Postgres's generate_series, Spark's sequence). -#}

with

customers as (
    select * from {{ ref('customers') }}
),

orders as (
    select * from {{ ref('orders') }}
),

digits as (
    select 0 as digit
    union all
    select 1 as digit
    union all
    select 2 as digit
    union all
    select 3 as digit
    union all
    select 4 as digit
    union all
    select 5 as digit
    union all
    select 6 as digit
    union all
    select 7 as digit
    union all
    select 8 as digit
    union all
    select 9 as digit
),

day_numbers as (
    select
        ones.digit
        + tens.digit * 10
        + hundreds.digit * 100
        + thousands.digit * 1000
        + ten_thousands.digit * 10000 as day_number
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands
    cross join digits as ten_thousands
),

customer_dates as (
    select
        cast(min(first_seen_at) as date) as first_date,
        cast(max(last_seen_at) as date) as last_date
    from customers
),

order_dates as (
    select
        cast(min(ordered_at) as date) as first_date,
        cast(max(ordered_at) as date) as last_date
    from orders
),

{# least and greatest return null on Snowflake when an argument is null: coalesce them first. #}
data_dates as (
    select
        least(
            coalesce(customer_dates.first_date, current_date),
            coalesce(order_dates.first_date, current_date)
        ) as first_date,
        greatest(
            coalesce(customer_dates.last_date, current_date),
            coalesce(order_dates.last_date, current_date),
            current_date
        ) as last_date
    from customer_dates
    cross join order_dates
),

years as (
    select
        cast({{ dbt.date_trunc('year', 'first_date') }} as date) as first_day,
        extract(year from last_date) as last_year
    from data_dates
),

days as (
    select
        years.last_year,
        cast({{ dbt.dateadd('day', 'day_numbers.day_number', 'years.first_day') }} as date)
            as date_day
    from years
    cross join day_numbers
),

final as (
    select date_day
    from days
    where extract(year from date_day) <= last_year
)

select * from final
