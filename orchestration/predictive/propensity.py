"""Propensity: the probability that a customer does a declared thing in the next N days.

Models are declared in var ``tessera_propensity_models`` (dbt_project.yml), each with a target
(an event name of ``marts.customer_events``, or an order condition), a window in days and the
customers it scores (all, buyers, non-buyers, as of the cutoff). Each model is trained on a time
split: features as of a training cutoff (``as_of`` minus the window) and, as the label, whether
the target happens in the window after it; the model then scores every customer from features as
of ``as_of``. No feature reads an event after its cutoff: features and labels come from one query
per cutoff, features from events at or before it, labels from the window after it only.

Two classifiers are fitted on 80% of the training customers, logistic regression on log-scaled
features and histogram gradient boosting; the trees are kept only when their AUC on the other 20%
beats the regression's by 0.005 (the regression's explanations are exact). The kept model is
compared on customers neither saw (30% held out first) against a recency-only baseline (logistic
regression on the days since the customer last did the target): AUC, lift in the top decile and
Brier score.

Each score is explained by the three features that raise it most and the three that lower it
most, in log-odds against a typical customer (the training medians): exact terms of the logistic
regression, or for the boosted trees their partial dependence on the feature at the customer's
value against at the median.

A model without 100 positives and 100 negatives among its training customers, or without a
window of history before its training cutoff, is refused with an error naming it and its counts;
the other models still train.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from orchestration.predictive import plots
from orchestration.predictive.clv import PredictiveInputError
from orchestration.predictive.evaluations import Evaluation
from orchestration.predictive.evaluations import arrow_table as evaluations_table
from orchestration.predictive.pipeline import PREDICTIONS_SCHEMA
from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse, quote_identifier, quote_literal

EVENTS_SCHEMA = "marts"
EVENTS_TABLE = "customer_events"
MIN_POSITIVES = 100
MIN_NEGATIVES = 100
TEST_SHARE = 0.3
VALIDATION_SHARE = 0.2
SEED = 20_261_207
FACTORS = 3
# A factor moving the log-odds less than this (it would read +0.00) is not shown.
MIN_EFFECT = 0.005
# Partial dependence of the boosted trees: training rows averaged over, values per feature.
PROFILE_SAMPLE = 1_000
PROFILE_POINTS = 17
# Logistic regression is kept unless the boosted trees beat its validation AUC by this much:
# its explanations are exact and it moves less from run to run.
BOOSTING_MARGIN = 0.005
SCOPES = ("all", "buyers", "non_buyers")
ORDER_STATUSES = ("completed", "refunded", "cancelled")

# Feature -> how a reason names it. Counts are of events at or before the cutoff.
FEATURE_LABELS = {
    "tenure_days": "days since first seen",
    "days_since_last_event": "days since last activity",
    "days_since_last_order": "days since last order",
    "days_since_last_target": "days since last time",
    "events_7d": "events in the last 7 days",
    "events_30d": "events in the last 30 days",
    "events_90d": "events in the last 90 days",
    "page_views_30d": "page views in the last 30 days",
    "product_views_30d": "product views in the last 30 days",
    "cart_adds_30d": "cart adds in the last 30 days",
    "checkouts_30d": "checkouts started in the last 30 days",
    "orders_total": "orders",
    "orders_90d": "orders in the last 90 days",
    "revenue_total": "revenue",
    "revenue_90d": "revenue in the last 90 days",
    "tickets_total": "support tickets",
    "tickets_90d": "support tickets in the last 90 days",
    "targets_total": "times done before",
    "targets_90d": "times done in the last 90 days",
}
FEATURES = tuple(FEATURE_LABELS)


@dataclass(frozen=True)
class PropensityModelSpec:
    """One declared model: predict ``target`` within ``window_days`` for ``customers``."""

    name: str
    window_days: int
    event: str | None = None
    order_statuses: tuple[str, ...] = ()
    min_order_amount: float | None = None
    customers: str = "all"
    description: str = ""

    def target_sql(self, alias: str = "e") -> str:
        """SQL condition on a customer_events row: this model's target."""
        if self.event is not None:
            return f"{alias}.event_name = {quote_literal(self.event)}"
        statuses = ", ".join(quote_literal(status) for status in self.order_statuses)
        condition = f"{alias}.event_type = 'order' and {alias}.event_status in ({statuses})"
        if self.min_order_amount is not None:
            condition += f" and {alias}.revenue >= {float(self.min_order_amount)!r}"
        return condition

    def describe_target(self) -> str:
        if self.event is not None:
            return f"event {self.event!r}"
        text = f"an order ({', '.join(self.order_statuses)})"
        if self.min_order_amount is not None:
            text += f" of at least {self.min_order_amount:g}"
        return text


