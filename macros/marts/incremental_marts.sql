{#- The incremental marts (customer_events, customer_identities) stamp each row with the run
    that built it (_built_at); a run rebuilds the rows whose inputs changed since the newest
    stamp, and its pre-hook first deletes the rows that can no longer stand. -#}

{#- Whether the mart builds incrementally: an incremental run over a stored table that has
    _built_at. A table built before the mart was incremental has none: the pre-hook empties it
    and the run rebuilds every row, once. -#}
{% macro builds_incrementally() -%}
    {%- if not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return('_built_at' in (tessera.relation_columns(this) or {})) }}
{%- endmacro %}


{#- CTE body: the newest _built_at stored (a time before any data when none is). -#}
{% macro last_built() -%}
    select
        coalesce(
            max(_built_at), cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }})
        ) as built_at
    from {{ this }}
{%- endmacro %}


{#- CTE body: the identifiers whose customer changed since the mart was last built (rows of
    identity_customer_registry assigned since; needs CTE last_built). -#}
{% macro identifiers_reassigned() -%}
    select
        registry.identifier_type,
        registry.identifier_value
    from {{ ref('identity_customer_registry') }} as registry
    cross join last_built
    where registry.assigned_at > last_built.built_at
{%- endmacro %}


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


{#- Pre-hook of customer_events: in an incremental run, delete the events of customers erased
    since, the orders and tickets (rebuilt whole), and the page views and tracks no longer in
    staging; over a table built before the model was incremental, delete every row. -#}
{% macro delete_stale_customer_events() -%}
    {%- if execute and is_incremental() -%}
        {%- if not tessera.builds_incrementally() -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as stored
            where
                stored.source_table in ('orders', 'support_tickets')
                or stored.customer_id in (
                    select customer_id from {{ ref('customer_erasures') }}
                )
                or (
                    stored.source_table = 'pages'
                    and not exists (
                        select 1 from {{ ref('stg_segment__pages') }} as staged
                        where staged.page_view_id = stored.source_row_id
                    )
                )
                or (
                    stored.source_table = 'tracks'
                    and not exists (
                        select 1 from {{ ref('stg_segment__tracks') }} as staged
                        where staged.track_id = stored.source_row_id
                    )
                )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- CTE body for customer_identities: each identifier (once) observed, retracted or given
    another customer since the mart was last built (needs CTE last_built). -#}
{% macro identifiers_changed_since_built() -%}
    {{ tessera.identifiers_reassigned() }}
    union
    select
        observations.identifier_type,
        observations.identifier_value
    from {{ ref('identity_observations') }} as observations
    cross join last_built
    where observations.loaded_at > last_built.built_at
    union
    select
        retracted.identifier_type,
        retracted.identifier_value
    from {{ ref('identity_retracted_observations') }} as retracted
    cross join last_built
    where retracted.retracted_at > last_built.built_at
{%- endmacro %}


{#- Pre-hook of customer_identities: in an incremental run, delete the rows of the identifiers
    it rebuilds and of customers erased since; over a table built before the mart was
    incremental, delete every row. -#}
{% macro delete_stale_customer_identities() -%}
    {%- if execute and is_incremental() -%}
        {%- if not tessera.builds_incrementally() -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as stored
            where
                stored.customer_id in (
                    select customer_id from {{ ref('customer_erasures') }}
                )
                or exists (
                    with

                    last_built as (
                        {{ tessera.last_built() }}
                    ),

                    changed_identifiers as (
                        {{ tessera.identifiers_changed_since_built() }}
                    )

                    select 1 from changed_identifiers
                    where
                        changed_identifiers.identifier_type = stored.identifier_type
                        and changed_identifiers.identifier_value = stored.identifier_value
                )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
