{#- The tables of Segment's e-commerce order events (spec v2) beside `tracks_relation`, as
    (relation, order_status) for each one the warehouse has: Order Completed, Order Refunded and
    Order Cancelled, named as var tessera_event_tables says or, by default, as the vendors name
    them (the event in snake_case), if it has the spec's order_id column. Empty under the tessera
    preset and while dbt only parses. -#}
{% macro ecommerce_event_tables(tracks_relation) -%}
    {%- set found = [] -%}
    {%- if not execute or var('tessera_source_preset') == 'tessera' -%}
        {{ return(found) }}
    {%- endif -%}
    {%- set names = var('tessera_event_tables', {}) -%}
    {%- for event, status in [
        ('Order Completed', 'completed'),
        ('Order Refunded', 'refunded'),
        ('Order Cancelled', 'cancelled'),
    ] -%}
        {%- set table = names.get(event, event | lower | replace(' ', '_')) -%}
        {%- set relation = load_relation(api.Relation.create(
            database=tracks_relation.database, schema=tracks_relation.schema, identifier=table
        )) -%}
        {#- The spec requires order_id; an event table without it names no order. -#}
        {%- if relation is not none and 'order_id' in tessera.relation_columns(relation) -%}
            {%- do found.append((relation, status)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}