def parse_models(value: Any) -> tuple[PropensityModelSpec, ...]:
    """The declared models, checked: ValueError naming the model and the field otherwise."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("must be a list of models ({name, target, window_days, customers})")
    specs, names = [], set()
    for position, item in enumerate(value, start=1):
        where = f"model {position}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be a mapping")
        name = item.get("name")
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise ValueError(f"{where}: name must be a lowercase identifier, got {name!r}")
        where = f"model {name!r}"
        if name in names:
            raise ValueError(f"{where} is declared twice")
        names.add(name)
        unknown = set(item) - {"name", "target", "window_days", "customers", "description"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        window = item.get("window_days")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"{where}: window_days must be a whole number of days >= 1")
        customers = item.get("customers", "all")
        if customers not in SCOPES:
            raise ValueError(f"{where}: customers must be one of {', '.join(SCOPES)}")
        target = item.get("target")
        spec = dict(
            name=name,
            window_days=window,
            customers=customers,
            description=str(item.get("description") or ""),
        )
        if isinstance(target, Mapping) and set(target) == {"event"}:
            if not isinstance(target["event"], str) or not target["event"].strip():
                raise ValueError(f"{where}: target.event must be an event name")
            specs.append(PropensityModelSpec(**spec, event=target["event"]))
        elif isinstance(target, Mapping) and set(target) == {"order"}:
            order = target["order"] or {}
            if not isinstance(order, Mapping) or set(order) - {"status", "min_amount"}:
                raise ValueError(f"{where}: target.order takes status and min_amount")
            statuses = order.get("status", ["completed"])
            statuses = [statuses] if isinstance(statuses, str) else list(statuses)
            if not statuses or set(statuses) - set(ORDER_STATUSES):
                raise ValueError(
                    f"{where}: target.order.status must be among {', '.join(ORDER_STATUSES)}"
                )
            amount = order.get("min_amount")
            is_number = isinstance(amount, int | float) and not isinstance(amount, bool)
            if amount is not None and not is_number:
                raise ValueError(f"{where}: target.order.min_amount must be a number")
            specs.append(
                PropensityModelSpec(
                    **spec,
                    order_statuses=tuple(statuses),
                    min_order_amount=None if amount is None else float(amount),
                )
            )
        else:
            raise ValueError(
                f"{where}: target must be {{event: <event name>}} or "
                "{order: {status: [completed], min_amount: <number>}}"
            )
    return tuple(specs)


@dataclass(frozen=True)
class PropensitySettings:
    models: tuple[PropensityModelSpec, ...]
    as_of: datetime | None
    max_training_customers: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PropensitySettings:
        as_of = config["tessera_propensity_as_of"] or None
        if isinstance(as_of, str):
            as_of = datetime.fromisoformat(as_of)
        elif isinstance(as_of, date) and not isinstance(as_of, datetime):
            as_of = datetime.combine(as_of, datetime.min.time())
        if as_of is not None and as_of.tzinfo is not None:
            as_of = as_of.astimezone(UTC).replace(tzinfo=None)
        return cls(
            models=parse_models(config["tessera_propensity_models"]),
            as_of=as_of,
            max_training_customers=int(config["tessera_propensity_max_training_customers"]),
        )


# ---------------------------------------------------------------------------------------------
# Features


def _timestamp(value: datetime) -> str:
    return f"cast('{value:%Y-%m-%d %H:%M:%S}' as timestamp)"


def features_sql(specs: Sequence[PropensityModelSpec], cutoff: datetime, with_labels: bool) -> str:
    """One row per customer with an event at or before ``cutoff``: the features as of it and,
    ``with_labels``, per model whether its target happens in its window after the cutoff.

    Every feature aggregate is guarded by ``occurred_at <= cutoff``; only the label columns read
    later events, up to the longest window.
    """
    c = _timestamp(cutoff)
    since = {days: _timestamp(cutoff - timedelta(days=days)) for days in (7, 30, 90)}
    before = f"e.occurred_at <= {c}"

    def count(condition: str, days: int | None = None) -> str:
        window = f" and e.occurred_at > {since[days]}" if days else ""
        return f"sum(case when {before}{window} and {condition} then 1 else 0 end)"

    def amount(condition: str, days: int | None = None) -> str:
        window = f" and e.occurred_at > {since[days]}" if days else ""
        return f"sum(case when {before}{window} and {condition} then e.revenue else 0 end)"

    completed = "e.event_type = 'order' and e.event_status = 'completed'"
    page = "e.event_type = 'page'"
    ticket = "e.event_type = 'ticket'"
    anything = "1 = 1"

    def named(event: str) -> str:
        return f"e.event_name = {quote_literal(event)}"

    columns = [
        f"min(case when {before} then e.occurred_at end) as first_event_at",
        f"max(case when {before} then e.occurred_at end) as last_event_at",
        f"max(case when {before} and {completed} then e.occurred_at end) as last_order_at",
        f"{count(anything, 7)} as events_7d",
        f"{count(anything, 30)} as events_30d",
        f"{count(anything, 90)} as events_90d",
        f"{count(page, 30)} as page_views_30d",
        f"{count(named('Product Viewed'), 30)} as product_views_30d",
        f"{count(named('Product Added'), 30)} as cart_adds_30d",
        f"{count(named('Checkout Started'), 30)} as checkouts_30d",
        f"{count(completed)} as orders_total",
        f"{count(completed, 90)} as orders_90d",
        f"{amount(completed)} as revenue_total",
        f"{amount(completed, 90)} as revenue_90d",
        f"{count(ticket)} as tickets_total",
        f"{count(ticket, 90)} as tickets_90d",
    ]
    horizon = cutoff
    for index, spec in enumerate(specs):
        target = spec.target_sql()
        columns += [
            f"max(case when {before} and {target} then e.occurred_at end) "
            f"as last_target_at_{index}",
            f"{count(target)} as targets_total_{index}",
            f"{count(target, 90)} as targets_90d_{index}",
        ]
        if with_labels:
            end = cutoff + timedelta(days=spec.window_days)
            horizon = max(horizon, end)
            columns.append(
                f"max(case when e.occurred_at > {c} and e.occurred_at <= {_timestamp(end)} "
                f"and {target} then 1 else 0 end) as label_{index}"
            )
    table = f"{quote_identifier(EVENTS_SCHEMA)}.{quote_identifier(EVENTS_TABLE)}"
    select = ",\n    ".join(columns)
    return (
        f"select\n    e.customer_id,\n    {select}\n"
        f"from {table} as e\n"
        f"where e.customer_id is not null and e.occurred_at <= {_timestamp(horizon)}\n"
        "group by e.customer_id\n"
        f"having min(e.occurred_at) <= {c}"
    )


def _days(cutoff: datetime, stamps: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(stamps)
    return ((pd.Timestamp(cutoff) - stamps).dt.total_seconds() / 86_400).to_numpy(float)


def load_features(
    warehouse: Warehouse,
    specs: Sequence[PropensityModelSpec],
    cutoff: datetime,
    with_labels: bool,
) -> pd.DataFrame:
    """Features as of ``cutoff`` (and labels), sorted by customer_id; day spans in days."""
    frame = warehouse.query_frame(features_sql(specs, cutoff, with_labels))
    frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    tenure = _days(cutoff, frame["first_event_at"])
    frame["tenure_days"] = tenure
    frame["days_since_last_event"] = _days(cutoff, frame["last_event_at"])
    # Never ordered (or never did the target): as long ago as the customer is known, plus a day.
    frame["days_since_last_order"] = np.where(
        frame["last_order_at"].isna(), tenure + 1, _days(cutoff, frame["last_order_at"])
    )
    for index in range(len(specs)):
        column = frame[f"last_target_at_{index}"]
        frame[f"days_since_last_target_{index}"] = np.where(
            column.isna(), tenure + 1, _days(cutoff, column)
        )
    # The Postgres driver returns sums as Decimal.
    for column in frame.columns:
        if column != "customer_id" and not column.endswith("_at") and "_at_" not in column:
            frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame


def model_frame(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    """The feature columns of model ``index`` under their common names."""
    renamed = frame.rename(
        columns={
            f"days_since_last_target_{index}": "days_since_last_target",
            f"targets_total_{index}": "targets_total",
            f"targets_90d_{index}": "targets_90d",
        }
    )
    return renamed


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    matrix = frame.loc[:, list(FEATURES)].to_numpy(float)
    matrix = np.nan_to_num(matrix, nan=0.0)
    return np.maximum(matrix, 0.0)


def in_scope(frame: pd.DataFrame, spec: PropensityModelSpec) -> np.ndarray:
    if spec.customers == "buyers":
        return frame["orders_total"].to_numpy(float) > 0
    if spec.customers == "non_buyers":
        return frame["orders_total"].to_numpy(float) == 0
    return np.ones(len(frame), dtype=bool)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class PropensityEvaluation:
    """A model and its recency-only baseline on the held-out customers."""

    auc: float
    baseline_auc: float
    top_decile_lift: float
    baseline_top_decile_lift: float
    brier_score: float
    baseline_brier_score: float
    positive_rate: float
    train_customers: int
    test_customers: int
    # Lift by score decile (1 = highest), model and baseline: the lift chart.
    lift_by_decile: tuple[float, ...] = ()
    baseline_lift_by_decile: tuple[float, ...] = ()
    candidates: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PropensityModel:
    spec: PropensityModelSpec
    kind: str
    pipeline: Pipeline
    version: str
    cutoff: datetime
    reference: np.ndarray
    evaluation: PropensityEvaluation
    # The boosted trees' partial dependence per feature (grid, mean log-odds); empty for the
    # logistic regression, whose terms are exact.
    profiles: tuple[tuple[np.ndarray, np.ndarray], ...] = ()


def _logistic() -> Pipeline:
    return make_pipeline(
        FunctionTransformer(np.log1p),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000),
    )


def _boosting() -> Pipeline:
    return make_pipeline(
        HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.1,
            max_leaf_nodes=31,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=10,
            random_state=SEED,
        )
    )


CANDIDATES = {"logit": _logistic, "gbm": _boosting}


def lift_by_decile(labels: np.ndarray, scores: np.ndarray) -> tuple[float, ...]:
    """Positive rate per score decile (highest first) over the overall positive rate."""
    order = np.argsort(-scores, kind="stable")
    rate = labels.mean()
    return tuple(float(part.mean() / rate) for part in np.array_split(labels[order], 10))


def _recency_baseline(frame: pd.DataFrame) -> np.ndarray:
    days = frame["days_since_last_target"].to_numpy(float)
    never = (frame["targets_total"].to_numpy(float) == 0).astype(float)
    return np.column_stack([np.log1p(np.maximum(days, 0.0)), never])


def model_version(spec: PropensityModelSpec, kind: str, cutoff: datetime) -> str:
    """``<name>-<kind>-<12 hex>``: the declaration, features, model kind and training cutoff."""
    payload = {
        "spec": spec.__dict__,
        "features": FEATURES,
        "kind": kind,
        "cutoff": cutoff.isoformat(),
        "seed": SEED,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{spec.name}-{kind}-{digest[:12]}"


def check_training_data(
    spec: PropensityModelSpec, labels: np.ndarray, history_days: float, cutoff: datetime
) -> None:
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if history_days < spec.window_days:
        raise PredictiveInputError(
            f"propensity model {spec.name!r} needs at least {spec.window_days} days of history "
            f"before its training cutoff {cutoff:%Y-%m-%d} (its window): the events start "
            f"{max(history_days, 0):.0f} days before it"
        )
    if positives < MIN_POSITIVES or negatives < MIN_NEGATIVES:
        raise PredictiveInputError(
            f"propensity model {spec.name!r} needs at least {MIN_POSITIVES} customers who did "
            f"{spec.describe_target()} within {spec.window_days} days of {cutoff:%Y-%m-%d} and "
            f"{MIN_NEGATIVES} who did not; found {positives:,} positives and {negatives:,} "
            f"negatives among {len(labels):,} customers. More history or a longer window_days "
            "fixes this"
        )


def train(
    spec: PropensityModelSpec,
    frame: pd.DataFrame,
    labels: np.ndarray,
    cutoff: datetime,
    history_days: float,
    max_customers: int,
) -> PropensityModel:
    """Fit both candidates on a time-split training set, keep the better, evaluate it and the
    recency baseline on held-out customers."""
    labels = np.asarray(labels, dtype=int)
    check_training_data(spec, labels, history_days, cutoff)
    rows = np.arange(len(labels))
    if len(rows) > max_customers:
        rows, _ = train_test_split(
            rows, train_size=max_customers, random_state=SEED, stratify=labels
        )
        rows = np.sort(rows)
    x = feature_matrix(frame.iloc[rows])
    y = labels[rows]
    baseline_x = _recency_baseline(frame.iloc[rows])
    train_rows, test_rows = train_test_split(
        np.arange(len(y)), test_size=TEST_SHARE, random_state=SEED, stratify=y
    )
    fit_rows, check_rows = train_test_split(
        train_rows, test_size=VALIDATION_SHARE, random_state=SEED, stratify=y[train_rows]
    )
    candidates, fitted = {}, {}
    for kind, make in CANDIDATES.items():
        fitted[kind] = make().fit(x[fit_rows], y[fit_rows])
        candidates[kind] = float(
            roc_auc_score(y[check_rows], fitted[kind].predict_proba(x[check_rows])[:, 1])
        )
    kind = "gbm" if candidates["gbm"] > candidates["logit"] + BOOSTING_MARGIN else "logit"
    pipeline = fitted[kind]
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    baseline.fit(baseline_x[train_rows], y[train_rows])

    y_test = y[test_rows]
    scores = pipeline.predict_proba(x[test_rows])[:, 1]
    baseline_scores = baseline.predict_proba(baseline_x[test_rows])[:, 1]
    lift = lift_by_decile(y_test, scores)
    baseline_lift = lift_by_decile(y_test, baseline_scores)
    evaluation = PropensityEvaluation(
        auc=float(roc_auc_score(y_test, scores)),
        baseline_auc=float(roc_auc_score(y_test, baseline_scores)),
        top_decile_lift=lift[0],
        baseline_top_decile_lift=baseline_lift[0],
        brier_score=float(brier_score_loss(y_test, scores)),
        baseline_brier_score=float(brier_score_loss(y_test, baseline_scores)),
        positive_rate=float(y.mean()),
        train_customers=len(train_rows),
        test_customers=len(test_rows),
        lift_by_decile=lift,
        baseline_lift_by_decile=baseline_lift,
        candidates=candidates,
    )
    return PropensityModel(
        spec=spec,
        kind=kind,
        pipeline=pipeline,
        version=model_version(spec, kind, cutoff),
        cutoff=cutoff,
        reference=np.median(x[train_rows], axis=0),
        evaluation=evaluation,
        profiles=partial_dependence(pipeline, x[train_rows]) if kind == "gbm" else (),
    )


# ---------------------------------------------------------------------------------------------
# Scoring and explanations


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def contributions(model: PropensityModel, x: np.ndarray) -> np.ndarray:
    """Per customer and feature, how much the feature moves the log-odds from a typical customer
    (training medians): the model's own terms for logistic regression; for the boosted trees
    the model's partial dependence on the feature at the customer's value against at the median
    (``PropensityModel.profiles``)."""
    if model.kind == "logit":
        log, scaler, regression = (step for _, step in model.pipeline.steps)
        z = scaler.transform(log.transform(x))
        z_ref = scaler.transform(log.transform(model.reference[None, :]))
        return (z - z_ref) * regression.coef_[0]
    out = np.empty_like(x)
    for j, (grid, dependence) in enumerate(model.profiles):
        at = np.clip(np.searchsorted(grid, x[:, j], side="right") - 1, 0, len(grid) - 1)
        typical = np.clip(np.searchsorted(grid, model.reference[j], side="right") - 1, 0, None)
        out[:, j] = dependence[at] - dependence[typical]
    return out


def partial_dependence(
    pipeline: Pipeline, x: np.ndarray, sample: int = PROFILE_SAMPLE
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per feature, a grid of its values (quantiles of ``x``) and the model's mean log-odds over
    a sample of ``x`` with that feature set to each: one prediction per sample row and grid
    value, so explaining a million customers costs lookups, not a million predictions per
    feature."""
    rng = np.random.default_rng(SEED)
    rows = x[rng.choice(len(x), min(sample, len(x)), replace=False)]
    profiles = []
    for j in range(x.shape[1]):
        grid = np.unique(np.quantile(x[:, j], np.linspace(0, 1, PROFILE_POINTS)))
        stacked = np.repeat(rows[None, :, :], len(grid), axis=0)
        stacked[:, :, j] = grid[:, None]
        logits = _logit(pipeline.predict_proba(stacked.reshape(-1, x.shape[1]))[:, 1])
        profiles.append((grid, logits.reshape(len(grid), len(rows)).mean(axis=1)))
    return tuple(profiles)


