{#- The columns Segment and RudderStack write on every call, which are not event properties
    (the context_* columns neither). -#}
{% macro vendor_standard_columns() -%}
    {{ return([
        'id', 'anonymous_id', 'user_id', 'event', 'event_text', 'timestamp', 'original_timestamp',
        'sent_at', 'received_at', 'uuid', 'uuid_ts', 'loaded_at', 'channel', 'type', 'rudder_id',
        'request_ip', 'message_id', '_loaded_at'
    ]) }}
{%- endmacro %}
