"""The predictive steps as Dagster assets: thin wrappers around ``run_predictive`` and
``run_propensity``.

One multi-asset produces the CLV and churn tables of schema ``predictive`` (written together in
one transaction) from the feature marts, another the propensity tables from customer_events; the
dbt models in models/predictive read them as sources whose ``meta.dagster.asset_key`` names these
keys, so lineage runs dbt -> Python -> dbt. The plots are attached to the materializations as
images and written to the output folder as PNGs.

Each model is checked against its baseline (orchestration/predictive/evaluations.py) by a
blocking check on the table of its scores: when its primary metric falls below the baseline's,
Dagster runs nothing downstream of those scores (the dbt models over them, the audiences, the
syncs). A declared propensity model refused for its data fails its check as a warning.
"""

import base64
from pathlib import Path

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.predictive import plots, propensity
from orchestration.predictive.evaluations import Evaluation, format_table, from_frame
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
#: The metric a model is judged on against its baseline; the others are shown beside it.
PRIMARY_METRICS = {
    "clv": "holdout_purchases_mae",
    "churn": "auc",
    "propensity": "auc",
}
#: Held-out customers from which a model below its baseline blocks (ERROR); fewer warn.
MIN_DECISIVE_CUSTOMERS = 500
#: Model of the CLV and churn step -> the table of its scores, which its check is on.
CHECKED_TABLES = {"clv": "customer_clv_predictions", "churn": "customer_churn_predictions"}
PROPENSITY_TABLES = {
    propensity.PREDICTIONS_TABLE: "Probability, percentile and factors per customer and model.",
    propensity.EVALUATIONS_TABLE: "Each propensity model beside the recency-only baseline.",
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


def _check_spec(model: str, table: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=f"{model}_beats_baseline",
        asset=prediction_key(table),
        blocking=True,
        description=(
            f"Fails (ERROR, blocking what reads the scores) when model {model} does worse than "
            "its baseline on its primary metric on held-out data."
        ),
    )


def baseline_check(
    model: str, table: str | dg.AssetKey, rows: list[Evaluation], primary: str
) -> dg.AssetCheckResult:
    """Passed when ``model``'s ``primary`` metric is at least its baseline's; every metric in
    the metadata."""
    judged = [row for row in rows if row.metric == primary]
    below = [row for row in judged if row.below_baseline]
    # On a few hundred held-out customers a metric moves more between samples than a model
    # differs from its baseline: there a model below its baseline warns instead of blocking.
    decisive = all(row.n >= MIN_DECISIVE_CUSTOMERS for row in judged)
    metadata: dict[str, object] = {
        "evaluations": dg.MetadataValue.md(f"```\n{format_table(rows)}\n```"),
        **{
            row.metric: dg.MetadataValue.json(
                {"value": row.value, row.baseline: row.baseline_value, "n": row.n}
            )
            for row in rows
        },
    }
    if not judged:
        metadata["reason"] = f"no {primary} was measured for {model}"
    elif below and not decisive:
        metadata["reason"] = (
            f"{model} is below its baseline on {min(row.n for row in judged):,} held-out "
            f"customers, fewer than the {MIN_DECISIVE_CUSTOMERS:,} a blocking verdict needs"
        )
    return dg.AssetCheckResult(
        asset_key=table if isinstance(table, dg.AssetKey) else prediction_key(table),
        check_name=f"{model}_beats_baseline",
        passed=bool(judged) and not below,
        severity=dg.AssetCheckSeverity.ERROR if decisive else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


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
        check_specs=[_check_spec(model, table) for model, table in CHECKED_TABLES.items()],
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
        for model, table in CHECKED_TABLES.items():
            rows = [row for row in result.model_evaluations if row.model == model]
            yield baseline_check(model, table, rows, PRIMARY_METRICS[model])

    return predictive_models


def _propensity_metadata(table: str, result: propensity.PropensityResult) -> dict[str, object]:
    metadata: dict[str, object] = {
        "as_of": str(result.as_of),
        "models_trained": len(result.models),
        "models_refused": dg.MetadataValue.json(dict(result.refused)),
    }
    if table == propensity.PREDICTIONS_TABLE:
        metadata["customers_scored"] = dg.MetadataValue.json(dict(result.customers_scored))
        for name, path in result.plots.items():
            metadata[f"lift_{name}"] = _image(path)
            metadata[f"lift_{name}_png"] = dg.MetadataValue.path(str(path))
    else:
        metadata["evaluations"] = dg.MetadataValue.md(
            f"```\n{format_table(result.evaluations)}\n```"
        )
    return metadata


def build_propensity_assets(
    dbt_assets: dg.AssetsDefinition, models: tuple[propensity.PropensityModelSpec, ...]
) -> dg.AssetsDefinition:
    """The propensity multi-asset, downstream of customer_events, with one check per declared
    model: blocking (ERROR) when it trained and falls below the recency-only baseline, a
    warning when its data was refused."""
    events = get_asset_key_for_model([dbt_assets], propensity.EVENTS_TABLE)
    specs = [
        dg.AssetSpec(
            prediction_key(table), deps=[events], group_name="predictive", description=text
        )
        for table, text in PROPENSITY_TABLES.items()
    ]
    names = [spec.name for spec in models]

    @dg.multi_asset(
        name="propensity_models",
        specs=specs,
        check_specs=[_check_spec(name, propensity.PREDICTIONS_TABLE) for name in names],
        description=(
            "Trains the propensity models of var tessera_propensity_models on a time split and "
            "scores every customer."
        ),
    )
    def propensity_models(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: RunSettings
    ):
        result = propensity.run_propensity(
            warehouse.get(), settings.vars(), Path(settings.output_dir), progress=context.log.info
        )
        context.log.info(propensity.format_summary(result))
        for table in PROPENSITY_TABLES:
            yield dg.MaterializeResult(
                asset_key=prediction_key(table), metadata=_propensity_metadata(table, result)
            )
        for name in names:
            if name in result.refused:
                yield dg.AssetCheckResult(
                    asset_key=prediction_key(propensity.PREDICTIONS_TABLE),
                    check_name=f"{name}_beats_baseline",
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"reason": result.refused[name]},
                )
                continue
            rows = [row for row in result.evaluations if row.model == name]
            yield baseline_check(
                name, propensity.PREDICTIONS_TABLE, rows, PRIMARY_METRICS["propensity"]
            )

    return propensity_models


RECOMMENDATION_MODEL = "recommendation_evaluations"


def recommendation_rows(warehouse, relation: str) -> list[Evaluation]:
    """The rows of dbt model recommendation_evaluations (``relation``: schema.table)."""
    return from_frame(warehouse.query_frame(f"select * from {relation}"))


def recommendation_chart(rows: list[Evaluation], path: Path) -> Path | None:
    """Precision, recall and hit rate at k of the recommender and its baseline."""
    if not rows:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda row: row.metric)
    return plots.recommendation_chart(
        [row.metric for row in rows],
        [row.value for row in rows],
        [row.baseline_value for row in rows],
        path,
    )


