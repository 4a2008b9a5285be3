{#- Pre-hook of identity_observations on incremental runs: drop the stored observations of every
    source row this run retracted (identity_retracted_observations), before the model appends the
    rows' current identifiers. -#}
{% macro delete_retracted_observations() -%}
    {%- if is_incremental() %}
    delete from {{ this }} as stored
    where exists (
        select 1
        from {{ ref('identity_retracted_observations') }} as retracted
        where
            retracted.retracted_at = {{ tessera.run_timestamp() }}
            and retracted.source_table = stored.source_table
            and retracted.source_row_id = stored.source_row_id
    )
    {%- endif %}
{%- endmacro %}
