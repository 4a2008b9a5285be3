"""A query's rows as a DataFrame both adapters' drivers give alike, for the tests that recompute a
model in pandas."""

from __future__ import annotations

import pandas as pd

from orchestration.warehouse import Warehouse


def timed_frame(warehouse: Warehouse, sql: str) -> pd.DataFrame:
    """``warehouse.query_frame(sql)`` with every ``*_at`` column as pandas datetimes (psycopg
    gives Python datetimes, DuckDB numpy ones)."""
    frame = warehouse.query_frame(sql)
    for column in frame.columns:
        if column.endswith("_at"):
            frame[column] = pd.to_datetime(frame[column])
    return frame
