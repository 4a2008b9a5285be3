"""What the predictive step learns from: the settings (dbt vars) and the two feature marts.

``marts.customer_features`` holds every customer as of the calibration end, the input of the
CLV fits and of churn scoring; ``marts.customer_features_holdout`` holds them as of the start of
the holdout (the last ``tessera_churn_window_days`` days of calibration), with what they did in
it: the churn classifier trains on it and the BG/NBD fit is checked against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import yaml

from orchestration.dbt_project import project_dir
from orchestration.predictive.clv import DAYS_PER_TIME_UNIT, PredictiveInputError
from orchestration.warehouse import Warehouse

FEATURES_SCHEMA = "marts"
FEATURES_TABLE = "customer_features"
HOLDOUT_TABLE = "customer_features_holdout"

# Numeric columns both marts share; the Postgres driver returns some as Decimal or int.
NUMERIC_COLUMNS = (
    "frequency",
    "recency",
    "t",
    "monetary_value",
    "purchase_days_count",
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
)
HOLDOUT_COLUMNS = ("holdout_purchase_days", "holdout_active_days")


@dataclass(frozen=True)
class PredictiveSettings:
    """The predictive dbt vars (dbt_project.yml, overridden by ``--vars``), checked."""

    time_unit: str
    calibration_end: date | None
    horizon: float
    discount_rate: float
    churn_window_days: int

    @property
    def days_per_unit(self) -> float:
        return DAYS_PER_TIME_UNIT[self.time_unit]

    @property
    def churn_window(self) -> float:
        """The churn window in time units, the span BG/NBD predicts purchases over."""
        return self.churn_window_days / self.days_per_unit

    @classmethod
    def from_vars(
        cls, dbt_vars: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
    ) -> PredictiveSettings:
        merged = {**(project_vars() if defaults is None else defaults), **dbt_vars}
        unit = merged.get("tessera_clv_time_unit")
        if unit not in DAYS_PER_TIME_UNIT:
            raise PredictiveInputError(f"tessera_clv_time_unit must be day or week, got {unit!r}")
        end = merged.get("tessera_clv_calibration_end")
        if end not in (None, "") and not isinstance(end, date):
            try:
                end = date.fromisoformat(str(end))
            except ValueError:
                raise PredictiveInputError(
                    f"tessera_clv_calibration_end must be a date 'YYYY-MM-DD' or null, got {end!r}"
                ) from None
        horizon = _number(merged, "tessera_clv_horizon")
        if horizon <= 0:
            raise PredictiveInputError(f"tessera_clv_horizon must be positive, got {horizon}")
        rate = _number(merged, "tessera_clv_discount_rate")
        if rate < 0:
            raise PredictiveInputError(f"tessera_clv_discount_rate must be 0 or more, got {rate}")
        window = _number(merged, "tessera_churn_window_days")
        if window < 1 or window != int(window):
            raise PredictiveInputError(
                f"tessera_churn_window_days must be a whole number of days, 1 or more, got {window}"
            )
        return cls(
            time_unit=unit,
            calibration_end=end or None,
            horizon=horizon,
            discount_rate=rate,
            churn_window_days=int(window),
        )


def _number(values: Mapping[str, Any], name: str) -> float:
    value = values.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PredictiveInputError(f"{name} must be a number, got {value!r}")
    return float(value)


def project_vars() -> dict[str, Any]:
    """The vars of dbt_project.yml: the defaults ``--vars`` override, as dbt sees them."""
    with open(project_dir() / "dbt_project.yml", encoding="utf-8") as handle:
        return dict(yaml.safe_load(handle).get("vars") or {})


def read_table(warehouse: Warehouse, schema: str, table: str) -> pd.DataFrame:
    """A whole table as a DataFrame, on either adapter."""
    if not warehouse.relation_exists(schema, table):
        raise PredictiveInputError(
            f"{schema}.{table} does not exist in {warehouse.describe()}: run `dbt build` "
            "(or `tessera run`) before the predictive step"
        )
    return warehouse.read_frame(schema, table)


def prepare(frame: pd.DataFrame, numeric: tuple[str, ...]) -> pd.DataFrame:
    """Numbers as floats (NaN for null) and dates as ``date``, whatever the driver returned."""
    frame = frame.copy()
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
    for column in frame.columns:
        if column.endswith("_date"):
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def load_features(
    warehouse: Warehouse, settings: PredictiveSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(customer_features, customer_features_holdout), checked against ``settings``.

    The marts are built by dbt and the fits run here: if the two were run with different vars,
    the fit would describe other data than the vars say, so that stops here.
    """
    features = prepare(read_table(warehouse, FEATURES_SCHEMA, FEATURES_TABLE), NUMERIC_COLUMNS)
    holdout = prepare(
        read_table(warehouse, FEATURES_SCHEMA, HOLDOUT_TABLE), NUMERIC_COLUMNS + HOLDOUT_COLUMNS
    )
    rebuild = "rebuild it with `dbt build` and the same --vars as this run"
    for name, frame in ((FEATURES_TABLE, features), (HOLDOUT_TABLE, holdout)):
        units = set(frame["time_unit"])
        if units - {settings.time_unit}:
            raise PredictiveInputError(
                f"{FEATURES_SCHEMA}.{name} is in time unit {', '.join(sorted(units))}, "
                f"this run in {settings.time_unit}: {rebuild}"
            )
    if settings.calibration_end is not None and len(features):
        built = set(features["calibration_end_date"])
        if built != {settings.calibration_end}:
            raise PredictiveInputError(
                f"{FEATURES_SCHEMA}.{FEATURES_TABLE} ends its calibration on "
                f"{', '.join(map(str, sorted(built)))}, this run on {settings.calibration_end}: "
                f"{rebuild}"
            )
    if len(holdout):
        spans = {
            (end - start).days
            for start, end in zip(
                holdout["holdout_start_date"], holdout["holdout_end_date"], strict=True
            )
        }
        if spans != {settings.churn_window_days}:
            raise PredictiveInputError(
                f"{FEATURES_SCHEMA}.{HOLDOUT_TABLE} has a holdout of "
                f"{', '.join(map(str, sorted(spans)))} days, this run a churn window of "
                f"{settings.churn_window_days}: {rebuild}"
            )
    return features, holdout
