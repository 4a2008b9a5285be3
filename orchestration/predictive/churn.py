"""Churn: a classifier of "no purchase and no activity in the next window", from features.

Trained on a time split: features as of the start of the holdout period and, as the label,
whether the customer then did nothing for the holdout's ``tessera_churn_window_days`` days
(``marts.customer_features_holdout``). It is evaluated on customers it never saw (a stratified
share held out), then scores every customer from their features as of the calibration end.

Logistic regression on log-scaled features: counts and day spans are heavy-tailed, the score must
be a calibrated probability (risk tiers cut it at fixed values), and on thousands of customers it
ranks as well as boosted trees while staying cheap and stable from run to run. BG/NBD's
expected purchases in the window and P(alive) are features too: P(alive) alone is a poor churn
score (it is 1 for every one-time buyer), expected activity is a good one (reference notes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from orchestration.predictive.clv import PredictiveInputError

MODEL_KIND = "churn_logit"
LABEL = "is_churned"
# Behavioural features from the feature marts, plus the two BG/NBD ones the pipeline adds.
FEATURES = (
    "frequency",
    "recency_days",
    "t_days",
    "monetary_value",
    "first_purchase_value",
    "completed_revenue",
    "orders_count",
    "uncompleted_orders_count",
    "days_since_last_purchase",
    "purchase_days_in_window",
    "events_count",
    "support_tickets_count",
    "active_days_in_window",
    "days_since_last_activity",
    "p_alive",
    "expected_purchases_in_window",
)
HYPERPARAMETERS = {"C": 1.0, "max_iter": 2000}
TEST_SHARE = 0.3
SEED = 20_240_601
# Fewer customers of either class than this and the held-out AUC is noise (a handful of test
# customers per class), so the run stops instead of reporting it.
MIN_CUSTOMERS_PER_CLASS = 20
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ChurnEvaluation:
    """How the classifier did on the held-out customers."""

    auc: float
    brier_score: float
    # Mean |predicted - observed| churn rate over probability bins, weighted by customers.
    calibration_error: float
    churn_rate: float
    train_customers: int
    test_customers: int
    # (mean predicted, observed churn rate, customers) per non-empty probability bin.
    calibration: tuple[tuple[float, float, int], ...]
    # The ROC curve: false and true positive rates.
    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray
    # The recency-only baseline on the same held-out customers: a logistic regression on the
    # days since the customer's last activity.
    baseline_auc: float = float("nan")
    baseline_brier_score: float = float("nan")


@dataclass(frozen=True)
class ChurnModel:
    pipeline: Pipeline
    version: str
    evaluation: ChurnEvaluation


def feature_matrix(frame: pd.DataFrame, days_per_unit: float) -> np.ndarray:
    """The classifier's inputs: recency and T in days whatever the CLV time unit, nulls as 0.

    monetary_value is null for one-time buyers: 0, with frequency 0 beside it, says as much.
    """
    columns = {
        **{name: frame[name] for name in FEATURES if name in frame},
        "recency_days": frame["recency"] * days_per_unit,
        "t_days": frame["t"] * days_per_unit,
    }
    missing = [name for name in FEATURES if name not in columns]
    if missing:
        raise PredictiveInputError(f"churn features missing from the input: {', '.join(missing)}")
    matrix = np.column_stack([np.asarray(columns[name], dtype=float) for name in FEATURES])
    matrix = np.nan_to_num(matrix, nan=0.0)
    if (matrix < 0).any():
        bad = [FEATURES[i] for i in np.flatnonzero((matrix < 0).any(axis=0))]
        raise PredictiveInputError(f"negative churn features: {', '.join(bad)}")
    return matrix


def check_labels(labels: np.ndarray, holdout_start: object) -> None:
    churned = int(labels.sum())
    retained = len(labels) - churned
    if min(churned, retained) < MIN_CUSTOMERS_PER_CLASS:
        raise PredictiveInputError(
            f"the churn classifier needs at least {MIN_CUSTOMERS_PER_CLASS} customers who churned "
            f"and {MIN_CUSTOMERS_PER_CLASS} who did not in the holdout starting {holdout_start}; "
            f"found {churned} churned and {retained} retained among {len(labels)} customers with "
            "an order before it. More order history, or another tessera_churn_window_days, fixes "
            "this"
        )


def model_version(settings: dict[str, object]) -> str:
    """``churn_logit-<12 hex>``: the same features, hyperparameters and data window give the
    same version, so a changed version means a changed model."""
    spec = {"features": FEATURES, "hyperparameters": HYPERPARAMETERS, "seed": SEED, **settings}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    return f"{MODEL_KIND}-{digest[:12]}"


def new_classifier() -> Pipeline:
    return make_pipeline(
        FunctionTransformer(np.log1p),
        StandardScaler(),
        LogisticRegression(**HYPERPARAMETERS),
    )


def calibration_bins(
    labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[tuple[float, float, int], ...]:
    """(mean predicted, observed rate, customers) per equal-width probability bin, empty ones
    left out."""
    index = np.minimum((scores * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append((float(scores[mask].mean()), float(labels[mask].mean()), int(mask.sum())))
    return tuple(rows)


def calibration_error(calibration: Sequence[tuple[float, float, int]]) -> float:
    total = sum(n for _, _, n in calibration)
    return sum(abs(p - o) * n for p, o, n in calibration) / total


RECENCY_FEATURE = FEATURES.index("days_since_last_activity")


def train(
    matrix: np.ndarray, labels: np.ndarray, version: str, holdout_start: object = "?"
) -> ChurnModel:
    """Fit on a stratified share of the customers, evaluate on the rest, beside the
    recency-only baseline fitted on the same share."""
    labels = np.asarray(labels, dtype=int)
    check_labels(labels, holdout_start)
    x_train, x_test, y_train, y_test = train_test_split(
        matrix, labels, test_size=TEST_SHARE, random_state=SEED, stratify=labels
    )
    pipeline = new_classifier().fit(x_train, y_train)
    scores = pipeline.predict_proba(x_test)[:, 1]
    recency = [RECENCY_FEATURE]
    baseline = new_classifier().fit(x_train[:, recency], y_train)
    baseline_scores = baseline.predict_proba(x_test[:, recency])[:, 1]
    fpr, tpr, _ = roc_curve(y_test, scores)
    calibration = calibration_bins(y_test, scores)
    evaluation = ChurnEvaluation(
        auc=float(roc_auc_score(y_test, scores)),
        brier_score=float(brier_score_loss(y_test, scores)),
        calibration_error=calibration_error(calibration),
        churn_rate=float(labels.mean()),
        train_customers=len(y_train),
        test_customers=len(y_test),
        calibration=calibration,
        false_positive_rate=fpr,
        true_positive_rate=tpr,
        baseline_auc=float(roc_auc_score(y_test, baseline_scores)),
        baseline_brier_score=float(brier_score_loss(y_test, baseline_scores)),
    )
    return ChurnModel(pipeline=pipeline, version=version, evaluation=evaluation)


def churn_probability(model: ChurnModel, matrix: np.ndarray) -> np.ndarray:
    return model.pipeline.predict_proba(matrix)[:, 1]