def build_recommendation_check(key: dg.AssetKey, relation: str) -> dg.AssetChecksDefinition:
    """Blocking check on dbt model recommendation_evaluations: the recommender's hit rate at k
    (k = tessera_recommendation_count) against the popularity baseline's, with a chart of
    precision, recall and hit rate at k beside the baseline's."""

    @dg.asset_check(
        asset=key,
        name="recommendations_beats_baseline",
        blocking=True,
        description=(
            "Fails (ERROR, blocking the product traits and what sends them) when the "
            "recommender's hit rate at k on the held-out period is below the popularity "
            "baseline's."
        ),
    )
    def recommendations_beats_baseline(
        warehouse: WarehouseResource, settings: RunSettings
    ) -> dg.AssetCheckResult:
        rows = recommendation_rows(warehouse.get(), relation)
        k = settings.config()["tessera_recommendation_count"]
        result = baseline_check("recommendations", key, rows, f"hit_rate_at_{k}")
        chart = recommendation_chart(rows, Path(settings.output_dir) / "recommendations_at_k.png")
        metadata = dict(result.metadata)
        if chart is not None:
            metadata["precision_recall_hit_rate_at_k"] = _image(chart)
            metadata["precision_recall_hit_rate_at_k_png"] = dg.MetadataValue.path(str(chart))
        return dg.AssetCheckResult(
            passed=result.passed, severity=result.severity, metadata=metadata
        )

    return recommendations_beats_baseline
