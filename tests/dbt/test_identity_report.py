"""`tessera identity report` and the identity_health check's metadata, on planted people."""

from __future__ import annotations

import re

import pytest

from orchestration.cli import main
from orchestration.dbt_project import run_dbt
from orchestration.identity.overrides import Override, write_override
from orchestration.identity.report import format_identity_report, identity_report
from orchestration.quality.identity_health import (
    IdentityRelations,
    identity_health_result,
    measure_identity_health,
)
from orchestration.warehouse import Warehouse
from tests.dbt.identity_people import many_addresses, placeholder_phone
from tests.dbt.raw_rows import BUILD_IDENTITY, BUILD_IDENTITY_FAST

pytestmark = pytest.mark.integration


def test_the_report_counts_customers_blocked_identifiers_and_splits(
    empty_warehouse: Warehouse, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    people = many_addresses()
    shop = placeholder_phone(5)
    people.orders += shop.orders
    people.write(empty_warehouse)
    run_dbt(BUILD_IDENTITY_FAST, empty_warehouse, quiet=True)
    maya = empty_warehouse.query(
        "select customer_id from identity.identity_customer_map "
        "where identifier_value = 'user-maya'"
    )[0][0]
    write_override(
        empty_warehouse,
        Override("never_link", "crm_contact_id", "crm-maya-4", "user_id", "user-maya", "kim",
                 "test split"),
    )  # fmt: skip
    run_dbt(BUILD_IDENTITY, empty_warehouse, quiet=True)

    report = identity_report(empty_warehouse)
    # The never_link cuts crm-maya-4 loose: its email and phone are as near to maya's login, the
    # stronger end, so they stay. Maya (18), that contact (1), noah (5), five shoppers (2 each).
    assert report.customers == 8
    assert dict(report.histogram) == {
        "1": 1, "2": 5, "3": 0, "4-5": 1, "6-10": 0, "11-20": 1, "21-50": 0, "51-100": 0,
        "101+": 0,
    }  # fmt: skip
    assert report.identifiers == 18 + 1 + 5 + 2 * 5
    assert report.largest[0] == (
        maya, 18,
        "email 6, crm_contact_id 4, anonymous_id 3, phone 3, shop_customer_ref 1, user_id 1",
    )  # fmt: skip
    assert report.blocked == [("shared by separate people", "phone", 1)]
    # One run moved identifiers: the split.
    assert [run[1:] for run in report.runs] == [(0, 1, 0)]

    text = format_identity_report(report)
    assert "identity (identity): 8 customers, 34 linkable identifiers" in text
    assert re.search(r"^  shared by separate people +phone +1$", text, re.MULTILINE)

    health = measure_identity_health(
        empty_warehouse,
        IdentityRelations(
            "identity.identity_customer_map",
            "identity.identity_customer_registry",
            "identity.identity_merge_log",
        ),
    )
    result = identity_health_result(health, 250, report.metadata())
    assert result.passed
    assert "| 11-20 | 1 |" in result.metadata["identifiers_per_customer"].value
    assert "| shared by separate people | phone | 1 |" in (
        result.metadata["blocked_identifiers_by_reason"].value
    )

    # The command prints the same report.
    monkeypatch.setenv("TESSERA_DUCKDB_PATH", str(empty_warehouse.duckdb_path or ""))
    if empty_warehouse.duckdb_path is not None:
        assert main(["identity", "report", "--target", "local"]) == 0
        assert capsys.readouterr().out.strip() == text
