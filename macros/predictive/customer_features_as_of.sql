{#- Features of every customer with a completed order on or before `as_of_date` (a SQL date
    expression), from what was known at the end of that day. `orders` and `customer_events` name
    relations or CTEs shaped like the marts of those names.

    The BG/NBD and Gamma-Gamma conventions (DESIGN.md, Predictive): a purchase is a day with at
    least one completed order, so orders on the same day count once and their values add up;
    frequency is the number of repeat purchase days; recency runs from the first to the last
    purchase day and T from the first purchase day to as_of_date, both in units of var
    tessera_clv_time_unit; monetary_value is the mean value of the repeat purchase days (the
    first day is left out, as Gamma-Gamma expects) and null without a repeat purchase.
    The behavioural features for churn look at the last tessera_churn_window_days days. -#}
{% macro customer_features_as_of(orders, customer_events, as_of_date) -%}
    {%- set unit_days = tessera.clv_time_unit_days() -%}
    {%- set window_days = tessera.churn_window_days() -%}
    with

    as_of as (
        select {{ as_of_date }} as as_of_date
    ),

    purchase_days as (
        select
            {{ orders }}.customer_id,
            cast({{ orders }}.ordered_at as date) as purchase_date,
            sum({{ orders }}.revenue) as purchase_value
        from {{ orders }}
        cross join as_of
        where
            {{ orders }}.customer_id is not null
            and {{ orders }}.order_status = 'completed'
            and cast({{ orders }}.ordered_at as date) <= as_of.as_of_date
        group by {{ orders }}.customer_id, cast({{ orders }}.ordered_at as date)
    ),

    first_purchase_days as (
        select
            customer_id,
            min(purchase_date) as first_purchase_date
        from purchase_days
        group by customer_id
    ),

    purchase_history as (
        select
            purchase_days.customer_id,
            first_purchase_days.first_purchase_date,
            max(purchase_days.purchase_date) as last_purchase_date,
            count(*) as purchase_days_count,
            sum(purchase_days.purchase_value) as completed_revenue,
            sum(
                case
                    when purchase_days.purchase_date = first_purchase_days.first_purchase_date
                        then purchase_days.purchase_value
                    else 0
                end
            ) as first_purchase_value,
            sum(
                case
                    when purchase_days.purchase_date > as_of.as_of_date - {{ window_days }}
                        then 1
                    else 0
                end
            ) as purchase_days_in_window
        from purchase_days
        inner join first_purchase_days
            on purchase_days.customer_id = first_purchase_days.customer_id
        cross join as_of
        group by purchase_days.customer_id, first_purchase_days.first_purchase_date
    ),

    order_history as (
        select
            {{ orders }}.customer_id,
            count(*) as orders_count,
            sum(
                case when {{ orders }}.order_status = 'completed' then 0 else 1 end
            ) as uncompleted_orders_count
        from {{ orders }}
        cross join as_of
        where
            {{ orders }}.customer_id is not null
            and cast({{ orders }}.ordered_at as date) <= as_of.as_of_date
        group by {{ orders }}.customer_id
    ),

    activity as (
        select
            {{ customer_events }}.customer_id,
            {{ customer_events }}.event_type,
            cast({{ customer_events }}.occurred_at as date) as activity_date,
            cast({{ customer_events }}.occurred_at as date)
            > as_of.as_of_date - {{ window_days }} as is_in_window
        from {{ customer_events }}
        cross join as_of
        where
            {{ customer_events }}.customer_id is not null
            and cast({{ customer_events }}.occurred_at as date) <= as_of.as_of_date
    ),

    activity_history as (
        select
            customer_id,
            sum(case when event_type = 'order' then 0 else 1 end) as events_count,
            sum(case when event_type = 'ticket' then 1 else 0 end) as support_tickets_count,
            count(distinct case when is_in_window then activity_date end) as active_days_in_window,
            max(activity_date) as last_activity_date
        from activity
        group by customer_id
    ),

    features as (
        select
            purchase_history.customer_id,
            as_of.as_of_date,
            purchase_history.first_purchase_date,
            purchase_history.last_purchase_date,
            purchase_history.purchase_days_count,
            purchase_history.purchase_days_count - 1 as frequency,
            cast(
                purchase_history.last_purchase_date - purchase_history.first_purchase_date
                as double precision
            ) / {{ unit_days }} as recency,
            cast(
                as_of.as_of_date - purchase_history.first_purchase_date as double precision
            ) / {{ unit_days }} as t,
            case
                when purchase_history.purchase_days_count > 1
                    then cast(
                        purchase_history.completed_revenue - purchase_history.first_purchase_value
                        as double precision
                    ) / (purchase_history.purchase_days_count - 1)
            end as monetary_value,
            cast(purchase_history.first_purchase_value as double precision)
                as first_purchase_value,
            cast(purchase_history.completed_revenue as double precision) as completed_revenue,
            order_history.orders_count,
            order_history.uncompleted_orders_count,
            as_of.as_of_date - purchase_history.last_purchase_date as days_since_last_purchase,
            purchase_history.purchase_days_in_window,
            coalesce(activity_history.events_count, 0) as events_count,
            coalesce(activity_history.support_tickets_count, 0) as support_tickets_count,
            coalesce(activity_history.active_days_in_window, 0) as active_days_in_window,
            as_of.as_of_date - greatest(
                purchase_history.last_purchase_date,
                coalesce(activity_history.last_activity_date, purchase_history.last_purchase_date)
            ) as days_since_last_activity
        from purchase_history
        cross join as_of
        inner join order_history on purchase_history.customer_id = order_history.customer_id
        left join activity_history on purchase_history.customer_id = activity_history.customer_id
    )

    select * from features
{%- endmacro %}


{#- The numeric columns of macro customer_features_as_of that orders alone decide (given no
    events, they come out as with them). -#}
{% macro order_feature_numerics() -%}
    {{ return([
        'frequency', 'recency', 't', 'monetary_value', 'purchase_days_count',
        'first_purchase_value', 'completed_revenue', 'orders_count', 'uncompleted_orders_count',
        'days_since_last_purchase', 'purchase_days_in_window',
    ]) }}
{%- endmacro %}


{#- The numeric columns of macro customer_features_as_of, from `features` (a relation or CTE
    holding its rows), in the order the features marts list them. -#}
{% macro customer_feature_numerics(features) -%}
    {%- set columns = tessera.order_feature_numerics() + [
        'events_count', 'support_tickets_count', 'active_days_in_window',
        'days_since_last_activity',
    ] -%}
    {%- for column in columns %}
        {{ features }}.{{ column }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
