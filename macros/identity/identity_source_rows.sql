{#- One row per valid row of the identity sources named in `source_tables` (all when none): its
    table, id, time and load timestamp. The key that tells whether a source row is new, changed (a
    CRM contact updated in place, an event loaded again) or gone since the last run. An unknown
    name fails the compilation. -#}
{% macro identity_source_rows(source_tables=none) -%}
    {%- set sources = tessera.identity_sources() -%}
    {%- set known = sources | map(attribute='source_table') | list -%}
    {%- if source_tables is none -%}
        {%- set source_tables = known -%}
    {%- endif -%}
    {%- for name in source_tables if name not in known -%}
        {{ exceptions.raise_compiler_error(
            "tessera_mutable_sources: '" ~ name ~ "' is not an identity source; "
            ~ "choose among " ~ known | join(', ')
        ) }}
    {%- endfor -%}
    {%- set chosen = sources | selectattr('source_table', 'in', source_tables) | list -%}
    {%- for source in chosen %}
    select
        '{{ source.source_table }}' as source_table,
        {{ source.row_id }} as source_row_id,
        {{ source.observed_at }} as observed_at,
        {{ tessera.source_loaded_at(source.get('loaded_at')) }} as source_loaded_at
    from {{ ref(source.model) }}
        {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as source_table,
        cast(null as {{ dbt.type_string() }}) as source_row_id,
        cast(null as {{ dbt.type_timestamp() }}) as observed_at,
        cast(null as {{ dbt.type_timestamp() }}) as source_loaded_at
    where 1 = 0
    {%- endfor %}
{%- endmacro %}
