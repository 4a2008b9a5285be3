{#- One row per parameter of the BG/NBD and Gamma-Gamma fits of the last predictive run. -#}
with

clv_model_parameters as (
    select * from {{ tessera.predictions_or_empty('clv_model_parameters') }} as fit_parameters
),

final as (
    select
        -- ids
        model,
        parameter,

        -- strings
        time_unit,

        -- numerics
        value,
        log_likelihood,
        n_customers,

        -- timestamps
        calibration_start,
        calibration_end,
        fitted_at
    from clv_model_parameters
)

select * from final
