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
