"""Small hand-made source tables, for identity cases the generator does not isolate."""

from __future__ import annotations

from orchestration.warehouse import Warehouse

IDENTIFY_COLUMNS = ("id", "anonymous_id", "user_id", "email", "phone", "timestamp")


def _literal(value: str | None) -> str:
    return "null" if value is None else "'" + value.replace("'", "''") + "'"


def replace_rows(
    warehouse: Warehouse, table: str, columns: tuple[str, ...], rows: list[tuple[str | None, ...]]
) -> None:
    """Make raw.``table`` hold exactly ``rows`` (text columns ``columns``)."""
    names = ", ".join(f'"{name}"' for name in columns)
    statements = [
        "create schema if not exists raw",
        f"create table if not exists raw.{table} ("
        + ", ".join(f'"{name}" text' for name in columns)
        + ")",
        # Emptied, not dropped: on Postgres the staging views depend on the table.
        f"delete from raw.{table}",
    ]
    if rows:
        values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        statements.append(f"insert into raw.{table} ({names}) values {values}")
    warehouse.execute(statements)


def replace_identifies(warehouse: Warehouse, rows: list[tuple[str | None, ...]]) -> None:
    """Make raw.identifies hold exactly ``rows`` (columns IDENTIFY_COLUMNS)."""
    warehouse.execute(
        [
            "create schema if not exists raw",
            "create table if not exists raw.identifies (id text, anonymous_id text, user_id text, "
            'email text, phone text, first_name text, last_name text, "timestamp" text)',
        ]
    )
    replace_rows(warehouse, "identifies", IDENTIFY_COLUMNS, rows)


def append_identifies(warehouse: Warehouse, rows: list[tuple[str | None, ...]]) -> None:
    """Add ``rows`` (columns IDENTIFY_COLUMNS) to an existing raw.identifies."""
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    columns = ", ".join(f'"{name}"' for name in IDENTIFY_COLUMNS)
    warehouse.execute([f"insert into raw.identifies ({columns}) values {values}"])


ORDER_COLUMNS = ("order_id", "customer_ref", "email", "phone", "ordered_at", "total_amount",
                 "currency", "status", "channel")  # fmt: skip
CRM_COLUMNS = ("contact_id", "email", "phone", "first_name", "last_name", "company",
               "lifecycle_stage", "created_at", "updated_at")  # fmt: skip


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

# The same models without their data tests: for the builds of a test before its last one.
BUILD_IDENTITY_FAST = [*BUILD_IDENTITY[:-1], "test", "unit_test"]
