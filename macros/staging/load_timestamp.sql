{#- The load timestamp of each row of `relation` (aliased `table_alias`), as a UTC timestamp: the
    first non-null, row by row, of the `candidates` columns the table has. A column typed as a
    timestamp is converted directly (with a time zone: to UTC); a text one is parsed as ISO-8601
    (safe_cast_timestamp), which costs a scan of its text on every read. A null timestamp where
    the table has none of them. -#}
{% macro load_timestamp(relation, candidates, table_alias) -%}
    {%- set typed = {} -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do typed.update({column.name | lower: column}) -%}
    {%- endfor -%}
    {%- set found = [] -%}
    {%- for candidate in candidates if candidate in typed -%}
        {%- set column = typed[candidate] -%}
        {%- set ref = table_alias ~ "." ~ adapter.quote(column.name) -%}
        {%- set data_type = column.data_type | lower -%}
        {%- if 'timestamp' in data_type and ('with time zone' in data_type or 'tz' in data_type) -%}
            {%- do found.append(tessera.utc_timestamp(ref)) -%}
        {%- elif 'timestamp' in data_type or data_type == 'datetime' -%}
            {%- do found.append("cast(" ~ ref ~ " as " ~ dbt.type_timestamp() ~ ")") -%}
        {%- else -%}
            {%- do found.append(tessera.safe_cast_timestamp(ref)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ tessera.first_of(found, "cast(null as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}
