"""What a run records about its rows, each step in one transaction: the requests planned to
carry them (in flight), each request's outcomes, and the keys a plan forgets or settles. The
tables and what their columns mean: store.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime

from orchestration.activation.destination import Record
from orchestration.activation.plan import ERASURES, PlannedRecord
from orchestration.activation.store import StateStore, utc_now

_INFLIGHT_COLUMNS = (
    ("record_key", "varchar"),
    ("customer_id", "varchar"),
    ("operation", "varchar"),
    ("fingerprint", "varchar"),
    ("fields", "varchar"),
    ("change_id", "varchar"),
    ("batch_id", "varchar"),
)
_OUTCOME_COLUMNS = (
    ("record_key", "varchar"),
    ("operation", "varchar"),
    ("status", "varchar"),
    ("destination_id", "varchar"),
    ("error", "varchar"),
    ("refused", "boolean"),
)


def inflight_requests(store: StateStore, sync_name: str) -> list[tuple[str, list[PlannedRecord]]]:
    """Requests a stopped run planned or sent with no outcome recorded.

    A customer erased since then gets a remove instead of what was planned (under a new id):
    the planned record may have arrived, and must not stay.
    """
    erased = (
        f"customer_id in (select cast(customer_id as varchar) from {'.'.join(ERASURES)})"
        if store.relation_exists(*ERASURES)
        else "false"
    )
    rows = store.fetch(
        f"""
        select inflight_batch, record_key, customer_id, inflight_operation,
            inflight_fingerprint, inflight_fields, change_id, {erased} as is_erased
        from activation.sync_state
        where sync_name = ? and inflight_batch is not null
        order by inflight_batch, record_key
        """,
        [sync_name],
    )
    # A request carries one operation, so the removes of erased customers travel apart.
    batches: dict[tuple[str, str], list[PlannedRecord]] = {}
    for batch_id, key, customer_id, operation, fingerprint, fields, change_id, is_erased in rows:
        record = Record(key, operation, json.loads(fields))
        item = PlannedRecord(record, customer_id, fingerprint, change_id)
        if is_erased and operation != "remove":
            removal = Record(key, "remove", record.fields)
            item = PlannedRecord(removal, customer_id, None, uuid.uuid4().hex)
        batches.setdefault((batch_id, item.record.operation), []).append(item)
    return [(batch_id, items) for (batch_id, _), items in batches.items()]


def mark_inflight(
    store: StateStore,
    sync_name: str,
    run_id: str,
    rows: Sequence[tuple[str, str | None, str, str | None, str, str, str]],
) -> None:
    """Record which request will carry each row, before any of them leaves.

    Each row is (record_key, customer_id, operation, fingerprint, fields as JSON, change id,
    request id); keys new to the sync get a ``sending`` state row.
    """
    now = utc_now()
    with store.transaction():
        store.load("inflight_rows", _INFLIGHT_COLUMNS, rows)
        store.execute(
            """
            update activation.sync_state as state
            set inflight_batch = incoming.batch_id,
                inflight_operation = incoming.operation,
                inflight_fingerprint = incoming.fingerprint,
                inflight_fields = incoming.fields,
                change_id = incoming.change_id,
                change_fingerprint =
                    incoming.operation || ':' || coalesce(incoming.fingerprint, ''),
                -- Refusals count for one change; a parked row planned again is being retried.
                refusals = case
                    when state.change_fingerprint
                        = incoming.operation || ':' || coalesce(incoming.fingerprint, '')
                    then state.refusals
                    else 0
                end,
                parked_at = null,
                customer_id = coalesce(incoming.customer_id, state.customer_id),
                updated_at = ?,
                last_run_id = ?
            from inflight_rows as incoming
            where state.sync_name = ? and state.record_key = incoming.record_key
            """,
            [now, run_id, sync_name],
        )
        store.execute(
            """
            insert into activation.sync_state (
                sync_name, record_key, customer_id, status, attempts, refusals, inflight_batch,
                inflight_operation, inflight_fingerprint, inflight_fields, change_id,
                change_fingerprint, updated_at, last_run_id
            )
            select ?, incoming.record_key, incoming.customer_id, 'sending', 0, 0,
                incoming.batch_id,
                incoming.operation, incoming.fingerprint, incoming.fields, incoming.change_id,
                incoming.operation || ':' || coalesce(incoming.fingerprint, ''), ?, ?
            from inflight_rows as incoming
            where not exists (
                select 1 from activation.sync_state as state
                where state.sync_name = ? and state.record_key = incoming.record_key
            )
            """,
            [sync_name, now, run_id, sync_name],
        )


def record_outcomes(
    store: StateStore,
    sync_name: str,
    run_id: str,
    batch_id: str | None,
    rows: Sequence[tuple[str, str, str, str | None, str | None, bool]],
    failed_rows_held: bool = True,
    max_refusals: int | None = None,
) -> None:
    """Record one request's outcomes in one transaction: the row log, the state, failed rows.

    Each row is (record_key, operation, 'succeeded' | 'failed', destination_id, error,
    refused). A successful remove deletes the key's state; a successful add or change makes the
    in-flight fields the sent ones; a failure keeps what was last sent and counts the attempt,
    and a refusal that is the key's ``max_refusals``-th in a row parks it (None: never).
    ``failed_rows_held=False`` (the sync has no failed rows) skips clearing them.
    """
    failed = any(row[2] == "failed" for row in rows)
    removed = any(row[2] == "succeeded" and row[1] == "remove" for row in rows)
    sent = any(row[2] == "succeeded" and row[1] != "remove" for row in rows)
    now = utc_now()
    with store.transaction():
        store.load("outcome_rows", _OUTCOME_COLUMNS, rows)
        store.execute(
            """
            insert into activation.sync_row_log (
                run_id, sync_name, record_key, operation, status, destination_id, error,
                batch_id, logged_at
            )
            select ?, ?, record_key, operation, status, destination_id, error, ?, ?
            from outcome_rows
            """,
            [run_id, sync_name, batch_id, now],
        )
        if sent:
            _record_sent(store, sync_name, run_id, now)
        if removed:
            store.execute(
                """
                delete from activation.sync_state
                where sync_name = ? and record_key in (
                    select record_key from outcome_rows
                    where status = 'succeeded' and operation = 'remove'
                )
                """,
                [sync_name],
            )
        if failed:
            _record_failed(store, sync_name, run_id, now, max_refusals)
        if failed_rows_held and (sent or removed):
            store.execute(
                """
                delete from activation.sync_failed_rows
                where sync_name = ? and record_key in (
                    select record_key from outcome_rows where status = 'succeeded'
                )
                """,
                [sync_name],
            )


def _record_sent(store: StateStore, sync_name: str, run_id: str, now: datetime) -> None:
    store.execute(
        """
        update activation.sync_state as state
        set status = 'synced',
            fingerprint = state.inflight_fingerprint,
            sent_fields = state.inflight_fields,
            destination_id = coalesce(outcome.destination_id, state.destination_id),
            last_error = null,
            attempts = 0,
            refusals = 0,
            parked_at = null,
            inflight_batch = null,
            inflight_operation = null,
            inflight_fingerprint = null,
            inflight_fields = null,
            change_id = null,
            change_fingerprint = null,
            first_sent_at = coalesce(state.first_sent_at, ?),
            last_sent_at = ?,
            updated_at = ?,
            last_run_id = ?
        from outcome_rows as outcome
        where state.sync_name = ? and state.record_key = outcome.record_key
            and outcome.status = 'succeeded' and outcome.operation <> 'remove'
        """,
        [now, now, now, run_id, sync_name],
    )


def _record_failed(
    store: StateStore, sync_name: str, run_id: str, now: datetime, max_refusals: int | None
) -> None:
    store.execute(
        """
        update activation.sync_state as state
        set status = 'failed',
            last_error = outcome.error,
            attempts = state.attempts + 1,
            refusals = coalesce(state.refusals, 0) + case when outcome.refused then 1 else 0 end,
            parked_at = case
                when outcome.refused and coalesce(state.refusals, 0) + 1 >= ? then ?
                else state.parked_at
            end,
            inflight_batch = null,
            inflight_operation = null,
            inflight_fingerprint = null,
            inflight_fields = null,
            updated_at = ?,
            last_run_id = ?
        from outcome_rows as outcome
        where state.sync_name = ? and state.record_key = outcome.record_key
            and outcome.status = 'failed'
        """,
        [max_refusals if max_refusals is not None else 2**31 - 1, now, now, run_id, sync_name],
    )
    _refresh_failed_rows(store, sync_name, run_id, now)


def _refresh_failed_rows(store: StateStore, sync_name: str, run_id: str, now: datetime) -> None:
    store.execute(
        """
        insert into activation.sync_failed_rows (
            sync_name, record_key, operation, error, attempts, first_failed_at,
            last_failed_at, last_run_id
        )
        select ?, outcome.record_key, outcome.operation, outcome.error, 0, ?, ?, ?
        from outcome_rows as outcome
        where outcome.status = 'failed' and not exists (
            select 1 from activation.sync_failed_rows as failed
            where failed.sync_name = ? and failed.record_key = outcome.record_key
        )
        """,
        [sync_name, now, now, run_id, sync_name],
    )
    store.execute(
        """
        update activation.sync_failed_rows as failed
        set operation = outcome.operation,
            error = outcome.error,
            attempts = failed.attempts + 1,
            last_failed_at = ?,
            last_run_id = ?
        from outcome_rows as outcome
        where failed.sync_name = ? and failed.record_key = outcome.record_key
            and outcome.status = 'failed'
        """,
        [now, run_id, sync_name],
    )
    store.execute(
        """
        update activation.sync_failed_rows as failed
        set parked = state.parked_at is not null
        from activation.sync_state as state
        where failed.sync_name = ? and state.sync_name = failed.sync_name
            and state.record_key = failed.record_key
            and failed.record_key in (select record_key from outcome_rows where status = 'failed')
        """,
        [sync_name],
    )


def forget(
    store: StateStore, sync_name: str, keys: Sequence[str], removed_in_run: str | None = None
) -> None:
    """Drop state (and failed rows) of keys the destination no longer holds for this sync.

    Without ``removed_in_run``: keys it never received and no longer needs. With it: keys that
    left the destination in that run without a request of their own (a replace of its whole
    membership dropped them), each logged in ``sync_row_log`` as a succeeded remove with no
    batch.
    """
    if not keys:
        return
    with store.transaction():
        store.load("forgotten_rows", (("record_key", "varchar"),), [(key,) for key in keys])
        if removed_in_run is not None:
            store.execute(
                """
                insert into activation.sync_row_log (
                    run_id, sync_name, record_key, operation, status, destination_id, error,
                    batch_id, logged_at
                )
                select ?, ?, record_key, 'remove', 'succeeded', null, null, null, ?
                from forgotten_rows
                """,
                [removed_in_run, sync_name, utc_now()],
            )
        for table in ("sync_state", "sync_failed_rows"):
            store.execute(
                f"delete from activation.{table} where sync_name = ? "
                "and record_key in (select record_key from forgotten_rows)",
                [sync_name],
            )


def settle(store: StateStore, sync_name: str, keys: Sequence[str]) -> None:
    """Clear the failure of keys whose destination record already matches what is wanted."""
    if not keys:
        return
    with store.transaction():
        store.load("settled_rows", (("record_key", "varchar"),), [(key,) for key in keys])
        store.execute(
            """
            update activation.sync_state
            set status = 'synced', last_error = null, attempts = 0, refusals = 0,
                parked_at = null, change_id = null, change_fingerprint = null
            where sync_name = ? and record_key in (select record_key from settled_rows)
            """,
            [sync_name],
        )
        store.execute(
            "delete from activation.sync_failed_rows where sync_name = ? "
            "and record_key in (select record_key from settled_rows)",
            [sync_name],
        )


def parked_in_run(store: StateStore, sync_name: str, run_id: str) -> int:
    """Keys of the sync that the run parked (refused once too often)."""
    return store.fetch(
        "select count(*) from activation.sync_state "
        "where sync_name = ? and last_run_id = ? and status = 'failed' and parked_at is not null",
        [sync_name, run_id],
    )[0][0]
