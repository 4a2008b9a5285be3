{#- Up to tessera_recommendation_count products for each customer of `customers` (a relation or
    CTE with customer_id), learnt from the interactions of `product_interactions` on or before
    `cutoff_date` (a SQL date expression; none: all of them): one row per customer and
    recommended product with recommendation_rank (1 first), score, reason and
    recommendation_source. customer_recommendations calls it without a cutoff and
    recommendation_evaluations with one, so the model evaluated is the model served.

    method item_cooccurrence (the recommender):
    1. Affinity of a customer to a product: the recency weight (macro recent_product_interactions)
       of their strongest recent interaction with it.
    2. Item-to-item similarity: cosine of two products' affinity vectors over customers (the sum
       over customers of the product of their affinities, over the norms' product), from each
       customer's seed_cap strongest products; pairs seen on fewer than min_co_customers
       customers are dropped, a product is similar to itself (1), and each product keeps its
       neighbour_cap most similar products among those that may be recommended.
    3. A customer's score of a product: the sum over their seed products of affinity times
       similarity; the top ones are recommended, with the seed that contributed most as the
       reason: 'bought with p-12 (you bought it 2025-03-01)', or 'you viewed it 2025-03-01'
       when that is the product itself.
    4. Up to the count, what is popular in the customer's first category (macro
       customer_category_ranks; 'popular in shoes'), then what is popular ('popular'): a
       customer without recent history gets the popular products only.
    method popularity (the baseline recommendation_evaluations compares with): step 4's last
    part alone, the same for everybody.

    Popularity of a product: its recency-weighted interactions. Never recommended: a
    product of seed recommendation_exclusions (`exclusions`), of var
    tessera_recommendation_exclusions or of the table var tessera_recommendation_exclusions_table
    names, a product of an excluded category, and unless tessera_recommendation_allow_repurchase
    a product the customer bought (ever, up to the reference instant).

    Customers and products are numbered first: at 1,000,000 customers (8.5M interactions, 500
    products, 2 DuckDB threads) grouping 81M scored (customer, product) candidates took 73 s on
    text keys and 18 s on integers. -#}
{% macro recommend_products(
    product_interactions, customers, exclusions, cutoff_date=none, method='item_cooccurrence'
) -%}
    {%- if method not in ['item_cooccurrence', 'popularity'] -%}
        {{ exceptions.raise_compiler_error(
            "recommend_products: method must be item_cooccurrence or popularity, got '"
            ~ method ~ "'"
        ) }}
    {%- endif -%}
    {%- set settings = tessera.recommendation_settings() -%}
    {%- set count = settings.count -%}
    {%- set cooccurrence = method == 'item_cooccurrence' -%}
    {%- set text = dbt.type_string() -%}
    {%- set relative_popularity = 'popular_products.popularity / top_popularity.popularity' -%}
    {#- What the customer did with the seed that explains a co-occurrence pick, and when. -#}
    {%- set what_you_did -%}
        case
            when explanations.last_purchased_at is not null
                then 'bought it '
                || cast(cast(explanations.last_purchased_at as date) as {{ text }})
            when explanations.last_added_at is not null
                then 'added it to your cart '
                || cast(cast(explanations.last_added_at as date) as {{ text }})
            else 'viewed it '
                || cast(cast(explanations.last_interacted_at as date) as {{ text }})
        end
    {%- endset -%}
    with

    recent as (
        {{ tessera.recent_product_interactions(product_interactions, cutoff_date) }}
    ),

    reference_instant as (
        select max(as_of_at) as as_of_at from recent
    ),

    targets as (
        select distinct customer_id from {{ customers }}
    ),

    {#- Every customer to recommend for, and for co-occurrence every customer seen recently,
        numbered. #}
    customer_keys as (
        select
            customer_id,
            row_number() over (order by {{ tessera.bytewise('customer_id') }}) as customer_key
        from (
            {%- if cooccurrence %}
            select customer_id from recent
            union
            {%- endif %}
            select customer_id from targets
        ) as known_customers
    ),

    {#- Every product seen recently, numbered, with its popularity: its recency-weighted
        interactions. #}
    product_keys as (
        select
            product_id,
            max(category) as category,
            sum(recency_weight) as popularity,
            row_number() over (order by {{ tessera.bytewise('product_id') }}) as product_key
        from recent
        group by product_id
    ),

    excluded_products as (
        select product_id from {{ exclusions }}
        {%- if settings.exclusions_table %}
        union all
        select cast(product_id as {{ text }}) as product_id
        from {{ settings.exclusions_table }}
        {%- endif %}
    ),

    {#- The products that may be recommended. #}
    candidate_products as (
        select
            product_keys.product_key,
            product_keys.product_id,
            product_keys.category,
            product_keys.popularity
        from product_keys
        left join excluded_products on product_keys.product_id = excluded_products.product_id
        where
            excluded_products.product_id is null
            {%- if settings.excluded_products %}
            and product_keys.product_id not in (
                {{ tessera.quoted_list(settings.excluded_products) }}
            )
            {%- endif %}
            {%- if settings.excluded_categories %}
            and (
                product_keys.category is null
                or product_keys.category not in (
                    {{ tessera.quoted_list(settings.excluded_categories) }}
                )
            )
            {%- endif %}
    ),

    target_keys as (
        select
            customer_keys.customer_key,
            targets.customer_id
        from targets
        inner join customer_keys on targets.customer_id = customer_keys.customer_id
    ),

    {#- What each customer to recommend for bought up to the reference instant, recent or not:
        none when repurchase is allowed. #}
    purchased as (
        select distinct
            target_keys.customer_key,
            product_keys.product_key
        from {{ product_interactions }} as interactions
        cross join reference_instant
        inner join target_keys on interactions.customer_id = target_keys.customer_id
        inner join product_keys on interactions.product_id = product_keys.product_id
        where
            interactions.interaction_kind = 'purchase'
            and interactions.interacted_at <= reference_instant.as_of_at
            {%- if settings.allow_repurchase %}
            and 1 = 0
            {%- endif %}
    ),

    popular_products as (
        select
            product_key,
            category,
            popularity,
            row_number() over (
                order by popularity desc, product_key
            ) as popularity_rank,
            row_number() over (
                partition by category order by popularity desc, product_key
            ) as category_popularity_rank
        from candidate_products
    ),

    {#- Popularity relative to the most popular product's: the score of a popularity pick. #}
    top_popularity as (
        select max(popularity) as popularity
        from popular_products
        where popularity > 0
    ),
    {%- if cooccurrence %}

    recent_keyed as (
        select
            customer_keys.customer_key,
            product_keys.product_key,
            recent.category,
            recent.interaction_kind,
            recent.recency_weight,
            recent.interacted_at
        from recent
        inner join customer_keys on recent.customer_id = customer_keys.customer_id
        inner join product_keys on recent.product_id = product_keys.product_id
    ),

    customer_products as (
        select
            customer_key,
            product_key,
            max(recency_weight) as affinity,
            max(
                case when interaction_kind = 'purchase' then interacted_at end
            ) as last_purchased_at,
            max(
                case when interaction_kind = 'add_to_cart' then interacted_at end
            ) as last_added_at,
            max(interacted_at) as last_interacted_at
        from recent_keyed
        group by customer_key, product_key
    ),

    seeds as (
        select
            customer_key,
            product_key,
            affinity,
            last_purchased_at,
            last_added_at,
            last_interacted_at
        from (
            select
                customer_products.*,
                row_number() over (
                    partition by customer_key
                    order by affinity desc, last_interacted_at desc, product_key
                ) as seed_rank
            from customer_products
            {#- A zero weight (var tessera_recommendation_interaction_weights) is no evidence. #}
            where affinity > 0
        ) as ranked_products
        where seed_rank <= {{ settings.seed_cap }}
    ),

    product_norms as (
        select
            product_key,
            sqrt(sum(affinity * affinity)) as norm
        from seeds
        group by product_key
    ),

    co_occurrences as (
        select
            first_seeds.product_key,
            second_seeds.product_key as other_product_key,
            sum(first_seeds.affinity * second_seeds.affinity) as co_weight
        from seeds as first_seeds
        inner join seeds as second_seeds
            on
                first_seeds.customer_key = second_seeds.customer_key
                and first_seeds.product_key < second_seeds.product_key
        group by first_seeds.product_key, second_seeds.product_key
        having count(*) >= {{ settings.min_co_customers }}
    ),

    similarities as (
        select
            co_occurrences.product_key,
            co_occurrences.other_product_key,
            co_occurrences.co_weight / (first_norms.norm * second_norms.norm) as similarity
        from co_occurrences
        inner join product_norms as first_norms
            on co_occurrences.product_key = first_norms.product_key
        inner join product_norms as second_norms
            on co_occurrences.other_product_key = second_norms.product_key
    ),

    both_ways as (
        select
            product_key,
            other_product_key as neighbour_key,
            similarity
        from similarities
        union all
        select
            other_product_key as product_key,
            product_key as neighbour_key,
            similarity
        from similarities
        {#- A product is its own nearest neighbour: what a customer viewed or put in the cart
            and did not buy is what they are likeliest to buy. Hit rate@5 0.41 without, 0.47
            with, on bench/predictive_shop.py's 200,000 customers (views lead purchases). #}
        union all
        select
            product_key,
            product_key as neighbour_key,
            cast(1 as double precision) as similarity
        from product_norms
    ),

    neighbours as (
        select
            product_key,
            neighbour_key,
            similarity
        from (
            select
                both_ways.*,
                row_number() over (
                    partition by both_ways.product_key
                    order by both_ways.similarity desc, both_ways.neighbour_key
                ) as neighbour_rank
            from both_ways
            inner join candidate_products
                on both_ways.neighbour_key = candidate_products.product_key
        ) as ranked_neighbours
        where neighbour_rank <= {{ settings.neighbour_cap }}
    ),

    target_seeds as (
        select seeds.*
        from seeds
        inner join target_keys on seeds.customer_key = target_keys.customer_key
    ),

    {#- What each of a customer's products adds to the score of each of its neighbours. #}
    contributions as (
        select
            target_seeds.customer_key,
            neighbours.neighbour_key as product_key,
            target_seeds.product_key as seed_key,
            target_seeds.affinity * neighbours.similarity as contribution
        from target_seeds
        inner join neighbours on target_seeds.product_key = neighbours.product_key
    ),

    scored as (
        select
            customer_key,
            product_key,
            sum(contribution) as score
        from contributions
        group by customer_key, product_key
    ),

    cooccurrence_picks as (
        select
            customer_key,
            product_key,
            score,
            score_rank
        from (
            select
                scored.*,
                row_number() over (
                    partition by scored.customer_key
                    order by scored.score desc, scored.product_key
                ) as score_rank
            from scored
            left join purchased
                on
                    scored.customer_key = purchased.customer_key
                    and scored.product_key = purchased.product_key
            where purchased.customer_key is null
        ) as ranked_scores
        where score_rank <= {{ count }}
    ),

    picked_counts as (
        select
            customer_key,
            count(*) as picks
        from cooccurrence_picks
        group by customer_key
    ),

    {#- The customers co-occurrence found fewer than the count for. #}
    shortfalls as (
        select target_keys.customer_key
        from target_keys
        left join picked_counts on target_keys.customer_key = picked_counts.customer_key
        where coalesce(picked_counts.picks, 0) < {{ count }}
    ),
    {%- else %}

    shortfalls as (
        select customer_key from target_keys
    ),
    {%- endif %}

    {#- How far down a popularity list a customer may have to go: the count, plus the products
        they bought (skipped) and those co-occurrence picked (duplicates). #}
    fill_depths as (
        select
            shortfalls.customer_key,
            {{ count * 2 }} + count(purchased.product_key) as fill_depth
        from shortfalls
        left join purchased on shortfalls.customer_key = purchased.customer_key
        group by shortfalls.customer_key
    ),
    {%- if cooccurrence %}

    shortfall_recent as (
        select recent_keyed.*
        from recent_keyed
        inner join shortfalls on recent_keyed.customer_key = shortfalls.customer_key
    ),

    top_categories as (
        select
            customer_key,
            category
        from (
            {{ tessera.customer_category_ranks('shortfall_recent', 'customer_key') }}
        ) as category_ranks
        where category_rank = 1
    ),
    {%- endif %}

    fill_candidates as (
        {%- if cooccurrence %}
        select
            cooccurrence_picks.customer_key,
            cooccurrence_picks.product_key,
            1 as tier,
            cooccurrence_picks.score_rank as tier_rank,
            cooccurrence_picks.score
        from cooccurrence_picks
        inner join shortfalls on cooccurrence_picks.customer_key = shortfalls.customer_key
        union all
        select
            fill_depths.customer_key,
            popular_products.product_key,
            2 as tier,
            popular_products.category_popularity_rank as tier_rank,
            {{ relative_popularity }} as score
        from fill_depths
        inner join top_categories on fill_depths.customer_key = top_categories.customer_key
        inner join popular_products
            on
                top_categories.category = popular_products.category
                and popular_products.category_popularity_rank <= fill_depths.fill_depth
        cross join top_popularity
        union all
        {%- endif %}
        select
            fill_depths.customer_key,
            popular_products.product_key,
            3 as tier,
            popular_products.popularity_rank as tier_rank,
            {{ relative_popularity }} as score
        from fill_depths
        inner join popular_products on popular_products.popularity_rank <= fill_depths.fill_depth
        cross join top_popularity
    ),

    fills as (
        select
            customer_key,
            product_key,
            tier,
            score,
            row_number() over (
                partition by customer_key order by tier, tier_rank
            ) as recommendation_rank
        from (
            select
                fill_candidates.*,
                row_number() over (
                    partition by fill_candidates.customer_key, fill_candidates.product_key
                    order by fill_candidates.tier
                ) as product_pick
            from fill_candidates
            left join purchased
                on
                    fill_candidates.customer_key = purchased.customer_key
                    and fill_candidates.product_key = purchased.product_key
            where purchased.customer_key is null
        ) as eligible_candidates
        where product_pick = 1
    ),

    picks as (
        {%- if cooccurrence %}
        select
            cooccurrence_picks.customer_key,
            cooccurrence_picks.product_key,
            1 as tier,
            cooccurrence_picks.score,
            cooccurrence_picks.score_rank as recommendation_rank
        from cooccurrence_picks
        left join shortfalls on cooccurrence_picks.customer_key = shortfalls.customer_key
        where shortfalls.customer_key is null
        union all
        {%- endif %}
        select
            customer_key,
            product_key,
            tier,
            score,
            recommendation_rank
        from fills
        where recommendation_rank <= {{ count }}
    ),
    {%- if cooccurrence %}

    {#- The seed that contributed most to each co-occurrence pick, found on narrow rows and
        joined to what the customer did with it after. Joined on both keys at once: Postgres,
        blind to the CTEs' sizes, otherwise joined the picks to every product near them first
        (34M rows sorted on disk at 200,000 customers). #}
    top_contributions as (
        select
            customer_key,
            product_key,
            seed_key
        from (
            select
                picks.customer_key,
                picks.product_key,
                contributions.seed_key,
                row_number() over (
                    partition by picks.customer_key, picks.product_key
                    order by contributions.contribution desc, contributions.seed_key
                ) as contribution_rank
            from picks
            inner join contributions
                on
                    picks.customer_key = contributions.customer_key
                    and picks.product_key = contributions.product_key
            where picks.tier = 1
        ) as ranked_contributions
        where contribution_rank = 1
    ),

    explanations as (
        select
            top_contributions.customer_key,
            top_contributions.product_key,
            top_contributions.seed_key,
            target_seeds.last_purchased_at,
            target_seeds.last_added_at,
            target_seeds.last_interacted_at
        from top_contributions
        inner join target_seeds
            on
                top_contributions.customer_key = target_seeds.customer_key
                and top_contributions.seed_key = target_seeds.product_key
    ),
    {%- endif %}

    recommendations as (
        select
            target_keys.customer_id,
            products.product_id,
            case picks.tier
                when 1 then 'item_cooccurrence'
                when 2 then 'category_popularity'
                else 'popularity'
            end as recommendation_source,
            case
                {%- if cooccurrence %}
                when picks.tier = 1 and seeds.product_key = picks.product_key
                    then 'you ' || {{ what_you_did }}
                when picks.tier = 1
                    then 'bought with ' || seeds.product_id || ' (you ' || {{ what_you_did }} || ')'
                {%- endif %}
                when picks.tier = 2 then 'popular in ' || products.category
                else 'popular'
            end as reason,
            cast(picks.score as double precision) as score,
            picks.recommendation_rank
        from picks
        inner join target_keys on picks.customer_key = target_keys.customer_key
        inner join product_keys as products on picks.product_key = products.product_key
        {%- if cooccurrence %}
        left join explanations
            on
                picks.customer_key = explanations.customer_key
                and picks.product_key = explanations.product_key
        left join product_keys as seeds on explanations.seed_key = seeds.product_key
        {%- endif %}
    )

    select * from recommendations
{%- endmacro %}
