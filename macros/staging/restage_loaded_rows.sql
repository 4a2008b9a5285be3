{#- Pre-hook of an incremental event staging model (base_segment__*): which stored rows the run
    stages again. The window is every row loaded in the last var tessera_staging_lookback_hours
    before the newest stored load timestamp, and every row without one: their stored versions
    are deleted, so the model reads them again from `landed` as they are now (rows that arrived
    late, or were edited or deleted there, included). A table without a load timestamp has no
    stored row outside the window: it is staged whole each run, as before.

    For the sources in var tessera_mutable_sources, rows loaded before the window are checked too:
    when the number of landed rows of any (id, load timestamp) differs from what is stored (a row
    deleted or edited at the source, or one loaded with an old timestamp), the model is staged
    again from all history, and the log says so. For the other sources that check is skipped: they
    are taken to be append-only, with load timestamps that only grow.

    `key` is the model's id column, `raw_key` the landed column it is cleaned from (as the model
    does: trimmed, empty as null). -#}
{% macro restage_loaded_rows(landed, source_table, key, raw_key='id') -%}
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
            {%- set changed = 0 -%}
            {%- if source_table in var('tessera_mutable_sources') -%}
                {%- set versions_query -%}
                    with

                    landed_versions as (
                        select
                            coalesce(nullif(trim({{ raw_key }}), ''), '') as row_key,
                            _loaded_at,
                            count(*) as row_count
                        from {{ landed }}
                        where _loaded_at < {{ window_start }}
                        group by 1, 2
                    ),

                    stored_versions as (
                        select
                            coalesce({{ key }}, '') as row_key,
                            _loaded_at,
                            count(*) as row_count
                        from {{ this }}
                        where _loaded_at < {{ window_start }}
                        group by 1, 2
                    )

                    select count(*)
                    from landed_versions
                    full outer join stored_versions
                        on
                            landed_versions.row_key = stored_versions.row_key
                            and landed_versions._loaded_at = stored_versions._loaded_at
                    where landed_versions.row_count is distinct from stored_versions.row_count
                {%- endset -%}
                {%- set changed = run_query(versions_query).columns[0].values()[0] -%}
            {%- endif -%}
            {%- if changed > 0 -%}
                {%- do log(
                    "Tessera: " ~ changed ~ " (id, load timestamp) versions of " ~ landed
                    ~ " loaded before " ~ start ~ " differ from what " ~ this ~ " staged (rows"
                    ~ " deleted or edited at the source, or loaded late); staging it again from"
                    ~ " all history.", info=true
                ) -%}
                delete from {{ this }}
            {%- else -%}
                delete from {{ this }}
                where _loaded_at is null or _loaded_at >= {{ window_start }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
