{#- A table of source `predictive`, or an empty relation of its contract's columns before the
    predictive step has written it: `dbt build` runs before the Python step, so on a new warehouse
    the predictive models build empty and fill on the build that follows the step. Unit tests
    are left alone: dbt swaps the source for their fixture rows. -#}
{% macro predictions_or_empty(table_name) -%}
    {%- set relation = source('predictive', table_name) -%}
    {%- if execute and model.resource_type != "unit_test" and load_relation(relation) is none -%}
        {%- do log(
            "Tessera: " ~ relation ~ " does not exist yet (the predictive step has not run); "
            ~ "reading it as empty.", info=true
        ) -%}
        {%- set columns = [] -%}
        {%- for name, data_type in tessera.prediction_contract(table_name) -%}
            {%- do columns.append("cast(null as " ~ data_type ~ ") as " ~ adapter.quote(name)) -%}
        {%- endfor -%}
        (select {{ columns | join(', ') }} where 1 = 0)
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
