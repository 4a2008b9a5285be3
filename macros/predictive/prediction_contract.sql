{#- Columns and types of the tables the predictive step writes to schema predictive
    (orchestration/predictive/pipeline.py writes exactly these). Used to stand in an empty table
    before the predictive step has ever run. -#}
{% macro prediction_contract(table_name) -%}
    {%- set text = dbt.type_string() -%}
    {%- set number = 'double precision' -%}
    {%- set count = dbt.type_bigint() -%}
    {%- set stamp = dbt.type_timestamp() -%}
    {#- orchestration/predictive/evaluations.py: one metric of one model beside its baseline. -#}
    {%- set evaluation = [
        ('model', text), ('model_version', text), ('metric', text), ('value', number),
        ('baseline', text), ('baseline_value', number), ('higher_is_better', dbt.type_boolean()),
        ('evaluated_on', 'date'), ('n', count)] -%}
    {%- set contract = {
        'customer_clv_predictions': [
            ('customer_id', text), ('frequency', count), ('recency', number), ('t', number),
            ('monetary_value', number), ('p_alive', number), ('expected_purchases', number),
            ('expected_average_value', number), ('discounted_clv', number),
            ('horizon', number), ('discount_rate', number), ('time_unit', text),
            ('calibration_end_date', 'date'), ('scored_at', stamp)],
        'customer_churn_predictions': [
            ('customer_id', text), ('churn_probability', number), ('p_alive', number),
            ('model_version', text), ('scored_at', stamp)],
        'clv_model_parameters': [
            ('model', text), ('parameter', text), ('value', number), ('log_likelihood', number),
            ('n_customers', count), ('calibration_start', 'date'), ('calibration_end', 'date'),
            ('time_unit', text), ('fitted_at', stamp)],
        'churn_model_evaluations': [
            ('model_version', text), ('training_cutoff_date', 'date'),
            ('churn_window_days', count), ('train_customers', count), ('test_customers', count),
            ('churn_rate', number), ('auc', number), ('brier_score', number),
            ('calibration_error', number), ('trained_at', stamp)],
        'clv_churn_evaluations': evaluation,
        'customer_propensity_predictions': [
            ('customer_id', text), ('model', text), ('probability', number),
            ('factors_raising', text), ('factors_lowering', text), ('model_version', text),
            ('scored_at', stamp)],
        'propensity_evaluations': evaluation,
    } -%}
    {%- if table_name not in contract -%}
        {{ exceptions.raise_compiler_error(
            "Tessera has no prediction contract for table '" ~ table_name ~ "'; known tables: "
            ~ (contract.keys() | list | join(', '))
        ) }}
    {%- endif -%}
    {{ return(contract[table_name]) }}
{%- endmacro %}
