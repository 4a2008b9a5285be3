"""The predictive step as Dagster assets: a thin wrapper around ``run_predictive``.

One multi-asset produces the four tables of schema ``predictive`` (they are written together in
one transaction) from the feature marts; the dbt models in models/predictive read them as sources
whose ``meta.dagster.asset_key`` names these keys, so lineage runs dbt -> Python -> dbt. The plots
are attached to the materializations as images and written to the output folder as PNGs.
"""

import base64
from pathlib import Path

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.predictive.pipeline import (
    PREDICTIONS_SCHEMA,
    PredictiveResult,
    format_summary,
    run_predictive,
)
from orchestration.resources import RunSettings, WarehouseResource

PREDICTION_TABLES = {
    "customer_clv_predictions": "P(alive), expected purchases and discounted CLV per customer.",
    "customer_churn_predictions": "Churn probability per customer from the churn classifier.",
    "clv_model_parameters": "The fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, v).",
    "churn_model_evaluations": "AUC, Brier score and calibration of the churn classifier.",
}
FEATURE_MODELS = ("customer_features", "customer_features_holdout")
# Which plot is shown on which table's materialization.
PLOTS_BY_TABLE = {
    "customer_clv_predictions": ("clv_distribution", "holdout_purchases"),
    "churn_model_evaluations": ("churn_roc",),
}


def prediction_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([PREDICTIONS_SCHEMA, table])


def _image(path: Path) -> dg.MetadataValue:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return dg.MetadataValue.md(f"![{path.stem}](data:image/png;base64,{encoded})")


def _metadata(table: str, result: PredictiveResult) -> dict[str, object]:
    bg, gg, churn = result.bgnbd, result.gamma_gamma, result.churn
    metadata: dict[str, object] = {
        "customers_scored": result.customers_scored,
        "calibration_end": str(result.calibration_end),
        "time_unit": result.time_unit,
    }
    if table in ("customer_clv_predictions", "clv_model_parameters"):
        metadata |= {
            "bgnbd": dg.MetadataValue.json({"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b}),
            "gamma_gamma": dg.MetadataValue.json({"p": gg.p, "q": gg.q, "v": gg.v}),
            "total_discounted_clv": round(result.total_clv, 2),
        }
    if table in ("customer_churn_predictions", "churn_model_evaluations"):
        metadata |= {
            "model_version": result.model_version,
            "auc": round(churn.auc, 4),
            "brier_score": round(churn.brier_score, 4),
            "calibration_error": round(churn.calibration_error, 4),
            "held_out_customers": churn.test_customers,
        }
    for name in PLOTS_BY_TABLE.get(table, ()):
        path = result.plots[name]
        metadata[name] = _image(path)
        metadata[f"{name}_png"] = dg.MetadataValue.path(str(path))
    return metadata


def build_predictive_assets(dbt_assets: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The predictive multi-asset, downstream of the feature marts in ``dbt_assets``."""
    features = [get_asset_key_for_model([dbt_assets], name) for name in FEATURE_MODELS]
    specs = [
        dg.AssetSpec(
            prediction_key(table), deps=features, group_name="predictive", description=text
        )
        for table, text in PREDICTION_TABLES.items()
    ]

    @dg.multi_asset(
        name="predictive_models",
        specs=specs,
        description="Fits BG/NBD, Gamma-Gamma and the churn classifier; scores every customer.",
    )
    def predictive_models(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: RunSettings
    ):
        result = run_predictive(
            warehouse.get(), settings.vars(), Path(settings.output_dir), progress=context.log.info
        )
        context.log.info(format_summary(result))
        for table in PREDICTION_TABLES:
            yield dg.MaterializeResult(
                asset_key=prediction_key(table), metadata=_metadata(table, result)
            )

    return predictive_models
