{#- The columns each source table must have, with their canonical types (DESIGN.md, source
    contracts). Used to stand in an empty table for a source the warehouse does not have. -#}
{% macro source_contract(table_name) -%}
    {%- set text = dbt.type_string() -%}
    {%- set contract = {
        'identifies': [
            ('id', text), ('anonymous_id', text), ('user_id', text), ('email', text),
            ('phone', text), ('first_name', text), ('last_name', text), ('timestamp', text)],
        'tracks': [
            ('id', text), ('anonymous_id', text), ('user_id', text), ('event', text),
            ('properties', text), ('context_device_id', text), ('timestamp', text)],
        'pages': [
            ('id', text), ('anonymous_id', text), ('user_id', text), ('url', text),
            ('path', text), ('referrer', text), ('utm_source', text), ('utm_medium', text),
            ('utm_campaign', text), ('utm_term', text), ('utm_content', text), ('timestamp', text)],
        'orders': [
            ('order_id', text), ('customer_ref', text), ('email', text), ('phone', text),
            ('ordered_at', text), ('total_amount', dbt.type_float()), ('currency', text),
            ('status', text), ('channel', text), ('user_id', text), ('anonymous_id', text)],
        'crm_contacts': [
            ('contact_id', text), ('email', text), ('phone', text), ('first_name', text),
            ('last_name', text), ('company', text), ('lifecycle_stage', text),
            ('created_at', text), ('updated_at', text)],
        'support_tickets': [
            ('ticket_id', text), ('requester_email', text), ('created_at', text),
            ('status', text), ('channel', text), ('satisfaction_score', dbt.type_int())],
        'consents': [
            ('subject_type', text), ('subject_value', text), ('purpose', text),
            ('granted', dbt.type_boolean()), ('recorded_at', text), ('source', text)],
        'deletion_requests': [
            ('subject_type', text), ('subject_value', text), ('requested_at', text)],
        'order_items': [
            ('order_id', text), ('product_id', text), ('sku', text), ('name', text),
            ('category', text), ('price', text), ('quantity', text)],
    } -%}
    {%- if table_name not in contract -%}
        {{ exceptions.raise_compiler_error("Tessera has no source contract for table '" ~ table_name ~ "'; known tables: " ~ (contract.keys() | list | join(', '))) }}
    {%- endif -%}
    {{ return(contract[table_name]) }}
{%- endmacro %}
