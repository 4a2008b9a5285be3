{#- Each customer's product categories ranked by recency-weighted interactions (most first, ties
    by category name): one row per customer and category, from `recent` (rows of macro
    recent_product_interactions, with the customer in column `customer_column`). The recommender
    fills with what is popular in a customer's first category, and customer_product_traits
    shows the first three: one definition for both. -#}
{% macro customer_category_ranks(recent, customer_column='customer_id') -%}
    select
        {{ customer_column }},
        category,
        sum(recency_weight) as category_weight,
        row_number() over (
            partition by {{ customer_column }}
            order by sum(recency_weight) desc, {{ tessera.bytewise('category') }}
        ) as category_rank
    from {{ recent }}
    where category is not null
    group by {{ customer_column }}, category
{%- endmacro %}