def feature_labels(spec: PropensityModelSpec) -> list[str]:
    """How reasons name each feature, the target ones after the model's target."""
    target = spec.event or " or ".join(spec.order_statuses) + " order"
    named = {
        "days_since_last_target": f"days since last {target}",
        "targets_total": f"{target} count",
        "targets_90d": f"{target} count in the last 90 days",
    }
    return [named.get(name, FEATURE_LABELS[name]) for name in FEATURES]


def _texts(values: np.ndarray, pattern: str) -> np.ndarray:
    """``pattern % value`` for every value, formatting each distinct value once."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([pattern % value for value in distinct], dtype=object)[inverse]


def reasons(
    model: PropensityModel, x: np.ndarray, effects: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """'orders in the last 90 days: 3 (+0.84); ...' per customer: the (up to) three features
    raising the score most, and the three lowering it most. Vectorised: one text per distinct
    value, since a million customers share few of them."""
    labels = np.array([f"{label}: " for label in feature_labels(model.spec)], dtype=object)
    money = np.array([name.startswith("revenue") for name in FEATURES])
    order = np.argsort(-effects, axis=1, kind="stable")
    rows = np.arange(len(x))[:, None]

    def describe(columns: np.ndarray, keep: np.ndarray) -> np.ndarray:
        value = x[rows, columns]
        effect = np.round(effects[rows, columns], 2)
        text = np.where(
            money[columns], _texts(np.round(value, 2), "%.2f"), _texts(np.round(value), "%.0f")
        )
        parts = labels[columns] + text + " (" + _texts(effect, "%+.2f") + ")"
        result = np.full(len(x), "", dtype=object)
        for slot in range(columns.shape[1]):
            shown = keep[:, slot]
            joiner = np.where(result[shown] == "", "", "; ")
            result[shown] = result[shown] + joiner + parts[shown, slot]
        return result

    up = order[:, :FACTORS]
    down = order[:, ::-1][:, :FACTORS]
    return (
        describe(up, effects[rows, up] >= MIN_EFFECT),
        describe(down, effects[rows, down] <= -MIN_EFFECT),
    )


def score(model: PropensityModel, frame: pd.DataFrame, scored_at: datetime) -> pd.DataFrame:
    x = feature_matrix(frame)
    probability = model.pipeline.predict_proba(x)[:, 1]
    effects = contributions(model, x)
    raising, lowering = reasons(model, x, effects)
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "model": model.spec.name,
            "probability": probability,
            "factors_raising": raising,
            "factors_lowering": lowering,
            "model_version": model.version,
            "scored_at": pd.Timestamp(scored_at),
        }
    )


# ---------------------------------------------------------------------------------------------
# The step


PREDICTIONS_TABLE = "customer_propensity_predictions"
#: Column types of the scores, so that a run where every model was refused still writes them.
SCORES_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("model", pa.string()),
        ("probability", pa.float64()),
        ("factors_raising", pa.string()),
        ("factors_lowering", pa.string()),
        ("model_version", pa.string()),
        ("scored_at", pa.timestamp("us")),
    ]
)
EVALUATIONS_TABLE = "propensity_evaluations"
BASELINE = "recency_only"


@dataclass(frozen=True)
class PropensityResult:
    as_of: datetime
    models: tuple[PropensityModel, ...]
    # Declared models refused for their data: name -> the error.
    refused: Mapping[str, str]
    customers_scored: Mapping[str, int]
    evaluations: tuple[Evaluation, ...]
    plots: Mapping[str, Path]
    # Seconds spent on features (SQL), training, scoring (with explanations) and the write.
    seconds: Mapping[str, float] = field(default_factory=dict)


def evaluation_rows(model: PropensityModel) -> tuple[Evaluation, ...]:
    e = model.evaluation
    common = dict(
        model=model.spec.name,
        model_version=model.version,
        baseline=BASELINE,
        evaluated_on=model.cutoff.date(),
        n=e.test_customers,
    )
    return (
        Evaluation(
            metric="auc",
            value=e.auc,
            baseline_value=e.baseline_auc,
            higher_is_better=True,
            **common,
        ),
        Evaluation(
            metric="top_decile_lift",
            value=e.top_decile_lift,
            baseline_value=e.baseline_top_decile_lift,
            higher_is_better=True,
            **common,
        ),
        Evaluation(
            metric="brier_score",
            value=e.brier_score,
            baseline_value=e.baseline_brier_score,
            higher_is_better=False,
            **common,
        ),
    )


def event_span(warehouse: Warehouse) -> tuple[datetime, datetime]:
    """First and last event of the timeline; PredictiveInputError when it has none."""
    table = f"{quote_identifier(EVENTS_SCHEMA)}.{quote_identifier(EVENTS_TABLE)}"
    if not warehouse.relation_exists(EVENTS_SCHEMA, EVENTS_TABLE):
        raise PredictiveInputError(
            f"{EVENTS_SCHEMA}.{EVENTS_TABLE} does not exist in {warehouse.describe()}: run "
            "`dbt build` (or `tessera run`) before the propensity step"
        )
    first, last = warehouse.query(
        f"select min(occurred_at), max(occurred_at) from {table} where customer_id is not null"
    )[0]
    if first is None:
        raise PredictiveInputError(f"{EVENTS_SCHEMA}.{EVENTS_TABLE} holds no customer's event")
    return pd.Timestamp(first).to_pydatetime(), pd.Timestamp(last).to_pydatetime()


def predict_propensity(
    warehouse: Warehouse,
    settings: PropensitySettings,
    scored_at: datetime,
    progress: Callable[[str], None] | None = None,
    seconds: dict[str, float] | None = None,
) -> tuple[datetime, list[PropensityModel], dict[str, str], pd.DataFrame]:
    """Train every declared model that its data allows and score its customers as of
    ``settings.as_of`` (default: the last event). Returns (as_of, models, refused, scores);
    adds the seconds spent on features, training and scoring to ``seconds``."""
    seconds = seconds if seconds is not None else {}
    for step in ("features", "training", "scoring"):
        seconds.setdefault(step, 0.0)
    say = progress or (lambda _message: None)
    clock = time.perf_counter()
    first, last = event_span(warehouse)
    as_of = settings.as_of or last
    specs = settings.models
    scoring = load_features(warehouse, specs, as_of, with_labels=False)
    seconds["features"] += time.perf_counter() - clock
    say(f"propensity: {len(scoring):,} customers with events up to {as_of:%Y-%m-%d %H:%M}")
    models, refused, scores = [], {}, []
    for window in sorted({spec.window_days for spec in specs}):
        group = [spec for spec in specs if spec.window_days == window]
        cutoff = as_of - timedelta(days=window)
        clock = time.perf_counter()
        training = load_features(warehouse, group, cutoff, with_labels=True)
        seconds["features"] += time.perf_counter() - clock
        history = (cutoff - first).total_seconds() / 86_400
        for index, spec in enumerate(group):
            frame = model_frame(training, index)
            scope = in_scope(frame, spec)
            clock = time.perf_counter()
            try:
                model = train(
                    spec,
                    frame[scope].reset_index(drop=True),
                    frame.loc[scope, f"label_{index}"].to_numpy(),
                    cutoff,
                    history,
                    settings.max_training_customers,
                )
            except PredictiveInputError as exc:
                refused[spec.name] = str(exc)
                say(f"propensity: {exc}")
                continue
            seconds["training"] += time.perf_counter() - clock
            models.append(model)
            e = model.evaluation
            say(
                f"propensity: {spec.name} ({model.kind}) AUC {e.auc:.3f} vs {e.baseline_auc:.3f} "
                f"recency-only on {e.test_customers:,} held-out customers"
            )
            position = specs.index(spec)
            target = model_frame(scoring, position)
            clock = time.perf_counter()
            scores.append(score(model, target[in_scope(target, spec)], scored_at))
            seconds["scoring"] += time.perf_counter() - clock
    columns = [
        "customer_id",
        "model",
        "probability",
        "factors_raising",
        "factors_lowering",
        "model_version",
        "scored_at",
    ]
    table = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=columns)
    table = table.astype({"customer_id": "object", "model": "object", "probability": "float64"})
    table["scored_at"] = pd.to_datetime(table["scored_at"])
    return as_of, models, refused, table


def run_propensity(
    warehouse: Warehouse,
    dbt_vars: Mapping[str, Any],
    output_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> PropensityResult:
    """Train, evaluate and score the declared propensity models; replace the two propensity
    tables of schema predictive in one transaction; draw each model's lift chart."""
    settings = PropensitySettings.from_config(ProjectConfig.load(dbt_vars))
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    seconds: dict[str, float] = {}
    as_of, models, refused, table = predict_propensity(
        warehouse, settings, scored_at, progress, seconds
    )
    rows = tuple(row for model in models for row in evaluation_rows(model))
    clock = time.perf_counter()
    warehouse.write_tables(
        PREDICTIONS_SCHEMA,
        {
            PREDICTIONS_TABLE: pa.Table.from_pandas(
                table, schema=SCORES_SCHEMA, preserve_index=False
            ),
            EVALUATIONS_TABLE: evaluations_table(rows),
        },
    )
    seconds["write"] = time.perf_counter() - clock
    output_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        model.spec.name: plots.lift_chart(
            model.spec.name,
            model.evaluation.lift_by_decile,
            model.evaluation.baseline_lift_by_decile,
            output_dir / f"propensity_lift_{model.spec.name}.png",
        )
        for model in models
    }
    counts = table.groupby("model").size().to_dict() if len(table) else {}
    return PropensityResult(
        as_of=as_of,
        models=tuple(models),
        refused=refused,
        customers_scored={model.spec.name: int(counts.get(model.spec.name, 0)) for model in models},
        evaluations=rows,
        plots=charts,
        seconds={step: round(value, 3) for step, value in seconds.items()},
    )


def format_summary(result: PropensityResult) -> str:
    lines = [f"propensity: as of {result.as_of:%Y-%m-%d %H:%M}"]
    for model in result.models:
        e = model.evaluation
        lines.append(
            f"  {model.spec.name:<24} {model.kind}: AUC {e.auc:.3f} (recency-only "
            f"{e.baseline_auc:.3f}), top-decile lift {e.top_decile_lift:.2f} "
            f"({e.baseline_top_decile_lift:.2f}), Brier {e.brier_score:.4f} "
            f"({e.baseline_brier_score:.4f}); {result.customers_scored[model.spec.name]:,} "
            "customers scored"
        )
    for name, reason in result.refused.items():
        lines.append(f"  {name:<24} not trained: {reason}")
    return "\n".join(lines)
