"""`tessera privacy report`: consent coverage per purpose and where deletion requests stand."""

from __future__ import annotations

import pytest

from orchestration.activation.state import StateStore
from orchestration.reports import format_privacy_report, privacy_report
from orchestration.warehouse import Warehouse

pytestmark = pytest.mark.integration


def test_privacy_report_counts_consent_per_purpose_and_erased_customers(
    warehouse: Warehouse,
) -> None:
    report = privacy_report(warehouse)
    assert set(report.consented) == {"advertising", "analytics", "email_marketing"}
    customers = warehouse.query("select count(*) from marts.customers")[0][0]
    assert report.customers == customers > 1_000
    for purpose, n in report.consented.items():
        granted = warehouse.query(
            "select count(*) from marts.customers as customers "
            f"where coalesce(customers.has_consent_{purpose}, false) = true"
        )[0][0]
        assert n == granted
        assert 0 < n < customers
    erased = warehouse.query("select count(distinct customer_id) from marts.customer_erasures")
    assert report.erased_customers == erased[0][0] > 0
    assert report.pending == 0
    text = format_privacy_report(report)
    assert f"consent coverage of {customers:,} customers" in text
    assert "pending deletions: 0" in text


def test_a_late_deletion_request_and_an_erased_customer_still_in_a_destination_are_pending(
    warehouse: Warehouse,
) -> None:
    erased_customer = warehouse.query("select min(customer_id) from marts.customer_erasures")[0][0]
    with StateStore.open(warehouse) as store:
        store.ensure_tables()
        store.execute(
            "insert into activation.sync_state (sync_name, record_key, customer_id, status, "
            "attempts, updated_at, last_run_id) values "
            "('privacy_probe', ?, ?, 'synced', 0, current_timestamp, 'run-1')",
            [erased_customer, erased_customer],
        )
    warehouse.execute(
        [
            "insert into raw.deletion_requests (subject_type, subject_value, requested_at) "
            "values ('email', 'late.request@mail.com', '2026-11-01T00:00:00Z')"
        ]
    )
    try:
        report = privacy_report(warehouse)
    finally:
        warehouse.execute(
            [
                "delete from raw.deletion_requests where subject_value = 'late.request@mail.com'",
                "delete from activation.sync_state where sync_name = 'privacy_probe'",
            ]
        )
    assert report.received_since_build == 1
    assert report.still_in_destinations == {"privacy_probe": 1}
    assert report.still_in_marts == 0
    assert report.pending == 2
    assert "still held by sync privacy_probe (removed by its next run): 1" in (
        format_privacy_report(report)
    )
