"""Sync engine benchmark; prints one JSON document.

- ``diff``: the plan of a mirror sync of a 1,000,000-member audience whose state says every
  member was sent, after 1% of it changed (5,000 changed emails, 2,500 members gone, 2,500 new),
  on DuckDB. Target: under 2 s.
- ``webhook``: a first sync of 20,000 members to the webhook emulator (its own process, on
  127.0.0.1) with the destination's own batch size and concurrency: rows per second, with every
  request signed and every batch's outcome written to the state as it arrives.

Run: ``.venv/bin/python bench/sync.py`` (``make bench`` runs it).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestration.activation.config import SyncSpec
from orchestration.activation.destinations.webhook import WebhookConfig, WebhookDestination
from orchestration.activation.engine import make_plan, plan_sql, run_sync
from orchestration.activation.state import StateStore
from orchestration.warehouse import Warehouse

MEMBERS = 1_000_000
CHANGED, GONE, NEW = 5_000, 2_500, 2_500
WEBHOOK_MEMBERS = 20_000
SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parents[1]


def _spec(name: str, destination: str) -> SyncSpec:
    return SyncSpec(
        name=name,
        audience="audience_bench",
        destination=destination,
        mode="mirror",
        key="customer_id",
        fields={"email": "email", "first_name": "first_name", "last_name": "last_name"},
    )


def _audience(store: StateStore, members: int) -> None:
    store.execute("create schema if not exists audiences")
    store.execute(
        f"""
        create or replace table audiences.audience_bench as
        select
            'c' || lpad(cast(i as varchar), 7, '0') as customer_id,
            'user' || i || '@mail.com' as email,
            'First' || (i % 5000) as first_name,
            'Last' || (i % 7919) as last_name,
            true as has_consent_email_marketing
        from range({members}) as numbers(i)
        """
    )


def bench_diff(folder: Path) -> dict[str, object]:
    warehouse = Warehouse(target="local", duckdb_path=folder / "diff.duckdb")
    spec = _spec("bench_diff", "webhook")
    with StateStore.open(warehouse) as store:
        store.ensure_tables()
        _audience(store, MEMBERS)
        # The state of a run that sent every member: the same fingerprints the plan computes.
        started = time.perf_counter()
        fingerprints = plan_sql(spec, None, False).split("held as")[0] + "select 1"
        store.execute(
            f"""
            insert into activation.sync_state (
                sync_name, record_key, customer_id, status, fingerprint, sent_fields, attempts,
                updated_at, last_run_id
            )
            {fingerprints.replace("select 1", "")}
            select 'bench_diff', record_key, customer_id, 'synced', fingerprint,
                '{{}}', 0, now(), 'bench'
            from source
            """
        )
        seeded = time.perf_counter() - started
        store.execute(
            f"update audiences.audience_bench set email = 'changed' || email "
            f"where customer_id < 'c{CHANGED:07d}'"
        )
        store.execute(
            f"delete from audiences.audience_bench where customer_id >= 'c{MEMBERS - GONE:07d}'"
        )
        store.execute(
            f"""
            insert into audiences.audience_bench
            select 'n' || i, 'new' || i || '@mail.com', 'New', 'Member', true
            from range({NEW}) as numbers(i)
            """
        )
        started = time.perf_counter()
        plan = make_plan(store, spec, WebhookDestination)
        elapsed = time.perf_counter() - started
    return {
        "audience_rows": plan.source_rows,
        "held_rows": plan.held_rows,
        "adds": len(plan.adds),
        "changes": len(plan.changes),
        "removes": len(plan.removes),
        "seconds": round(elapsed, 3),
        "target_seconds": 2.0,
        "state_seed_seconds": round(seeded, 3),
    }


_EMULATOR = """
import sys
from emulators.webhook import WebhookEmulator
receiver = WebhookEmulator(token=sys.argv[1], max_records=int(sys.argv[2])).start()
print(receiver.url, flush=True)
sys.stdin.read()
print(len(receiver.records), receiver.duplicate_count, flush=True)
"""


def bench_webhook(folder: Path) -> dict[str, object]:
    warehouse = Warehouse(target="local", duckdb_path=folder / "webhook.duckdb")
    with StateStore.open(warehouse) as store:
        _audience(store, WEBHOOK_MEMBERS)
    # The receiver runs in its own process, as a real one would, not competing for this GIL.
    # emulators/ is test tooling outside the wheel: the child imports it from the checkout,
    # its working directory, which a ``-c`` script has first on sys.path.
    receiver = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR, SECRET, str(WebhookDestination.max_batch_size)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = receiver.stdout.readline().strip()
        destination = WebhookDestination(WebhookConfig(url=url, secret=SECRET))
        started = time.perf_counter()
        result = run_sync(_spec("bench_webhook", "webhook"), warehouse, {}, destination=destination)
        elapsed = time.perf_counter() - started
        answer, _ = receiver.communicate("", timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    received, duplicates = (int(value) for value in answer.split())
    return {
        "rows": result.succeeded,
        "received": received,
        "duplicates": duplicates,
        "requests": result.requests,
        "batch_size": WebhookDestination.max_batch_size,
        "concurrency": WebhookDestination.max_concurrency,
        "seconds": round(elapsed, 3),
        "rows_per_second": round(result.succeeded / elapsed),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tessera-bench-sync-") as folder:
        report = {
            "benchmark": "sync",
            "machine": {"python": platform.python_version(), "processor": platform.machine()},
            "diff": bench_diff(Path(folder)),
            "webhook": bench_webhook(Path(folder)),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
