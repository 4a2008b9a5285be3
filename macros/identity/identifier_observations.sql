{#- One row per non-null identifier on each row of `relation`: the identifiers of a staging model
    unpivoted, with the row they came from and when it was loaded (`loaded_at`, a column; none
    where the source has no load timestamp). `identifiers` is a list of (identifier_type, column). -#}
{% macro identifier_observations(relation, source_table, row_id, observed_at, identifiers, loaded_at=none) -%}
    {%- for identifier_type, column in identifiers %}
    select
        '{{ source_table }}' as source_table,
        {{ row_id }} as source_row_id,
        '{{ identifier_type }}' as identifier_type,
        {{ column }} as identifier_value,
        {{ observed_at }} as observed_at,
        {{ tessera.source_loaded_at(loaded_at) }} as source_loaded_at
    from {{ relation }}
    where {{ column }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
