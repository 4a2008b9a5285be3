"""Small hand-made source tables, for identity cases the generator does not isolate."""

from __future__ import annotations

from orchestration.warehouse import Warehouse

IDENTIFY_COLUMNS = ("id", "anonymous_id", "user_id", "email", "phone", "timestamp")


def _literal(value: str | None) -> str:
    return "null" if value is None else "'" + value.replace("'", "''") + "'"


def replace_identifies(warehouse: Warehouse, rows: list[tuple[str | None, ...]]) -> None:
    """Make raw.identifies hold exactly ``rows`` (columns IDENTIFY_COLUMNS)."""
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    columns = ", ".join(f'"{name}"' for name in IDENTIFY_COLUMNS)
    warehouse.execute(
        [
            "create schema if not exists raw",
            "create table if not exists raw.identifies (id text, anonymous_id text, user_id text, "
            'email text, phone text, first_name text, last_name text, "timestamp" text)',
            # Emptied, not dropped: on Postgres the staging views depend on the table.
            "delete from raw.identifies",
            f"insert into raw.identifies ({columns}) values {values}",
        ]
    )


def append_identifies(warehouse: Warehouse, rows: list[tuple[str | None, ...]]) -> None:
    """Add ``rows`` (columns IDENTIFY_COLUMNS) to an existing raw.identifies."""
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    columns = ", ".join(f'"{name}"' for name in IDENTIFY_COLUMNS)
    warehouse.execute([f"insert into raw.identifies ({columns}) values {values}"])


# Builds the identity layer only, with the data tests that touch nothing else.
BUILD_IDENTITY = [
    "build",
    "--select",
    "+identity_map",
    "+identity_violations",
    "+identity_customer_map",
    "+identity_merge_log",
    "--indirect-selection",
    "cautious",
    "--exclude-resource-type",
    "unit_test",
]
