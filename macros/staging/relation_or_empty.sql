{#- `relation`, or an empty relation of `contract`'s columns (a list of (name, type)) where the
    warehouse does not have it, after logging `missing_message`. Unit tests are left alone: dbt
    swaps the relation for their fixture rows and has no relation to look up. Used for source
    tables a shop may not send (source_or_empty) and for tables a later step writes
    (predictions_or_empty). -#}
{% macro relation_or_empty(relation, contract, missing_message) -%}
    {%- if execute and model.resource_type != "unit_test" and load_relation(relation) is none -%}
        {%- do log("Tessera: " ~ missing_message, info=true) -%}
        {%- set columns = [] -%}
        {%- for name, data_type in contract -%}
            {%- do columns.append("cast(null as " ~ data_type ~ ") as " ~ adapter.quote(name)) -%}
        {%- endfor -%}
        (select {{ columns | join(', ') }} where 1 = 0)
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
