{#- Every row of the raw tracks table as it landed, in the contract's columns as text. Under the
    segment and rudderstack presets each call's properties come from its event's own table. -#}
{%- set raw_tracks = source('segment', 'tracks') -%}
{%- set landed = tessera.land_source('segment', 'tracks') -%}
{%- set properties = none -%}
{%- if var('tessera_source_preset') != 'tessera' and load_relation(raw_tracks) is not none -%}
    {%- set properties = tessera.event_properties(raw_tracks) -%}
{%- endif -%}
{%- if properties is none %}
    {{ landed }}
{%- else -%}
with

tracks as (
    {{ landed }}
),

event_properties as (
    {{ properties }}
)

select
    {%- for name, data_type in tessera.source_contract('tracks') %}
    {%- if name == 'properties' %}
    event_properties.properties,
    {%- else %}
    tracks.{{ adapter.quote(name) }},
    {%- endif %}
    {%- endfor %}
    tracks._loaded_at
from tracks
left join event_properties on tracks.id = event_properties.message_id
{%- endif %}
