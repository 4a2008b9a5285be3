{#- Pre-hook of an incremental event staging model (base_segment__*): which stored rows the run
    stages again. The window is every row loaded in the last var tessera_staging_lookback_hours
    before the newest stored load timestamp, and every row without one: their stored versions
    are deleted, so the model reads them again from `landed` as they are now (rows that arrived
    late, or were edited or deleted there, included). A table without a load timestamp has no
    stored row outside the window: it is staged whole each run, as before.

    For the sources in var tessera_mutable_sources, rows loaded before the window are checked too:
    when their count or the fingerprint of their (id, load timestamp) pairs (a sum of hashes, one
    scan of each side) differs from what is stored (a row deleted or edited at the source, or one
    loaded with an old timestamp), the model is staged again from all history, and the log says
    so. For the other sources that check is skipped: they are taken to be append-only, with load
    timestamps that only grow.

    `key` is the model's id column, cleaned from the landed `id` as the model cleans it (trimmed,
    empty as null). -#}
{% macro restage_loaded_rows(landed, source_table, key) -%}
    {%- if execute and is_incremental() -%}
        {%- set newest = run_query(
            "select max(_loaded_at) from " ~ this
        ).columns[0].values()[0] -%}
        {%- if newest is none -%}
            delete from {{ this }}
        {%- else -%}
            {%- set lookback = var('tessera_staging_lookback_hours') -%}
            {%- set start = newest - modules.datetime.timedelta(hours=lookback) -%}
            {%- set window_start -%}
                cast('{{ start.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
            {%- endset -%}
            {%- set changed = none -%}
            {%- if source_table in var('tessera_mutable_sources') -%}
                {%- set row_version -%}
                    coalesce({{ key }}, '') || '|' || cast(_loaded_at as {{ dbt.type_string() }})
                {%- endset -%}
                {%- set versions_query -%}
                    with

                    landed_rows as (
                        select
                            count(*) as row_count,
                            sum({{ tessera.hash_bigint(row_version) }}) as fingerprint
                        from (
                            select nullif(trim(id), '') as {{ key }}, _loaded_at
                            from {{ landed }}
                            where _loaded_at < {{ window_start }}
                        ) as landed_versions
                    ),

                    stored_rows as (
                        select
                            count(*) as row_count,
                            sum({{ tessera.hash_bigint(row_version) }}) as fingerprint
                        from {{ this }}
                        where _loaded_at < {{ window_start }}
                    )

                    select
                        landed_rows.row_count,
                        stored_rows.row_count,
                        coalesce(landed_rows.fingerprint = stored_rows.fingerprint, true)
                    from landed_rows
                    cross join stored_rows
                {%- endset -%}
                {%- set row = run_query(versions_query).rows[0] -%}
                {%- if row[0] != row[1] or not row[2] -%}
                    {%- set changed = row -%}
                {%- endif -%}
            {%- endif -%}
            {%- if changed is not none -%}
                {%- do log(
                    "Tessera: " ~ landed ~ " holds " ~ changed[0] ~ " rows loaded before "
                    ~ start ~ " and " ~ this ~ " staged " ~ changed[1] ~ (
                        " of other ids or load timestamps" if changed[0] == changed[1] else ""
                    ) ~ " (rows deleted or edited at the source, or loaded late); staging it"
                    ~ " again from all history.", info=true
                ) -%}
                delete from {{ this }}
            {%- else -%}
                delete from {{ this }}
                where _loaded_at is null or _loaded_at >= {{ window_start }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
