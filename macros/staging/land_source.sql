{#- One raw table as it landed, in its source contract's shape: each contract column as text,
    whatever type the EL tool gave it, and `_loaded_at`, when the row was loaded (a UTC timestamp;
    null where the table has no load timestamp). The source preset (var tessera_source_preset)
    says which raw columns hold each contract column: the first of them the table has wins, row by
    row. A column the table lacks is read as null and logged: Segment and RudderStack create a
    column only once some call carries it. A table the warehouse lacks is read as empty. -#}
{% macro land_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- set contract = tessera.source_contract(table_name) -%}
    {%- set present = tessera.relation_columns(relation) -%}
    {%- if present is none -%}
        {%- set columns = [] -%}
        {%- for name, data_type in contract -%}
            {%- do columns.append((name, dbt.type_string())) -%}
        {%- endfor -%}
        {%- do columns.append(('_loaded_at', dbt.type_timestamp())) -%}
        select * from {{ tessera.relation_or_empty(
            relation, columns, "source table " ~ relation ~ " does not exist; reading it as empty."
        ) }} as missing_table
    {%- else -%}
        {%- set candidates = tessera.source_preset_columns(table_name) -%}
        {%- set missing = [] -%}
        select
            {%- for name, data_type in contract %}
            {%- set names = candidates.get(name, [name]) -%}
            {%- if names and name not in tessera.source_optional_columns(table_name)
                and not (names | select('in', present) | list) -%}
                {%- do missing.append(name) -%}
            {%- endif %}
            {{ tessera.first_present_column(present, names, 'raw_rows') }} as {{ adapter.quote(name) }},
            {%- endfor %}
            {{ tessera.load_timestamp(
                relation, candidates.get('_loaded_at', ['_loaded_at']), 'raw_rows'
            ) }} as _loaded_at
        from {{ relation }} as raw_rows
        {%- if missing and execute %}
            {%- do log("Tessera: " ~ relation ~ " has no column " ~ missing | join(", ") ~ " (preset " ~ var('tessera_source_preset') ~ "); reading it as null.", info=true) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
