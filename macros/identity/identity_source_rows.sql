{#- One row per valid row of every identity source: its table, id and time. The key that tells
    whether a source row is new, changed (a CRM contact updated in place) or gone since the last
    run. -#}
{% macro identity_source_rows() -%}
    {%- for source in tessera.identity_sources() %}
    select
        '{{ source.source_table }}' as source_table,
        {{ source.row_id }} as source_row_id,
        {{ source.observed_at }} as observed_at
    from {{ ref(source.model) }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
