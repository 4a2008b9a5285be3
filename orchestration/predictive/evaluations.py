"""One evaluation table for every model: each metric beside the same metric of a baseline.

The predictive steps write their rows in this contract (``predictive.clv_churn_evaluations``,
``predictive.propensity_evaluations``), the recommender's come from dbt
(``recommendation_evaluations``), and dbt model ``model_evaluations`` unions them. A model falls
below its baseline when a metric is worse than the baseline's (lower where higher is better,
higher where lower is better): the blocking asset checks of orchestration/predictive/assets.py
stop what reads such a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from datetime import date

import pandas as pd
import pyarrow as pa

COLUMNS = (
    "model",
    "model_version",
    "metric",
    "value",
    "baseline",
    "baseline_value",
    "higher_is_better",
    "evaluated_on",
    "n",
)


#: The table's column types, so that even an empty table has them (Postgres needs them).
ARROW_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("baseline", pa.string()),
        ("baseline_value", pa.float64()),
        ("higher_is_better", pa.bool_()),
        ("evaluated_on", pa.date32()),
        ("n", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Evaluation:
    """One metric of one model on held-out data, beside its baseline's."""

    model: str
    model_version: str
    metric: str
    value: float
    baseline: str
    baseline_value: float
    higher_is_better: bool
    # The last day the model saw: it was measured on what happened after.
    evaluated_on: date
    n: int

    @property
    def below_baseline(self) -> bool:
        if self.higher_is_better:
            return self.value < self.baseline_value
        return self.value > self.baseline_value

    def describe(self) -> str:
        return (
            f"{self.model} {self.metric} {self.value:.4f} vs {self.baseline} "
            f"{self.baseline_value:.4f} on {self.n:,}"
        )


def frame(rows: Iterable[Evaluation]) -> pd.DataFrame:
    """The rows as the table the warehouse stores (empty with the columns when none)."""
    table = pd.DataFrame([astuple(row) for row in rows], columns=list(COLUMNS))
    return table.astype(
        {
            "model": "object",
            "model_version": "object",
            "metric": "object",
            "value": "float64",
            "baseline": "object",
            "baseline_value": "float64",
            "higher_is_better": "bool",
            "n": "int64",
        }
    )


def arrow_table(rows: Iterable[Evaluation]) -> pa.Table:
    """The rows as an Arrow table of ``ARROW_SCHEMA``, empty or not."""
    return pa.Table.from_pandas(frame(rows), schema=ARROW_SCHEMA, preserve_index=False)


def from_frame(table: pd.DataFrame) -> list[Evaluation]:
    return [
        Evaluation(
            model=str(row.model),
            model_version=str(row.model_version),
            metric=str(row.metric),
            value=float(row.value),
            baseline=str(row.baseline),
            baseline_value=float(row.baseline_value),
            higher_is_better=bool(row.higher_is_better),
            evaluated_on=pd.Timestamp(row.evaluated_on).date(),
            n=int(row.n),
        )
        for row in table.itertuples(index=False)
    ]


def format_table(rows: Iterable[Evaluation]) -> str:
    """The evaluations as a fixed-width table, one line per metric, a mark where a model is
    below its baseline."""
    rows = list(rows)
    if not rows:
        return "  (no model evaluated)"
    header = ("model", "metric", "value", "baseline", "baseline value", "n", "")
    body = [
        (
            row.model,
            row.metric,
            f"{row.value:.4f}",
            row.baseline,
            f"{row.baseline_value:.4f}",
            f"{row.n:,}",
            "BELOW BASELINE" if row.below_baseline else "",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    right = {2, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join("  " + line(cells) for cells in (header, *body))
