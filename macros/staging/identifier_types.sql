{#- The identifier types Tessera stitches on (DESIGN.md, Identity), as a SQL list literal. -#}
{% macro identifier_types() -%}
    ('anonymous_id', 'user_id', 'email', 'phone', 'crm_contact_id', 'shop_customer_ref', 'device_id')
{%- endmacro %}
