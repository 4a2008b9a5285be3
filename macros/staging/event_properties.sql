{#- Segment and RudderStack keep a track call's properties in a table of its own per event (named
    after the event, properties as columns), not in `tracks`. This reads them back: one row per
    message id with its properties as a JSON object of text (null properties left out), from
    every event table of the raw schema beside `tracks_relation` (a table with the vendor's
    `event_text` column). Null when the schema has no event table. -#}
{% macro event_properties(tracks_relation) -%}
    {%- set tables = tessera.event_tables(tracks_relation) -%}
    {%- if not tables -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set selects = [] -%}
    {%- for table in tables -%}
        {%- set relation = api.Relation.create(database=tracks_relation.database, schema=tracks_relation.schema, identifier=table) -%}
        {%- set columns = tessera.relation_columns(relation) or {} -%}
        {%- set pairs = [] -%}
        {%- for name, quoted_name in columns.items() | sort if name not in tessera.vendor_standard_columns() and not name.startswith('context_') -%}
            {%- do pairs.append((name, "raw_events." ~ adapter.quote(quoted_name))) -%}
        {%- endfor -%}
        {%- do selects.append(
            "select cast(raw_events." ~ adapter.quote(columns.get('id', 'id')) ~ " as " ~ dbt.type_string() ~ ") as message_id, "
            ~ tessera.json_object_text(pairs) ~ " as properties from " ~ relation ~ " as raw_events"
        ) -%}
    {%- endfor -%}
    select message_id, min(properties) as properties
    from (
        {{ selects | join('\n        union all\n        ') }}
    ) as event_rows
    group by message_id
{%- endmacro %}
