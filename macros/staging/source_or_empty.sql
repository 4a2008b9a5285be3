{#- The source relation, or an empty relation of the contract's columns where the warehouse does
    not have that table: a shop that sends orders only still builds every model. Unit tests are
    left alone: dbt swaps the source for their fixture rows and has no relation to look up. -#}
{% macro source_or_empty(source_name, table_name, contract_table=none) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and model.resource_type != "unit_test" and load_relation(relation) is none -%}
        {%- do log("Tessera: source table " ~ relation ~ " does not exist; reading it as empty.", info=true) -%}
        {%- set columns = [] -%}
        {%- for name, data_type in tessera.source_contract(contract_table or table_name) -%}
            {%- do columns.append("cast(null as " ~ data_type ~ ") as " ~ adapter.quote(name)) -%}
        {%- endfor -%}
        (select {{ columns | join(', ') }} where 1 = 0)
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
