{#- Incremental models keyed by what changed since they were built (identity_identifiers,
    customer_events, customer_identities) stamp each row with the run that built it
    (_built_at); a run rebuilds the rows whose inputs changed since the newest stamp, and the
    model's pre-hook first deletes the rows that can no longer stand. -#}

{#- Whether the model builds incrementally: an incremental run over a stored table that has
    _built_at (and every one of `columns` the run compares with what is stored). A table built
    before the model was incremental has none: the pre-hook empties it and the run rebuilds
    every row, once. -#}
{% macro builds_incrementally(columns=[]) -%}
    {%- if not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set stored = tessera.relation_columns(this) or {} -%}
    {%- for column in ['_built_at'] + columns if column not in stored -%}
        {{ return(false) }}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}


{#- CTE body: the newest _built_at stored (a time before any data when none is). -#}
{% macro last_built() -%}
    select
        coalesce(
            max(_built_at), cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }})
        ) as built_at
    from {{ this }}
{%- endmacro %}


{#- The identifiers of rows of `model` stamped (column `stamp`) after the model being built was
    last built (needs CTE last_built): of identity_customer_registry (assigned_at), those given
    another customer; of identity_observations (loaded_at), those observed; of
    identity_retracted_observations (retracted_at), those withdrawn. -#}
{% macro identifiers_stamped_since_built(model, stamp) -%}
    select
        stamped.identifier_type,
        stamped.identifier_value
    from {{ ref(model) }} as stamped
    cross join last_built
    where stamped.{{ stamp }} > last_built.built_at
{%- endmacro %}


{#- The rows of `relation` whose identifier is in CTE changed_identifiers. -#}
{% macro rows_of_changed_identifiers(relation) -%}
    select changing.*
    from {{ relation }} as changing
    inner join changed_identifiers
        on
            changing.identifier_type = changed_identifiers.identifier_type
            and changing.identifier_value = changed_identifiers.identifier_value
{%- endmacro %}


{#- Pre-hook of a model keyed by identifier (identifier_type, identifier_value): in an
    incremental run, delete the rows of the identifiers the run rebuilds (`changed`: a CTE
    body, which may read CTE last_built); over a table built before the model was incremental,
    every row. The identifiers are one uncorrelated `in` list, which every warehouse runs as a
    semi-join (a correlated `exists` over a CTE is run per stored row on Postgres). -#}
{% macro delete_rebuilt_identifiers(changed) -%}
    {%- if execute and is_incremental() -%}
        {%- if not tessera.builds_incrementally() -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as stored
            where
                (stored.identifier_type, stored.identifier_value) in (
                    with

                    last_built as (
                        {{ tessera.last_built() }}
                    ),

                    changed_identifiers as (
                        {{ changed }}
                    )

                    select
                        changed_identifiers.identifier_type,
                        changed_identifiers.identifier_value
                    from changed_identifiers
                )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- Pre-hook of a customer-level incremental mart: in an incremental run, delete the rows of
    the customers erased since (customer_erasures). -#}
{% macro delete_erased_customers() -%}
    {%- if execute and tessera.builds_incrementally() -%}
        delete from {{ this }} as stored
        where stored.customer_id in (select customer_id from {{ ref('customer_erasures') }})
    {%- endif -%}
{%- endmacro %}


{#- The settings a model's rows were built under, as a short digest of the vars `names` (column
    _built_with): a run that finds rows built under other settings rebuilds them, as a changed
    survivorship rule must change every golden record. -#}
{% macro settings_digest(names, shape=none) -%}
    {%- set settings = {} if shape is none else {'_shape': shape} -%}
    {%- for name in names -%}
        {%- do settings.update({name: var(name)}) -%}
    {%- endfor -%}
    {{ return(local_md5(tojson(settings, sort_keys=true))) }}
{%- endmacro %}
