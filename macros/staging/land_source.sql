{#- One raw table as it landed, in its source contract's shape: each contract column as text,
    whatever type the EL tool gave it, and `_loaded_at`, when the row was loaded (a UTC timestamp;
    null where the table has no load timestamp). The source preset (var tessera_source_preset)
    says which raw columns hold each contract column: the first of them the table has wins, row by
    row. A column the table lacks is read as null and logged: Segment and RudderStack create a
    column only once some call carries it. A table the warehouse lacks is read as empty. -#}
{% macro land_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- set contract = tessera.source_contract(table_name) -%}
    {%- set text = dbt.type_string() -%}
    {%- set present = tessera.relation_columns(relation) -%}
    {%- if present is none -%}
        {%- if execute -%}
            {%- do log("Tessera: source table " ~ relation ~ " does not exist; reading it as empty.", info=true) -%}
        {%- endif -%}
        select
            {%- for name, data_type in contract %}
            cast(null as {{ text }}) as {{ adapter.quote(name) }},
            {%- endfor %}
            cast(null as {{ dbt.type_timestamp() }}) as _loaded_at
        where 1 = 0
    {%- else -%}
        {%- set candidates = tessera.source_preset_columns(table_name) -%}
        {%- set missing = [] -%}
        select
            {%- for name, data_type in contract %}
            {%- set names = candidates.get(name, [name]) -%}
            {%- set found = [] -%}
            {%- for candidate in names if candidate in present -%}
                {%- do found.append("cast(raw_rows." ~ adapter.quote(present[candidate]) ~ " as " ~ text ~ ")") -%}
            {%- endfor -%}
            {%- if not found and names and name not in tessera.source_optional_columns(table_name) -%}
                {%- do missing.append(name) -%}
            {%- endif %}
            {{ tessera.first_of(found, "cast(null as " ~ text ~ ")") }} as {{ adapter.quote(name) }},
            {%- endfor %}
            {%- set loaded = [] -%}
            {%- for candidate in candidates.get('_loaded_at', ['_loaded_at']) if candidate in present -%}
                {%- do loaded.append(tessera.safe_cast_timestamp("raw_rows." ~ adapter.quote(present[candidate]))) -%}
            {%- endfor %}
            {{ tessera.first_of(loaded, "cast(null as " ~ dbt.type_timestamp() ~ ")") }} as _loaded_at
        from {{ relation }} as raw_rows
        {%- if missing and execute %}
            {%- do log("Tessera: " ~ relation ~ " has no column " ~ missing | join(", ") ~ " (preset " ~ var('tessera_source_preset') ~ "); reading it as null.", info=true) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
