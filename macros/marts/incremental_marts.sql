{#- The rows of staged event model `relation` that customer_events rebuilds: all of them, or in
    an incremental run the rows staged since the model last ran (_staged_at) and those with an
    identifier among `identifiers` ((identifier_type, column) pairs) whose customer changed
    since (CTE changed_identifiers). -#}
{% macro events_to_rebuild(relation, identifiers, incremental) -%}
    {%- if not incremental %}
    select * from {{ relation }}
    {%- else %}
    select staged.*
    from {{ relation }} as staged
    cross join last_built
    {%- for identifier_type, column in identifiers %}
    left join changed_identifiers as changed_{{ identifier_type }}
        on
            changed_{{ identifier_type }}.identifier_type = '{{ identifier_type }}'
            and staged.{{ column }} = changed_{{ identifier_type }}.identifier_value
    {%- endfor %}
    where
        staged._staged_at > last_built.built_at
        {%- for identifier_type, column in identifiers %}
        or changed_{{ identifier_type }}.identifier_value is not null
        {%- endfor %}
    {%- endif %}
{%- endmacro %}


{#- Pre-hooks of customer_events, in an incremental run: delete the orders and tickets (rebuilt
    whole), then the events of customers erased since (delete_erased_customers), then the page
    views and tracks no longer in staging (delete_unstaged_events); over a table built before
    the model was incremental, delete every row. One statement each: a condition joined by `or`
    to a subquery is run per stored row on Postgres, a lone `not exists` as one anti-join. -#}
{% macro delete_rebuilt_customer_events() -%}
    {%- if execute and is_incremental() -%}
        {%- if not tessera.builds_incrementally() -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }}
            where source_table in ('orders', 'support_tickets')
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- Pre-hook of customer_events: delete the stored events of `source_table` whose row
    (`row_id` of staged model `staged`) is no longer staged. -#}
{% macro delete_unstaged_events(source_table, staged, row_id) -%}
    {%- if execute and tessera.builds_incrementally() -%}
        delete from {{ this }} as stored
        where
            stored.source_table = '{{ source_table }}'
            and not exists (
                select 1 from {{ staged }} as staged
                where staged.{{ row_id }} = stored.source_row_id
            )
    {%- endif -%}
{%- endmacro %}


