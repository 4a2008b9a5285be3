{#- The event tables beside `tracks_relation`: the tables of its schema with an `event_text`
    column, `tracks` itself excepted, plus those var tessera_event_tables names. -#}
{% macro event_tables(tracks_relation) -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select distinct table_name
        from information_schema.columns
        where lower(table_schema) = lower('{{ tracks_relation.schema }}')
            and lower(column_name) = 'event_text'
            and lower(table_name) <> lower('{{ tracks_relation.identifier }}')
        order by table_name
    {%- endset -%}
    {%- set found = run_query(query).columns[0].values() | list -%}
    {%- for table in var('tessera_event_tables', {}).values() if table not in found -%}
        {%- do found.append(table) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}
