{#- The source relation, or an empty relation of the contract's columns where the warehouse does
    not have that table: a shop that sends orders only still builds every model. -#}
{% macro source_or_empty(source_name, table_name, contract_table=none) -%}
    {%- set relation = source(source_name, table_name) -%}
    {{ tessera.relation_or_empty(
        relation,
        tessera.source_contract(contract_table or table_name),
        "source table " ~ relation ~ " does not exist; reading it as empty."
    ) }}
{%- endmacro %}
