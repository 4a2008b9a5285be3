{#- The first non-null, row by row, of the columns named in `candidates` that the table has
    (`present`: relation_columns of it), each read as text from `table_alias`; a text null when
    it has none of them. -#}
{% macro first_present_column(present, candidates, table_alias) -%}
    {%- set text = dbt.type_string() -%}
    {%- set found = [] -%}
    {%- for candidate in candidates if candidate in present -%}
        {%- do found.append("cast(" ~ table_alias ~ "." ~ adapter.quote(present[candidate]) ~ " as " ~ text ~ ")") -%}
    {%- endfor -%}
    {{ tessera.first_of(found, "cast(null as " ~ text ~ ")") }}
{%- endmacro %}
