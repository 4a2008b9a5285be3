"""The churn classifier and the predictive step's pure parts, without a warehouse."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from orchestration.predictive import churn
from orchestration.predictive.clv import PredictiveInputError
from orchestration.predictive.features import PredictiveSettings
from orchestration.predictive.pipeline import holdout_by_frequency, predict
from orchestration.project import ConfigError, ProjectConfig

SETTINGS = PredictiveSettings(
    time_unit="week", calibration_end=None, horizon=52, discount_rate=0.1, churn_window_days=91
)


def _features(n: int, seed: int = 0) -> pd.DataFrame:
    """Customers whose churn depends on how long ago they last bought, plus noise."""
    rng = np.random.default_rng(seed)
    since = rng.integers(0, 300, n).astype(float)
    frequency = rng.poisson(2, n).astype(float)
    frame = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": rng.uniform(0, 20, n),
            "t": rng.uniform(20, 60, n),
            "monetary_value": np.where(frequency > 0, rng.gamma(4, 10, n), np.nan),
            "first_purchase_value": rng.gamma(4, 10, n),
            "completed_revenue": rng.gamma(4, 30, n),
            "orders_count": frequency + 1,
            "uncompleted_orders_count": rng.poisson(0.1, n).astype(float),
            "days_since_last_purchase": since,
            "purchase_days_in_window": (since < 90).astype(float),
            "events_count": np.zeros(n),
            "support_tickets_count": np.zeros(n),
            "active_days_in_window": (since < 90).astype(float),
            "days_since_last_activity": since,
            "p_alive": rng.uniform(0.2, 1, n),
            "expected_purchases_in_window": rng.uniform(0, 2, n),
        }
    )
    frame["is_churned"] = rng.random(n) < 1 / (1 + np.exp(-(since - 150) / 30))
    return frame


def test_feature_matrix_measures_recency_and_t_in_days_and_reads_null_as_zero() -> None:
    frame = _features(3)
    frame.loc[0, "monetary_value"] = np.nan
    matrix = churn.feature_matrix(frame, days_per_unit=7.0)
    columns = list(churn.FEATURES)
    assert matrix.shape == (3, len(columns))
    assert matrix[:, columns.index("recency_days")] == pytest.approx(frame["recency"] * 7)
    assert matrix[:, columns.index("t_days")] == pytest.approx(frame["t"] * 7)
    assert matrix[0, columns.index("monetary_value")] == 0.0


def test_feature_matrix_names_missing_features() -> None:
    with pytest.raises(PredictiveInputError, match="p_alive"):
        churn.feature_matrix(_features(3).drop(columns="p_alive"), days_per_unit=1.0)


def test_classifier_trained_on_a_time_split_ranks_held_out_customers() -> None:
    frame = _features(2_000)
    model = churn.train(
        churn.feature_matrix(frame, 7.0), frame["is_churned"].to_numpy(), "churn_logit-test"
    )
    e = model.evaluation
    assert e.test_customers == 600 and e.train_customers == 1_400
    # The label follows days since the last purchase through a logistic curve of scale 30 days
    # over 0-300 days: a classifier that learns it ranks held-out customers at about 0.9.
    assert e.auc > 0.85
    assert e.calibration_error < 0.08
    assert e.brier_score < 0.2
    assert e.false_positive_rate[0] == 0 and e.true_positive_rate[-1] == 1
    scores = churn.churn_probability(model, churn.feature_matrix(frame.head(5), 7.0))
    assert ((scores > 0) & (scores < 1)).all()


def test_too_few_churned_customers_stop_the_run_with_the_counts() -> None:
    labels = np.array([True] * 5 + [False] * 500)
    with pytest.raises(PredictiveInputError, match="found 5 churned and 500 retained"):
        churn.check_labels(labels, date(2026, 1, 1))


def test_calibration_bins_compare_predicted_and_observed_rates() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.05, 0.15, 0.95, 0.9, 0.5, 0.5])
    bins = churn.calibration_bins(labels, scores)
    assert bins == (
        (pytest.approx(0.05), 0.0, 1),
        (pytest.approx(0.15), 0.0, 1),
        (0.5, 0.5, 2),
        (pytest.approx(0.925), 1.0, 2),
    )
    # |0.05 - 0| + |0.15 - 0| + 0 + 2 * |0.925 - 1|, over 6 customers.
    assert churn.calibration_error(bins) == pytest.approx(0.35 / 6)


def test_model_version_changes_with_the_training_window_only() -> None:
    first = churn.model_version({"holdout_start": date(2026, 1, 1), "churn_window_days": 90})
    again = churn.model_version({"holdout_start": date(2026, 1, 1), "churn_window_days": 90})
    later = churn.model_version({"holdout_start": date(2026, 2, 1), "churn_window_days": 90})
    assert first == again != later
    assert first.startswith("churn_logit-") and len(first) == len("churn_logit-") + 12


def test_holdout_comparison_gathers_high_frequencies_in_one_bar() -> None:
    table = holdout_by_frequency(
        np.array([0, 0, 1, 7, 12]), np.array([0, 1, 2, 5, 7]), np.array([0.5, 0.5, 1, 4, 6])
    )
    assert table["label"].tolist() == ["0", "1", "7+"]
    assert table["customers"].tolist() == [2, 1, 2]
    assert table["actual"].tolist() == [0.5, 2.0, 6.0]
    assert table["predicted"].tolist() == [0.5, 1.0, 5.0]


def test_settings_default_to_dbt_project_vars_and_are_checked() -> None:
    defaults = PredictiveSettings.from_vars({}, ProjectConfig.load().defaults)
    assert defaults == PredictiveSettings(
        time_unit="week",
        calibration_end=None,
        horizon=52.0,
        discount_rate=0.1,
        churn_window_days=90,
    )
    custom = PredictiveSettings.from_vars(
        {"tessera_clv_time_unit": "day", "tessera_clv_calibration_end": "2026-03-01"},
        ProjectConfig.load().defaults,
    )
    assert (custom.time_unit, custom.calibration_end) == ("day", date(2026, 3, 1))
    assert custom.churn_window == 90.0
    for bad, message in (
        ({"tessera_clv_time_unit": "month"}, "day or week"),
        ({"tessera_clv_calibration_end": "March"}, "YYYY-MM-DD"),
        ({"tessera_churn_window_days": 0}, "whole number, 1 or more"),
        ({"tessera_clv_horizon": "52"}, "must be a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            PredictiveSettings.from_vars(bad, ProjectConfig.load().defaults)


def test_an_empty_feature_table_is_an_error_that_says_so() -> None:
    empty = _features(0)
    with pytest.raises(PredictiveInputError, match=r"customer_features is empty"):
        predict(empty, empty, SETTINGS, datetime(2026, 1, 1))
