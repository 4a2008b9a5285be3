{#- The recommender's settings: the tessera_recommendation_* vars, checked (orchestration/project.py
    checks the same for `tessera`), and the caps that bound its cost. A dict:
    count, lookback_days, half_life_days, allow_repurchase, weights ({purchase, add_to_cart,
    view}), excluded_categories, excluded_products, exclusions_table (a relation name or none),
    holdout_days, seed_cap, neighbour_cap, min_co_customers.

    The caps keep the co-occurrence self-join and the scoring join linear in customers: each
    customer's seed_cap strongest recent products enter the self-join (at most seed_cap *
    (seed_cap - 1) / 2 pairs a customer), and each product keeps its neighbour_cap most similar
    products (itself included), so a customer gets at most seed_cap * neighbour_cap candidates.
    Pairs seen on fewer than min_co_customers customers are noise and ignored. Fewer neighbours
    also recommend better: hit rate@5 0.487 with 5, 0.475 with 10 and 20, 0.428 with 3 on
    bench/predictive_shop.py's 200,000 customers; 0.310, 0.303, 0.310 with 5, 10, 3 on the
    demo's 20,000. So as many as the recommendations, and at least 5. -#}
{% macro recommendation_settings() -%}
    {%- set problems = [] -%}

    {%- set count = var('tessera_recommendation_count') -%}
    {%- if count is not number or count != count | int or count < 1 -%}
        {%- do problems.append("tessera_recommendation_count must be a whole number of at least 1, got '" ~ count ~ "'") -%}
    {%- endif -%}

    {%- set lookback_days = var('tessera_recommendation_lookback_days') -%}
    {%- if lookback_days is not number or lookback_days != lookback_days | int or lookback_days < 1 -%}
        {%- do problems.append("tessera_recommendation_lookback_days must be a whole number of days of at least 1, got '" ~ lookback_days ~ "'") -%}
    {%- endif -%}

    {%- set half_life_days = var('tessera_recommendation_half_life_days') -%}
    {%- if half_life_days is not number or half_life_days <= 0 -%}
        {%- do problems.append("tessera_recommendation_half_life_days must be a positive number of days, got '" ~ half_life_days ~ "'") -%}
    {%- endif -%}

    {%- set allow_repurchase = var('tessera_recommendation_allow_repurchase') -%}
    {%- if allow_repurchase is not sameas true and allow_repurchase is not sameas false -%}
        {%- do problems.append("tessera_recommendation_allow_repurchase must be true or false, got '" ~ allow_repurchase ~ "'") -%}
    {%- endif -%}

    {%- set weights = var('tessera_recommendation_interaction_weights') -%}
    {%- set kinds = ['purchase', 'add_to_cart', 'view'] -%}
    {%- if weights is not mapping or weights.keys() | list | sort != kinds | sort
        or weights.values() | reject('number') | list or weights.values() | select('lt', 0) | list
        or weights.values() | select('gt', 0) | list | length == 0 -%}
        {%- do problems.append("tessera_recommendation_interaction_weights must be {purchase: w, add_to_cart: w, view: w} with weights of 0 or more, not all 0, got '" ~ weights ~ "'") -%}
    {%- endif -%}

    {%- set exclusions = var('tessera_recommendation_exclusions') -%}
    {%- set lists_ok = exclusions is mapping and (exclusions.keys() | list | reject('in', ['categories', 'products']) | list | length == 0) -%}
    {%- if lists_ok -%}
        {%- for key in ['categories', 'products'] -%}
            {%- set values = exclusions.get(key) or [] -%}
            {%- if values is string or values is not iterable or values | reject('string') | list -%}
                {%- set lists_ok = false -%}
                {%- do problems.append("tessera_recommendation_exclusions." ~ key ~ " must be a list of texts, got '" ~ values ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {%- do problems.append("tessera_recommendation_exclusions must be {categories: [...], products: [...]}, got '" ~ exclusions ~ "'") -%}
    {%- endif -%}

    {%- set exclusions_table = var('tessera_recommendation_exclusions_table') -%}
    {%- if exclusions_table == '' -%}
        {%- set exclusions_table = none -%}
    {%- endif -%}
    {%- if exclusions_table is not none and not modules.re.match(
        '^[A-Za-z_][A-Za-z0-9_$]*([.][A-Za-z_][A-Za-z0-9_$]*){0,2}$', exclusions_table | string
    ) -%}
        {%- do problems.append("tessera_recommendation_exclusions_table must be a table name such as inventory.out_of_stock, or null, got '" ~ exclusions_table ~ "'") -%}
    {%- endif -%}

    {%- set holdout_days = var('tessera_recommendation_holdout_days') -%}
    {%- if holdout_days is not number or holdout_days != holdout_days | int or holdout_days < 1 -%}
        {%- do problems.append("tessera_recommendation_holdout_days must be a whole number of days of at least 1, got '" ~ holdout_days ~ "'") -%}
    {%- endif -%}

    {%- if problems -%}
        {{ exceptions.raise_compiler_error(problems | join('; ')) }}
    {%- endif -%}

    {{ return({
        'count': count | int,
        'lookback_days': lookback_days | int,
        'half_life_days': half_life_days,
        'allow_repurchase': allow_repurchase,
        'weights': weights,
        'excluded_categories': exclusions.get('categories') or [],
        'excluded_products': exclusions.get('products') or [],
        'exclusions_table': exclusions_table,
        'holdout_days': holdout_days | int,
        'seed_cap': 20,
        'neighbour_cap': [count | int, 5] | max,
        'min_co_customers': 2,
    }) }}
{%- endmacro %}
