"""PNG charts of a predictive run, for people who would rather look than read tables.

Figures are built with matplotlib's object API and rendered by the Agg backend: no pyplot, no
display, no global state, so this runs the same on a server, in Dagster and in tests.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestration.predictive.churn import ChurnEvaluation

DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def clv_distribution(clv: np.ndarray, path: Path) -> Path:
    """Histogram of discounted CLV on a log scale (it spans orders of magnitude), with the
    median and mean; customers worth (almost) nothing are counted in the title."""
    clv = clv[np.isfinite(clv)]
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.add_subplot()
    floor = 1.0
    shown = clv[clv >= floor]
    if len(shown):
        bins = np.geomspace(floor, max(float(shown.max()), floor * 10), 50)
        ax.hist(shown, bins=bins, color="#6c9a5b", edgecolor="white")
        ax.set_xscale("log")
        for value, label, style in (
            (float(np.median(clv)), "median", "--"),
            (float(np.mean(clv)), "mean", ":"),
        ):
            if value >= floor:
                ax.axvline(value, color="#333333", linestyle=style, label=f"{label} {value:,.0f}")
        ax.legend()
    ax.set_xlabel("discounted CLV over the horizon (currency units, log scale)")
    ax.set_ylabel("customers")
    ax.set_title(
        f"Customer lifetime value: {len(clv):,} customers, total {clv.sum():,.0f}; "
        f"{len(clv) - len(shown):,} below {floor:,.0f} not shown",
        fontsize=10,
    )
    return _save(figure, path)


def holdout_purchases(
    by_frequency: pd.DataFrame, holdout_start: date, holdout_end: date, path: Path
) -> Path:
    """Mean purchases in the holdout, actual against BG/NBD's prediction, per calibration
    frequency."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.add_subplot()
    positions = np.arange(len(by_frequency))
    labels = [
        f"{label}\nn={n:,}"
        for label, n in zip(by_frequency["label"], by_frequency["customers"], strict=True)
    ]
    ax.bar(positions - 0.2, by_frequency["actual"], 0.4, label="actual", color="#7aa6c2")
    ax.bar(positions + 0.2, by_frequency["predicted"], 0.4, label="BG/NBD", color="#c28f5c")
    ax.set_xticks(positions, labels)
    ax.set_xlabel("repeat purchases before the holdout (frequency)")
    ax.set_ylabel("mean purchase days in the holdout")
    ax.set_title(
        f"Predicted against actual purchases, holdout {holdout_start} to {holdout_end}",
        fontsize=10,
    )
    ax.legend()
    return _save(figure, path)


def churn_roc(evaluation: ChurnEvaluation, path: Path) -> Path:
    """ROC curve on held-out customers, beside the calibration (reliability) curve."""
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    roc, reliability = figure.subplots(1, 2)
    roc.plot(
        evaluation.false_positive_rate,
        evaluation.true_positive_rate,
        color="#9b6bb0",
        label=f"classifier, AUC {evaluation.auc:.3f}",
    )
    roc.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="chance")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.set_title(f"Churn ROC, {evaluation.test_customers:,} held-out customers", fontsize=10)
    roc.legend(loc="lower right")
    predicted = [p for p, _, _ in evaluation.calibration]
    observed = [o for _, o, _ in evaluation.calibration]
    reliability.plot([0, 1], [0, 1], color="#999999", linestyle="--", label="perfect")
    reliability.plot(predicted, observed, marker="o", color="#9b6bb0", label="classifier")
    reliability.set_xlabel("predicted churn probability")
    reliability.set_ylabel("observed churn rate")
    reliability.set_title(
        f"Calibration: mean error {evaluation.calibration_error:.3f}, "
        f"Brier {evaluation.brier_score:.3f}",
        fontsize=10,
    )
    reliability.legend(loc="upper left")
    return _save(figure, path)


def lift_chart(
    model: str, lift: tuple[float, ...], baseline: tuple[float, ...], path: Path
) -> Path:
    """Lift per score decile (highest scores first) of a propensity model beside its
    recency-only baseline: how many times the average rate each tenth of customers does it."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.add_subplot()
    deciles = np.arange(1, len(lift) + 1)
    ax.bar(deciles - 0.2, lift, width=0.4, color="#4c78a8", label="model")
    ax.bar(deciles + 0.2, baseline, width=0.4, color="#bbbbbb", label="recency only")
    ax.axhline(1.0, color="#555555", linewidth=1, linestyle="--")
    ax.set_xticks(deciles)
    ax.set_xlabel("score decile (1 = highest scores)")
    ax.set_ylabel("lift over the average rate")
    ax.set_title(f"{model}: lift by decile on held-out customers")
    ax.legend()
    return _save(figure, path)


def recommendation_chart(
    metrics: list[str], model: list[float], baseline: list[float], path: Path
) -> Path:
    """Precision, recall and hit rate at k of the recommender beside the popularity baseline,
    on the held-out period."""
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(metrics))
    ax.bar(x - 0.2, model, width=0.4, color="#4c78a8", label="item co-occurrence")
    ax.bar(x + 0.2, baseline, width=0.4, color="#bbbbbb", label="popularity")
    for i, (a, b) in enumerate(zip(model, baseline, strict=True)):
        ax.annotate(f"{a:.3f}", (i - 0.2, a), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{b:.3f}", (i + 0.2, b), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(metrics)
    ax.set_ylabel("share")
    ax.set_title("Recommendations on the held-out period")
    ax.legend()
    return _save(figure, path)
