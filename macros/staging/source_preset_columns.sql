{#- Where each contract column of `table_name` lives in the raw table of the source preset (var
    tessera_source_preset): a mapping of contract column to the raw columns that may hold it, the
    first one present winning row by row. A contract column not in the mapping is read from the
    raw column of its own name; an empty list means the preset has no such column by design
    (Segment's and RudderStack's tracks keep properties in one table per event). `_loaded_at` is
    the load timestamp: Tessera's optional `_loaded_at` column, and in the presets `uuid_ts` (when
    the vendor's loader wrote the row) before `received_at` (when its API received the call). -#}
{% macro source_preset_columns(table_name) -%}
    {%- set preset = var('tessera_source_preset') -%}
    {%- set presets = ['tessera', 'segment', 'rudderstack'] -%}
    {%- if preset not in presets -%}
        {{ exceptions.raise_compiler_error("var tessera_source_preset must be one of " ~ presets | join(', ') ~ ", got '" ~ preset ~ "'") }}
    {%- endif -%}
    {%- if preset == 'tessera' or table_name not in ['identifies', 'tracks', 'pages'] -%}
        {{ return({}) }}
    {%- endif -%}
    {%- set loaded = {'_loaded_at': ['uuid_ts', 'received_at']} -%}
    {%- set vendor = {
        'identifies': {
            'email': ['email', 'context_traits_email'],
            'phone': ['phone', 'context_traits_phone'],
            'first_name': ['first_name', 'context_traits_first_name'],
            'last_name': ['last_name', 'context_traits_last_name'],
        },
        'tracks': {
            'event': ['event_text', 'event'],
            'properties': [],
        },
        'pages': {
            'url': ['url', 'context_page_url'],
            'path': ['path', 'context_page_path'],
            'referrer': ['referrer', 'context_page_referrer'],
            'utm_source': ['context_campaign_source'],
            'utm_medium': ['context_campaign_medium'],
            'utm_campaign': ['context_campaign_name'],
            'utm_term': ['context_campaign_term'],
            'utm_content': ['context_campaign_content'],
        },
    } -%}
    {%- set columns = dict(vendor[table_name]) -%}
    {%- do columns.update(loaded) -%}
    {{ return(columns) }}
{%- endmacro %}
