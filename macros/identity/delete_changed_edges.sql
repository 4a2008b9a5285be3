{#- Pre-hook of identity_edges on incremental runs: drop every stored pair with an end in
    identity_changed_identifiers (one statement per end, each a plain semi-join). The model then
    re-derives those pairs from all rows that hold them. -#}
{% macro delete_changed_edges(side) -%}
    {%- if is_incremental() %}
    delete from {{ this }} as stored
    where exists (
        select 1
        from {{ ref('identity_changed_identifiers') }} as changed
        where
            changed.identifier_type = stored.identifier_type_{{ side }}
            and changed.identifier_value = stored.identifier_value_{{ side }}
    )
    {%- endif %}
{%- endmacro %}
