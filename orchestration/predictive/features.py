"""What the predictive step learns from: the settings (dbt vars) and the two feature marts.

``marts.customer_features`` holds every customer as of the calibration end, the input of the
CLV fits and of churn scoring; ``marts.customer_features_holdout`` holds them as of the start of
the holdout (the last ``tessera_churn_window_days`` days of calibration), with what they did in
it: the churn classifier trains on it and the BG/NBD fit is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from orchestration.predictive.clv import DAYS_PER_TIME_UNIT, PredictiveInputError
from orchestration.project import ProjectConfig
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
        """From overrides ``dbt_vars`` of the project's vars (or of ``defaults``), checked by
        the project configuration (orchestration/project.py)."""
        if defaults is None:
            config = ProjectConfig.load(dbt_vars)
        else:
            config = ProjectConfig(defaults=defaults, overrides=dict(dbt_vars))
        return cls.from_config(config)

    @classmethod
    def from_config(cls, config: ProjectConfig) -> PredictiveSettings:
        return cls(
            time_unit=config["tessera_clv_time_unit"],
            calibration_end=config["tessera_clv_calibration_end"],
            horizon=config["tessera_clv_horizon"],
            discount_rate=config["tessera_clv_discount_rate"],
            churn_window_days=config["tessera_churn_window_days"],
        )


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
