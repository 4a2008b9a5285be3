"""The file, table and webhook destinations driven by the sync engine: what ends up in the
file, the table and the receiver, with faults injected and with the sending process killed."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from emulators.base import Faults
from emulators.webhook import WebhookEmulator
from orchestration.activation.destinations import registry
from orchestration.activation.engine import run_sync
from tests.activation.sync_support import (
    Sleeps,
    apply_deliveries,
    members,
    small_webhook,
    spec,
    write_audience,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SECRET = "webhook-test-secret"


def _changed_audience(rows):
    """Rows 0-4 renamed, rows 5-9 gone, two members new: 5 changes, 5 removes, 2 adds."""
    changed = [dict(row) for row in rows[10:]]
    changed += [{**row, "first_name": f"Renamed{i}"} for i, row in enumerate(rows[:5])]
    return changed + members(2, start=len(rows))


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_the_file_destination_holds_exactly_the_audience_after_each_run(
    empty_duckdb_warehouse, tmp_path, file_format
):
    rows = members(30)
    path = tmp_path / f"out.{file_format}"
    sync = spec(
        destination="file", mode="mirror", options={"path": str(path), "format": file_format}
    )

    write_audience(empty_duckdb_warehouse, rows)
    run_sync(sync, empty_duckdb_warehouse, registry())
    changed = _changed_audience(rows)
    write_audience(empty_duckdb_warehouse, changed)
    result = run_sync(sync, empty_duckdb_warehouse, registry())

    if file_format == "csv":
        with path.open(newline="") as handle:
            written = list(csv.DictReader(handle))
    else:
        written = pq.read_table(path).to_pylist()
    assert result.plan.counts()["removes"] == 5
    assert [row["customer_id"] for row in written] == sorted(r["customer_id"] for r in changed)
    by_key = {row["customer_id"]: row for row in written}
    assert by_key["c0000"] == {
        "customer_id": "c0000",
        "email": "user0@mail.com",
        "firstname": "Renamed0",
    }
    assert set(written[0]) == {"customer_id", "email", "firstname"}


def test_the_table_destination_holds_exactly_the_audience_in_the_warehouse(warehouse):
    rows = members(30)
    sync = spec(destination="table", mode="mirror", options={"table": "vip_export"})

    write_audience(warehouse, rows)
    run_sync(sync, warehouse, registry())
    changed = _changed_audience(rows)
    write_audience(warehouse, changed)
    result = run_sync(sync, warehouse, registry())

    table = warehouse.query(
        "select customer_id, email, firstname from activation_exports.vip_export "
        "order by customer_id"
    )
    assert (result.status, result.succeeded) == ("succeeded", 12)
    assert table == sorted((row["customer_id"], row["email"], row["first_name"]) for row in changed)


def test_the_table_destination_in_update_mode_fails_keys_it_does_not_hold(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(3))
    run_sync(
        spec("seed", destination="table", options={"table": "t"}),
        empty_duckdb_warehouse,
        registry(),
    )
    write_audience(empty_duckdb_warehouse, members(5))

    result = run_sync(
        spec("upd", destination="table", mode="update", options={"table": "t"}),
        empty_duckdb_warehouse,
        registry(),
    )

    assert (result.succeeded, result.failed) == (3, 2)
    failed = empty_duckdb_warehouse.query(
        "select record_key, error from activation.sync_failed_rows order by record_key"
    )
    assert failed == [("c0003", "no record with this key"), ("c0004", "no record with this key")]


def test_webhook_batches_are_signed_and_carry_ids_keys_operations_and_fields(
    empty_duckdb_warehouse,
):
    write_audience(empty_duckdb_warehouse, members(3))
    with WebhookEmulator(token=SECRET) as receiver:
        env = {"TESSERA_WEBHOOK_URL": receiver.url, "TESSERA_WEBHOOK_SECRET": SECRET}
        result = run_sync(spec(destination="webhook"), empty_duckdb_warehouse, registry(), env=env)
        wrong = {**env, "TESSERA_WEBHOOK_SECRET": "not-the-secret"}
        write_audience(empty_duckdb_warehouse, members(4))
        refused = run_sync(
            spec(destination="webhook"), empty_duckdb_warehouse, registry(), env=wrong
        )

    assert (result.status, result.succeeded) == ("succeeded", 3)
    body = receiver.batches[0]
    assert body["sync"] == "test_sync"
    assert body["records"][0] == {
        "id": f"{body['batch_id']}:c0000",
        "key": "c0000",
        "operation": "add",
        "fields": {"email": "user0@mail.com", "firstname": "Name0"},
    }
    assert refused.status == "failed"
    assert "HTTP 401" in refused.error


def test_webhook_settings_missing_from_the_environment_are_named(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, members(1))

    result = run_sync(spec(destination="webhook"), empty_duckdb_warehouse, registry(), env={})

    assert result.status == "failed"
    assert result.error == "TESSERA_WEBHOOK_URL is not set"


def test_with_a_fifth_of_requests_faulty_the_receiver_ends_equal_to_the_audience(
    empty_duckdb_warehouse,
):
    rows = members(400)
    faults = Faults(
        rate_limit=0.05,
        server_error=0.05,
        timeout=0.05,
        timeout_mode="close",
        timeout_processed=True,
        partial_failure=0.05,
        retry_after=0.0,
        seed=7,
    )
    sync = spec(destination="webhook", mode="mirror")
    policy = Sleeps().policy()
    runs = []
    with WebhookEmulator(token=SECRET, faults=faults) as receiver:
        # Batches of 5: about 80 requests for the first run, so every kind of fault lands.
        destination = small_webhook(receiver.url, SECRET, batch_size=5)
        for audience in (rows, _changed_audience(rows)):
            write_audience(empty_duckdb_warehouse, audience)
            for _ in range(4):
                runs.append(
                    run_sync(
                        sync, empty_duckdb_warehouse, {}, destination=destination, policy=policy
                    )
                )
                if runs[-1].failed == 0:
                    break
        stored = list(receiver.records.values())
        injected = dict(receiver.injected_faults)

    assert apply_deliveries(stored) == {
        row["customer_id"]: {"email": row["email"], "firstname": row["first_name"]}
        for row in _changed_audience(rows)
    }
    # Each change stored once: one add per member ever, one change or remove per edit.
    operations = [(record["key"], record["operation"]) for record in stored]
    assert len(operations) == len(set(operations)) == 402 + 5 + 5
    whole_request = sum(injected.get(kind, 0) for kind in ("rate_limit", "server_error", "timeout"))
    assert whole_request >= 5
    assert injected["partial_failure"] >= 5
    assert runs[-1].failed == 0


def test_a_sync_killed_mid_run_resumes_with_nothing_lost_and_nothing_sent_twice(tmp_path):
    from orchestration.warehouse import Warehouse

    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "w.duckdb")
    rows = members(200)
    write_audience(warehouse, rows)
    code = (
        "import sys; from tests.activation.sync_support import webhook_sync_main; "
        "webhook_sync_main(*sys.argv[1:])"
    )
    with WebhookEmulator(token=SECRET) as receiver:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(warehouse.duckdb_path), receiver.url, SECRET],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for(lambda: len(receiver.batches) >= 5, process)
            # Every request from now on stalls unanswered and unapplied; once all four senders
            # wait on one, every earlier answer has been recorded, and the process dies.
            receiver.set_faults(timeout=1.0, timeout_seconds=60.0)
            _wait_for(lambda: receiver.injected_faults["timeout"] >= 4, process)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        applied_before = len(receiver.records)
        receiver.set_faults(timeout=0.0)

        destination = small_webhook(receiver.url, SECRET)
        resumed = run_sync(
            spec(destination="webhook", mode="mirror"), warehouse, {}, destination=destination
        )
        held = apply_deliveries(receiver.records.values())
        duplicates = receiver.duplicate_count

    # Every planned request the killed process had no answer for, the four it was waiting on
    # among them, is sent again under the same record ids; none of them had been applied.
    assert 50 <= applied_before <= 160
    assert resumed.plan.resends == resumed.succeeded == 200 - applied_before
    assert resumed.plan.counts()["adds"] == 0
    assert held == {
        row["customer_id"]: {"email": row["email"], "firstname": row["first_name"]} for row in rows
    }
    assert len(receiver.records) == 200
    assert duplicates == 0
    runs = warehouse.query("select status from activation.sync_runs order by started_at")
    assert runs == [("interrupted",), ("succeeded",)]


def _wait_for(condition, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the sync process ended early with code {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the sync process")
        time.sleep(0.01)


def test_tessera_sync_plans_sends_and_refuses_a_mass_removal_unless_forced(
    tmp_path, monkeypatch, capsys
):
    from orchestration.cli import main
    from orchestration.warehouse import Warehouse

    project = tmp_path / "project"
    (project / "models" / "audiences").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: sync_test\nvars:\n  tessera_sync_max_delete_fraction: 0.3\n"
    )
    output = tmp_path / "vip.csv"
    (project / "models" / "audiences" / "audience_sync_test.yml").write_text(
        "models:\n  - name: audience_sync_test\n    config:\n      meta:\n        tessera:\n"
        "          syncs:\n            - {name: vip_file, destination: file, mode: mirror, "
        f"key: customer_id, fields: {{email: email}}, options: {{path: '{output}'}}}}\n"
    )
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "w.duckdb")
    write_audience(warehouse, members(10))
    monkeypatch.setenv("TESSERA_PROJECT_DIR", str(project))
    monkeypatch.setenv("TESSERA_DUCKDB_PATH", str(warehouse.duckdb_path))
    monkeypatch.setenv("TESSERA_TARGET", "local")

    def rows_in_file() -> int:
        return len(output.read_text().splitlines()) - 1

    assert main(["sync", "--dry-run"]) == 0
    assert "dry run, nothing sent" in capsys.readouterr().out
    assert not output.exists()
    assert main(["sync"]) == 0
    assert "sync vip_file: succeeded; planned adds 10" in capsys.readouterr().out
    assert rows_in_file() == 10

    write_audience(warehouse, members(6))
    assert main(["sync"]) == 1
    assert "4 removals are 40% of the 10 records" in capsys.readouterr().out
    assert rows_in_file() == 10
    assert main(["sync", "--sync", "vip_file", "--force"]) == 0
    assert rows_in_file() == 6


def test_the_projects_file_and_table_syncs_are_valid_declarations():
    from orchestration.activation.config import load_syncs

    specs = load_syncs(
        REPO, registry(), select=lambda item: item.get("destination") in ("file", "table")
    )

    assert len(specs) >= 1
    assert {spec.destination for spec in specs} <= {"file", "table"}
