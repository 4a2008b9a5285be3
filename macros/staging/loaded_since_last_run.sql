{#- The filter an incremental event staging model reads its landed rows through: the rows loaded
    after the newest load timestamp it still stores, and every row without one. It is meant to run
    after restage_loaded_rows, which first removes the stored rows of the look-back window, so
    the window is read again. A first build or `--full-refresh` reads every row. -#}
{% macro loaded_since_last_run() -%}
    {%- if is_incremental() %}
    where coalesce(_loaded_at > (select max(stored._loaded_at) from {{ this }} as stored), true)
    {%- endif %}
{%- endmacro %}
