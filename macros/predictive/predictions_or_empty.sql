{#- A table of source `predictive`, or an empty relation of its contract's columns before the
    predictive step has written it: `dbt build` runs before the Python step, so on a new warehouse
    the predictive models build empty and fill on the build that follows the step. -#}
{% macro predictions_or_empty(table_name) -%}
    {%- set relation = source('predictive', table_name) -%}
    {{ tessera.relation_or_empty(
        relation,
        tessera.prediction_contract(table_name),
        relation ~ " does not exist yet (the predictive step has not run); reading it as empty."
    ) }}
{%- endmacro %}
