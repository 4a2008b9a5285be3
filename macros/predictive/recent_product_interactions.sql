{#- The rows of `product_interactions` (a relation or CTE shaped like the model of that name) the
    recommender learns from, each with its recency weight: interaction_weight halved every
    tessera_recommendation_half_life_days days before the reference instant.

    The reference instant ("now", column as_of_at) is the latest interaction on or before
    `cutoff_date` (a SQL date expression; none: the latest interaction of all). It follows the
    data rather than the clock, so a warehouse loaded some time ago (or the demo's) is scored as
    of its own last activity, and a backtest (recommendation_evaluations) is scored as of its
    cutoff. Rows count when they happened on the reference instant's day or on one of the
    tessera_recommendation_lookback_days - 1 days before it; later rows (after the cutoff) are
    left out. -#}
{% macro recent_product_interactions(product_interactions, cutoff_date=none) -%}
    {%- set settings = tessera.recommendation_settings() -%}
    {%- set age_days = dbt.datediff(
        'interactions.interacted_at', 'reference_instant.as_of_at', 'day'
    ) -%}
    select
        interactions.customer_id,
        interactions.product_id,
        interactions.category,
        interactions.interaction_kind,
        interactions.interaction_weight
        * power(
            0.5, cast({{ age_days }} as double precision) / {{ settings.half_life_days }}
        ) as recency_weight,
        interactions.interacted_at,
        reference_instant.as_of_at
    from {{ product_interactions }} as interactions
    cross join (
        select max(interacted_at) as as_of_at
        from {{ product_interactions }}
        {%- if cutoff_date is not none %}
        where cast(interacted_at as date) <= {{ cutoff_date }}
        {%- endif %}
    ) as reference_instant
    {#- A negative age is a day after the reference instant's, so after the cutoff. #}
    where {{ age_days }} >= 0 and {{ age_days }} < {{ settings.lookback_days }}
{%- endmacro %}
