"""The predictive step: read the feature marts, fit, score, write the results back, plot.

``run_predictive`` is the one call ``tessera run`` (and later a Dagster asset) makes; the work is
in ``predict``, a pure function of the two feature frames and the settings, and the result tables
go to schema ``predictive`` in one transaction, so a failure anywhere leaves the previous run's
tables as they were. The dbt models in models/predictive read them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from orchestration.predictive import churn, evaluations, plots
from orchestration.predictive.clv import (
    BgNbdFit,
    GammaGammaFit,
    PredictiveInputError,
    discounted_clv,
    expected_average_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
)
from orchestration.predictive.features import (
    FEATURES_SCHEMA,
    FEATURES_TABLE,
    HOLDOUT_TABLE,
    PredictiveSettings,
    load_features,
)
from orchestration.warehouse import Warehouse

PREDICTIONS_SCHEMA = "predictive"
#: dbt selector of the models over the predictive tables, and whatever reads them.
PREDICTIVE_MODELS = "path:models/predictive+"
# Calibration-period frequencies from this one up share the last bar of the holdout plot.
HOLDOUT_FREQUENCY_CAP = 7


@dataclass(frozen=True)
class Predictions:
    """Everything one run computed: the tables to write and what the plots and summary show."""

    bgnbd: BgNbdFit
    gamma_gamma: GammaGammaFit
    churn_model: churn.ChurnModel
    calibration_start: date
    calibration_end: date
    holdout_start: date
    customer_clv: pd.DataFrame
    customer_churn: pd.DataFrame
    parameters: pd.DataFrame
    evaluation: pd.DataFrame
    holdout_by_frequency: pd.DataFrame
    # Both models beside their baselines, in the one evaluation contract (evaluations.py).
    model_evaluations: tuple[evaluations.Evaluation, ...]

    def tables(self) -> dict[str, pa.Table]:
        frames = {
            "customer_clv_predictions": self.customer_clv,
            "customer_churn_predictions": self.customer_churn,
            "clv_model_parameters": self.parameters,
            "churn_model_evaluations": self.evaluation,
            "clv_churn_evaluations": evaluations.frame(self.model_evaluations),
        }
        return {
            name: pa.Table.from_pandas(frame, preserve_index=False)
            for name, frame in frames.items()
        }


@dataclass(frozen=True)
class PredictiveResult:
    customers_scored: int
    bgnbd: BgNbdFit
    gamma_gamma: GammaGammaFit
    churn: churn.ChurnEvaluation
    model_version: str
    time_unit: str
    calibration_end: date
    total_clv: float
    plots: dict[str, Path]
    model_evaluations: tuple[evaluations.Evaluation, ...] = ()


def _bgnbd_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        frame["frequency"].to_numpy(float),
        frame["recency"].to_numpy(float),
        frame["t"].to_numpy(float),
    )


def holdout_by_frequency(
    frequency: np.ndarray, actual: np.ndarray, predicted: np.ndarray
) -> pd.DataFrame:
    """Mean actual and predicted holdout purchases per calibration frequency (the last row
    gathers HOLDOUT_FREQUENCY_CAP and more): how Fader, Hardie & Lee check a BG/NBD fit."""
    capped = np.minimum(frequency, HOLDOUT_FREQUENCY_CAP).astype(int)
    frame = pd.DataFrame({"frequency": capped, "actual": actual, "predicted": predicted})
    grouped = frame.groupby("frequency").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    grouped = grouped.reset_index()
    grouped["label"] = [
        f"{f}+" if f == HOLDOUT_FREQUENCY_CAP else str(f) for f in grouped["frequency"]
    ]
    return grouped


def _parameter_rows(
    bg: BgNbdFit,
    gg: GammaGammaFit,
    calibration_start: date,
    calibration_end: date,
    time_unit: str,
    fitted_at: datetime,
) -> pd.DataFrame:
    rows = [
        ("bg_nbd", name, getattr(bg, name), bg.log_likelihood, bg.n_customers)
        for name in ("r", "alpha", "a", "b")
    ] + [
        ("gamma_gamma", name, getattr(gg, name), gg.log_likelihood, gg.n_customers)
        for name in ("p", "q", "v")
    ]
    frame = pd.DataFrame(
        rows, columns=["model", "parameter", "value", "log_likelihood", "n_customers"]
    )
    frame["value"] = frame["value"].astype(float)
    frame["log_likelihood"] = frame["log_likelihood"].astype(float)
    frame["n_customers"] = frame["n_customers"].astype("int64")
    frame["calibration_start"] = calibration_start
    frame["calibration_end"] = calibration_end
    frame["time_unit"] = time_unit
    frame["fitted_at"] = pd.Timestamp(fitted_at)
    return frame


def _check_finite(fit: BgNbdFit, **outputs: np.ndarray) -> None:
    """Stop before writing rather than store NaN: dbt tests and BI tools would choke on it."""
    for name, values in outputs.items():
        bad = ~np.isfinite(values)
        if bad.any():
            raise PredictiveInputError(
                f"{name} is not a finite number for {int(bad.sum()):,} of {len(values):,} "
                f"customers under the BG/NBD fit r={fit.r:.4g}, alpha={fit.alpha:.4g}, "
                f"a={fit.a:.4g}, b={fit.b:.4g}; nothing was written"
            )


def predict(
    features: pd.DataFrame,
    holdout: pd.DataFrame,
    settings: PredictiveSettings,
    scored_at: datetime,
) -> Predictions:
    """Fit BG/NBD and Gamma-Gamma on ``features``, train the churn classifier on ``holdout``,
    and score every customer of ``features``. ``scored_at`` is naive UTC."""
    if features.empty:
        raise PredictiveInputError(
            f"{FEATURES_SCHEMA}.{FEATURES_TABLE} is empty: no customer has a completed order by "
            "the calibration end, so there is nothing to fit or score"
        )
    if holdout.empty:
        raise PredictiveInputError(
            f"{FEATURES_SCHEMA}.{HOLDOUT_TABLE} is empty: no customer had a completed order "
            f"{settings.churn_window_days} days (tessera_churn_window_days) before the "
            "calibration end, so the churn classifier has nothing to learn from"
        )
    calibration_end = features["calibration_end_date"].iloc[0]
    calibration_start = min(features["first_purchase_date"])
    holdout_start = holdout["holdout_start_date"].iloc[0]

    # CLV, fitted on the whole calibration period.
    frequency, recency, age = _bgnbd_inputs(features)
    monetary = features["monetary_value"].to_numpy(float)
    bg = fit_bgnbd(frequency, recency, age)
    gg = fit_gamma_gamma(frequency, monetary)
    alive = p_alive(bg, frequency, recency, age)
    expected = expected_purchases(bg, settings.horizon, frequency, recency, age)
    value = expected_average_value(gg, frequency, monetary)
    lifetime_value = discounted_clv(
        bg,
        gg,
        frequency,
        recency,
        age,
        monetary,
        settings.horizon,
        settings.discount_rate,
        settings.time_unit,
    )
    _check_finite(bg, p_alive=alive, expected_purchases=expected, discounted_clv=lifetime_value)
    clv = pd.DataFrame(
        {
            "customer_id": features["customer_id"].astype(str),
            "frequency": frequency.astype("int64"),
            "recency": recency,
            "t": age,
            "monetary_value": monetary,
            "p_alive": alive,
            "expected_purchases": expected,
            "expected_average_value": value,
            "discounted_clv": lifetime_value,
            "horizon": settings.horizon,
            "discount_rate": settings.discount_rate,
            "time_unit": settings.time_unit,
            "calibration_end_date": calibration_end,
            "scored_at": pd.Timestamp(scored_at),
        }
    )

    # The same model fitted up to the holdout start, to check its predictions against what
    # happened and to give the churn classifier its expected-activity features.
    h_frequency, h_recency, h_age = _bgnbd_inputs(holdout)
    bg_holdout = fit_bgnbd(h_frequency, h_recency, h_age)
    window = settings.churn_window
    holdout = holdout.assign(
        p_alive=p_alive(bg_holdout, h_frequency, h_recency, h_age),
        expected_purchases_in_window=expected_purchases(
            bg_holdout, window, h_frequency, h_recency, h_age
        ),
    )
    _check_finite(
        bg_holdout,
        holdout_p_alive=holdout["p_alive"].to_numpy(float),
        holdout_expected_purchases=holdout["expected_purchases_in_window"].to_numpy(float),
    )
    actual = holdout["holdout_purchase_days"].to_numpy(float)
    by_frequency = holdout_by_frequency(
        h_frequency, actual, holdout["expected_purchases_in_window"].to_numpy(float)
    )

    version = churn.model_version(
        {
            "holdout_start": holdout_start,
            "churn_window_days": settings.churn_window_days,
            "time_unit": settings.time_unit,
        }
    )
    model = churn.train(
        churn.feature_matrix(holdout, settings.days_per_unit),
        holdout[churn.LABEL].to_numpy(bool),
        version,
        holdout_start,
    )
    scoring = features.assign(
        p_alive=alive,
        expected_purchases_in_window=expected_purchases(bg, window, frequency, recency, age),
    )
    _check_finite(
        bg, expected_purchases_in_window=scoring["expected_purchases_in_window"].to_numpy(float)
    )
    probability = churn.churn_probability(
        model, churn.feature_matrix(scoring, settings.days_per_unit)
    )
    churn_scores = pd.DataFrame(
        {
            "customer_id": clv["customer_id"],
            "churn_probability": probability,
            "p_alive": alive,
            "model_version": version,
            "scored_at": pd.Timestamp(scored_at),
        }
    )
    e = model.evaluation
    evaluation = pd.DataFrame(
        {
            "model_version": [version],
            "training_cutoff_date": [holdout_start],
            "churn_window_days": [settings.churn_window_days],
            "train_customers": [e.train_customers],
            "test_customers": [e.test_customers],
            "churn_rate": [e.churn_rate],
            "auc": [e.auc],
            "brier_score": [e.brier_score],
            "calibration_error": [e.calibration_error],
            "trained_at": [pd.Timestamp(scored_at)],
        }
    ).astype({"churn_window_days": "int64", "train_customers": "int64", "test_customers": "int64"})
    return Predictions(
        bgnbd=bg,
        gamma_gamma=gg,
        churn_model=model,
        calibration_start=calibration_start,
        calibration_end=calibration_end,
        holdout_start=holdout_start,
        customer_clv=clv,
        customer_churn=churn_scores,
        parameters=_parameter_rows(
            bg, gg, calibration_start, calibration_end, settings.time_unit, scored_at
        ),
        evaluation=evaluation,
        holdout_by_frequency=by_frequency,
        model_evaluations=(
            *clv_evaluations(bg_holdout, holdout, window, holdout_start),
            *churn_evaluations(model, holdout_start),
        ),
    )


def clv_evaluations(
    fit: BgNbdFit, holdout: pd.DataFrame, window: float, holdout_start: date
) -> tuple[evaluations.Evaluation, ...]:
    """BG/NBD fitted up to the holdout start against each customer's historical purchase rate
    (repeat purchases over T, carried over the holdout): mean absolute error of the purchases
    predicted in the holdout, per customer and in total."""
    frequency, _, age = _bgnbd_inputs(holdout)
    actual = holdout["holdout_purchase_days"].to_numpy(float)
    predicted = holdout["expected_purchases_in_window"].to_numpy(float)
    historical = np.divide(frequency, age, out=np.zeros_like(frequency), where=age > 0) * window
    version = (
        "bg_nbd-"
        + churn.model_version({"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b}).split(
            "-", 1
        )[1]
    )
    common = dict(
        model="clv",
        model_version=version,
        baseline="historical_rate",
        higher_is_better=False,
        evaluated_on=holdout_start,
        n=len(actual),
    )
    total = max(float(actual.sum()), 1.0)
    return (
        evaluations.Evaluation(
            metric="holdout_purchases_mae",
            value=float(np.abs(predicted - actual).mean()),
            baseline_value=float(np.abs(historical - actual).mean()),
            **common,
        ),
        evaluations.Evaluation(
            metric="holdout_purchases_total_error",
            value=abs(float(predicted.sum()) - float(actual.sum())) / total,
            baseline_value=abs(float(historical.sum()) - float(actual.sum())) / total,
            **common,
        ),
    )


def churn_evaluations(
    model: churn.ChurnModel, holdout_start: date
) -> tuple[evaluations.Evaluation, ...]:
    """The churn classifier against the recency-only baseline on the same held-out customers."""
    e = model.evaluation
    common = dict(
        model="churn",
        model_version=model.version,
        baseline="recency_only",
        evaluated_on=holdout_start,
        n=e.test_customers,
    )
    return (
        evaluations.Evaluation(
            metric="auc",
            value=e.auc,
            baseline_value=e.baseline_auc,
            higher_is_better=True,
            **common,
        ),
        evaluations.Evaluation(
            metric="brier_score",
            value=e.brier_score,
            baseline_value=e.baseline_brier_score,
            higher_is_better=False,
            **common,
        ),
    )


def write_plots(predictions: Predictions, output_dir: Path) -> dict[str, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    return {
        "clv_distribution": plots.clv_distribution(
            predictions.customer_clv["discounted_clv"].to_numpy(float),
            output_dir / "clv_distribution.png",
        ),
        "holdout_purchases": plots.holdout_purchases(
            predictions.holdout_by_frequency,
            predictions.holdout_start,
            predictions.calibration_end,
            output_dir / "holdout_purchases.png",
        ),
        "churn_roc": plots.churn_roc(
            predictions.churn_model.evaluation, output_dir / "churn_roc.png"
        ),
    }


def run_predictive(
    warehouse: Warehouse,
    dbt_vars: Mapping[str, Any],
    output_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> PredictiveResult:
    """Read the feature marts, fit and score, replace the ``predictive`` tables, draw the plots.

    Raises PredictiveInputError (nothing written) when the data cannot support the models.
    """
    say = progress or (lambda _message: None)
    settings = PredictiveSettings.from_vars(dbt_vars)
    features, holdout = load_features(warehouse, settings)
    say(f"read {len(features):,} customers and {len(holdout):,} holdout customers")
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    predictions = predict(features, holdout, settings, scored_at)
    warehouse.write_tables(PREDICTIONS_SCHEMA, predictions.tables())
    say(f"wrote {', '.join(f'{PREDICTIONS_SCHEMA}.{name}' for name in predictions.tables())}")
    return PredictiveResult(
        customers_scored=len(predictions.customer_clv),
        bgnbd=predictions.bgnbd,
        gamma_gamma=predictions.gamma_gamma,
        churn=predictions.churn_model.evaluation,
        model_version=predictions.churn_model.version,
        time_unit=settings.time_unit,
        calibration_end=predictions.calibration_end,
        total_clv=float(predictions.customer_clv["discounted_clv"].sum()),
        plots=write_plots(predictions, output_dir),
        model_evaluations=predictions.model_evaluations,
    )


def format_summary(result: PredictiveResult) -> str:
    """A few lines on what the predictive step did, for the command line."""
    bg, gg, e = result.bgnbd, result.gamma_gamma, result.churn
    lines = [
        f"predictive: {result.customers_scored:,} customers scored, calibration to "
        f"{result.calibration_end}, time unit {result.time_unit}; total discounted CLV "
        f"{result.total_clv:,.0f}",
        f"  BG/NBD      r={bg.r:.4g} alpha={bg.alpha:.4g} a={bg.a:.4g} b={bg.b:.4g} "
        f"(log-likelihood {bg.log_likelihood:,.1f}, {bg.n_customers:,} customers)",
        f"  Gamma-Gamma p={gg.p:.4g} q={gg.q:.4g} v={gg.v:.4g} "
        f"(log-likelihood {gg.log_likelihood:,.1f}, {gg.n_customers:,} repeat buyers)",
        f"  churn       {result.model_version}: AUC {e.auc:.3f}, Brier {e.brier_score:.3f}, "
        f"calibration error {e.calibration_error:.3f} on {e.test_customers:,} held-out "
        f"customers (churn rate {e.churn_rate:.0%})",
        *(f"  plot        {path}" for path in result.plots.values()),
    ]
    return "\n".join(lines)
