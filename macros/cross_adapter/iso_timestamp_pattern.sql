{#- ISO-8601 date or date-time with an optional UTC offset. Only text of this shape is parsed, so
    that every adapter accepts exactly the same values: Postgres alone would also read "12/31/2025",
    and read it by its DateStyle setting. -#}
{% macro iso_timestamp_pattern() -%}
    ^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?[ ]?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$
{%- endmacro %}

{#- The trailing UTC offset of a value that matches iso_timestamp_pattern. -#}
{% macro utc_offset_pattern() -%}
    [0-9]:[0-9]{2}([.:][0-9]+)*[ ]?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$
{%- endmacro %}
