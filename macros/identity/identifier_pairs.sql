{#- One row per pair of non-null identifiers on the same row of `relation`: the evidence that links
    them. Each pair is ordered by identifier type name, so (a, b) and (b, a) never both appear.
    `identifiers` is a list of (identifier_type, column). -#}
{% macro identifier_pairs(relation, source_table, row_id, observed_at, identifiers) -%}
    {%- set ordered = identifiers | sort(attribute=0) -%}
    {%- set pairs = [] -%}
    {%- for first in ordered -%}
        {%- for second in ordered[loop.index:] -%}
            {%- do pairs.append((first, second)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for first, second in pairs %}
    select
        '{{ first[0] }}' as identifier_type_a,
        {{ first[1] }} as identifier_value_a,
        '{{ second[0] }}' as identifier_type_b,
        {{ second[1] }} as identifier_value_b,
        '{{ source_table }}' as source_table,
        {{ row_id }} as source_row_id,
        {{ observed_at }} as observed_at
    from {{ relation }}
    where {{ first[1] }} is not null and {{ second[1] }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
{%- endmacro %}