{#- CTE body: the identifiers customer_identities rebuilds (needs CTE last_built): those
    aggregated again by identity_identifiers, withdrawn, or given another customer since it was
    last built. -#}
{% macro customer_identities_to_rebuild() -%}
    {{ tessera.identifiers_stamped_since_built('identity_customer_registry', 'assigned_at') }}
    union
    {{ tessera.identifiers_stamped_since_built('identity_identifiers', '_built_at') }}
    union
    {{ tessera.identifiers_stamped_since_built('identity_retracted_observations', 'retracted_at') }}
{%- endmacro %}


{#- The columns of customers that come from orders, order items and consents (model customers,
    CTE purchase_traits): an incremental run recomputes them for every customer and rebuilds
    those whose stored values differ. -#}
{% macro customers_purchase_columns() -%}
    {%- set columns = [
        'channels', 'top_categories', 'orders_count', 'completed_orders_count',
        'lifetime_revenue', 'average_order_value', 'distinct_products_count',
    ] -%}
    {%- for purpose in var('tessera_consent_purposes') -%}
        {%- do columns.append('has_consent_' ~ purpose) -%}
    {%- endfor -%}
    {{ return(columns + ['first_order_at', 'last_order_at', 'consent_updated_at']) }}
{%- endmacro %}


{#- CTE body: the customers whose identifiers changed since the model was last built (needs CTEs
    last_built and reassigned_identifiers, the identifiers given another customer since):
    - every customer a reassigned identifier belonged to, before or after;
    - the customers of the identifiers seen on a row beside a reassigned one (identity_edges):
      such a row resolves to the customer of its first identifier that has one, so it may have
      moved to or from any of them;
    - the customers of identifiers aggregated again by customer_identities: observed on a new or
      changed source row, or withdrawn from one that changed or left staging. -#}
{% macro customers_changed_by_identity() -%}
    select registry.customer_id
    from {{ ref('identity_customer_registry') }} as registry
    inner join reassigned_identifiers
        on
            registry.identifier_type = reassigned_identifiers.identifier_type
            and registry.identifier_value = reassigned_identifiers.identifier_value
    where registry.customer_id is not null
    {%- for near, far in [('a', 'b'), ('b', 'a')] %}
    union
    select neighbour_customers.customer_id
    from {{ ref('identity_edges') }} as edges
    inner join reassigned_identifiers
        on
            edges.identifier_type_{{ near }} = reassigned_identifiers.identifier_type
            and edges.identifier_value_{{ near }} = reassigned_identifiers.identifier_value
    inner join {{ ref('identity_customer_map') }} as neighbour_customers
        on
            edges.identifier_type_{{ far }} = neighbour_customers.identifier_type
            and edges.identifier_value_{{ far }} = neighbour_customers.identifier_value
    {%- endfor %}
    union
    select reaggregated.customer_id
    from {{ ref('customer_identities') }} as reaggregated
    cross join last_built
    where reaggregated._built_at > last_built.built_at
{%- endmacro %}


{#- Pre-hook of customers, in an incremental run: delete the customers who are gone (merged into
    another, erased, or left with no identifier); over a table built before the model was
    incremental, every row. -#}
{% macro delete_vanished_customers(columns) -%}
    {%- if execute and is_incremental() -%}
        {%- if not tessera.builds_incrementally(columns) -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as stored
            where not exists (
                select 1 from {{ ref('customer_identities') }} as current_identities
                where current_identities.customer_id = stored.customer_id
            )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- The columns of customer_features and customer_features_holdout that orders alone decide (macro
    customer_features_as_of over orders and no events): an incremental run recomputes them for
    every customer and rebuilds those whose stored values differ. -#}
{% macro order_feature_columns() -%}
    {{ return(tessera.order_feature_numerics() + ['first_purchase_date', 'last_purchase_date']) }}
{%- endmacro %}


{#- The vars the features models are built under (column _built_with, macro settings_digest). -#}
{% macro feature_settings() -%}
    {{ return(['tessera_clv_time_unit', 'tessera_clv_calibration_end', 'tessera_churn_window_days']) }}
{%- endmacro %}


{#- CTE body: the customers a features model builds. Every one in `order_features` (features from
    orders alone, as of column `as_of`); in an incremental run, those rebuilt in customers since
    the model was last built (their events may have changed) and those whose features from orders,
    as of date or any of `columns` differ from what is stored (`stored_as_of` names the stored
    as of date), or whose row was built under other settings than `built_with`. -#}
{% macro customers_with_changed_features(
    order_features, as_of, stored_as_of, built_with, incremental, columns=[]
) -%}
    {%- if incremental %}
    select rebuilt_in_customers.customer_id
    from {{ ref('customers') }} as rebuilt_in_customers
    cross join ({{ tessera.last_built() }}) as last_built
    where rebuilt_in_customers._built_at > last_built.built_at
    union
    select fresh.customer_id
    from {{ order_features }} as fresh
    left join {{ this }} as stored on fresh.customer_id = stored.customer_id
    where
        stored.customer_id is null
        or stored._built_with <> '{{ built_with }}'
        or fresh.{{ as_of }} is distinct from stored.{{ stored_as_of }}
        {%- for column in tessera.order_feature_columns() + columns %}
        or fresh.{{ column }} is distinct from stored.{{ column }}
        {%- endfor %}
    {%- else %}
    select customer_id from {{ order_features }}
    {%- endif %}
{%- endmacro %}


{#- CTE body: the rows of `relation` (with customer_id) of the customers in CTE
    rebuilt_customers; every row outside an incremental run. -#}
{% macro rows_of_rebuilt_customers(relation, incremental) -%}
    select {{ relation }}.*
    from {{ relation }}
    {%- if incremental %}
    inner join rebuilt_customers on {{ relation }}.customer_id = rebuilt_customers.customer_id
    {%- endif %}
{%- endmacro %}


{#- Pre-hook of a features model: in an incremental run, delete the customers without a completed
    order by `as_of` (a SQL date expression) any more: refunded, reattributed, merged away,
    erased, or the as of date moved before their first purchase. Over a table built before the
    model was incremental (without _built_at or one of the compared `columns`), every row. -#}
{% macro delete_customers_without_purchases(as_of, columns) -%}
    {%- if execute and is_incremental() -%}
        {%- if not tessera.builds_incrementally(columns) -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as stored
            where not exists (
                select 1 from {{ ref('orders') }} as purchases
                where
                    purchases.customer_id = stored.customer_id
                    and purchases.order_status = 'completed'
                    and cast(purchases.ordered_at as date) <= {{ as_of }}
            )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
