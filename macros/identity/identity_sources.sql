{#- Where identifiers come from: each staging model, its row id and time, its load and staging
    timestamps where it has them (the incrementally staged event sources), and which of its
    columns hold which identifier type (DESIGN.md, Identity). Consents and deletion requests name
    a subject but link nothing, so they are looked up against the graph instead of feeding it. -#}
{% macro identity_sources() -%}
    {{ return([
        {'model': 'stg_segment__identifies', 'source_table': 'identifies',
         'row_id': 'identify_id', 'observed_at': 'identified_at', 'loaded_at': '_loaded_at', 'staged_at': '_staged_at',
         'identifiers': [('anonymous_id', 'anonymous_id'), ('user_id', 'user_id'),
                         ('email', 'email'), ('phone', 'phone')]},
        {'model': 'stg_segment__tracks', 'source_table': 'tracks',
         'row_id': 'track_id', 'observed_at': 'tracked_at', 'loaded_at': '_loaded_at', 'staged_at': '_staged_at',
         'identifiers': [('anonymous_id', 'anonymous_id'), ('user_id', 'user_id'),
                         ('device_id', 'device_id')]},
        {'model': 'stg_segment__pages', 'source_table': 'pages',
         'row_id': 'page_view_id', 'observed_at': 'viewed_at', 'loaded_at': '_loaded_at', 'staged_at': '_staged_at',
         'identifiers': [('anonymous_id', 'anonymous_id'), ('user_id', 'user_id')]},
        {'model': 'stg_shop__orders', 'source_table': 'orders',
         'row_id': 'order_id', 'observed_at': 'ordered_at',
         'identifiers': [('shop_customer_ref', 'shop_customer_ref'), ('email', 'email'),
                         ('phone', 'phone'), ('user_id', 'user_id'),
                         ('anonymous_id', 'anonymous_id')]},
        {'model': 'stg_crm__contacts', 'source_table': 'crm_contacts',
         'row_id': 'crm_contact_id', 'observed_at': 'updated_at',
         'identifiers': [('crm_contact_id', 'crm_contact_id'), ('email', 'email'),
                         ('phone', 'phone')]},
        {'model': 'stg_support__tickets', 'source_table': 'support_tickets',
         'row_id': 'ticket_id', 'observed_at': 'created_at',
         'identifiers': [('email', 'requester_email')]},
    ]) }}
{%- endmacro %}
