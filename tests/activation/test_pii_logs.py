"""Personal values never reach the logs: the printed plan masks them, and the errors a sync
stores (sync_row_log, sync_failed_rows, sync_state, sync_runs) and prints are scrubbed of the
values a destination quotes back."""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import ClassVar

import pyarrow as pa
import pytest

from orchestration import cli
from orchestration.activation.destination import (
    BatchRejected,
    PermanentError,
    Record,
    RecordOutcome,
    TransientError,
    WriteResult,
)
from orchestration.activation.engine import run_sync
from orchestration.privacy import mask, scrub, table_pii_columns
from orchestration.warehouse import Warehouse
from tests.activation.sync_support import (
    MemoryDestination,
    Sleeps,
    members,
    spec,
    write_audience,
)

pytestmark = pytest.mark.integration

ROWS = members(10)
EMAILS = [row["email"] for row in ROWS]
NAMES = [row["first_name"] for row in ROWS]


class EchoingDestination(MemoryDestination):
    """Quotes the values it refuses, as CRM APIs do: a failed row's error names its email, a
    refused batch names the contact it refused. One request at a time, so scripted faults land
    on the requests in key order."""

    max_concurrency: ClassVar[int] = 1

    def write(self, batch: Sequence[Record]) -> WriteResult:
        if self.script:
            return super().write(batch)
        refused = [record for record in batch if record.key in self.reject]
        if refused:
            email, name = refused[0].fields["email"], refused[0].fields["firstname"]
            raise BatchRejected(f"400: contact {email} ({name}) is on the suppression list")
        result = super().write(batch)
        fields = {record.key: record.fields for record in batch}
        return WriteResult(
            [
                outcome
                if outcome.succeeded
                else RecordOutcome(
                    outcome.key, False, error=f"Email '{fields[outcome.key]['email']}' is invalid"
                )
                for outcome in result.outcomes
            ]
        )


class HashingDestination(MemoryDestination):
    hashed_identifiers: ClassVar[dict[str, str]] = {"email": "email"}
    normaliser = "meta"


def _plain_values_in(texts: Iterable[str | None], values: Iterable[str]) -> list[str]:
    """The values that appear as whole words in any of the texts."""
    joined = "\n".join(text for text in texts if text)
    return [value for value in values if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", joined)]


def _logged_errors(warehouse: Warehouse) -> dict[str, list]:
    return {
        table: warehouse.query(f"select {column} from activation.{table} order by 1, 2")
        for table, column in (
            ("sync_row_log", "record_key, error, run_id"),
            ("sync_failed_rows", "record_key, error"),
            ("sync_state", "record_key, last_error"),
            ("sync_runs", "run_id, error"),
        )
    }


def test_a_dry_run_prints_the_sample_records_with_emails_and_names_masked(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, ROWS)

    result = run_sync(
        spec(), empty_duckdb_warehouse, {}, dry_run=True, destination=MemoryDestination()
    )
    text = result.format()

    assert _plain_values_in([text], EMAILS + NAMES) == []
    # The 5 sample adds, told apart by their (not personal) key and their masks.
    samples = [line for line in text.splitlines() if line.startswith("  add ")]
    assert len(samples) == 5
    assert samples[1] == (
        f'  add    c0001  {{"email": "{mask("user1@mail.com")}", "firstname": "{mask("Name1")}"}}'
    )
    assert mask("user1@mail.com").startswith("u***@mail.com#")
    assert len({mask(email) for email in EMAILS}) == 10


def test_a_dry_run_keyed_on_email_masks_the_key_and_keeps_hashed_emails_as_hashes(
    empty_duckdb_warehouse,
):
    write_audience(empty_duckdb_warehouse, ROWS)

    keyed = run_sync(
        spec(key="email"), empty_duckdb_warehouse, {}, dry_run=True, destination=MemoryDestination()
    ).format()
    hashed = run_sync(
        spec("hashed"), empty_duckdb_warehouse, {}, dry_run=True, destination=HashingDestination()
    ).format()

    assert _plain_values_in([keyed, hashed], EMAILS + NAMES) == []
    assert f"  add    {mask('user0@mail.com')}  " in keyed
    # The destination's SHA-256 of the normalised email stays: it is what was sent.
    digest = hashlib.sha256(b"user0@mail.com").hexdigest()
    assert f'{{"email": "{digest}", "firstname": "{mask("Name0")}"}}' in hashed


def test_errors_quoting_emails_and_names_are_stored_and_printed_masked(empty_duckdb_warehouse):
    write_audience(empty_duckdb_warehouse, ROWS)
    destination = EchoingDestination()
    # Batches of 4: [c0000-c0003] times out naming one email; in [c0004-c0007] c0005 is
    # refused by name and c0006 makes the whole request be refused; [c0008, c0009] passes.
    destination.script = [TransientError("503: timed out while saving user2@mail.com")]
    destination.fail = {"c0005"}
    destination.reject = {"c0006"}
    policy = Sleeps().policy(max_retries=0)

    partial = run_sync(spec(), empty_duckdb_warehouse, {}, destination=destination, policy=policy)
    # The next run retries the 6 failed rows; the first request stops it, quoting an email.
    destination.script = [PermanentError("403: account suspended for abuse by user1@mail.com")]
    stopped = run_sync(spec(), empty_duckdb_warehouse, {}, destination=destination, policy=policy)

    logs = _logged_errors(empty_duckdb_warehouse)
    texts = [partial.format(), stopped.format()]
    texts += [str(row) for rows in logs.values() for row in rows]
    assert _plain_values_in(texts, EMAILS + NAMES) == []

    assert (partial.succeeded, partial.failed) == (4, 6)
    row_log = {key: error for key, error, _ in logs["sync_row_log"] if error}
    assert len(row_log) == 6
    timed_out = f"503: timed out while saving {mask('user2@mail.com')} (after 0 retries)"
    assert [row_log[f"c000{n}"] for n in range(4)] == [timed_out] * 4
    assert row_log["c0005"] == f"Email '{mask('user5@mail.com')}' is invalid"
    assert row_log["c0006"] == (
        f"400: contact {mask('user6@mail.com')} ({mask('Name6')}) is on the suppression list"
    )
    failed = dict(logs["sync_failed_rows"])
    assert sorted(failed) == ["c0000", "c0001", "c0002", "c0003", "c0005", "c0006"]
    assert failed["c0005"] == row_log["c0005"]
    assert dict(logs["sync_state"])["c0006"] == row_log["c0006"]

    suspended = f"403: account suspended for abuse by {mask('user1@mail.com')}"
    assert (stopped.status, stopped.error) == ("failed", suspended)
    assert [error for _, error in logs["sync_runs"] if error] == [suspended]
    assert stopped.plan.counts()["adds"] == 6
    assert stopped.format().endswith(f"in 1 requests (0 retries, 0 throttled): {suspended}")


def test_tessera_sync_dry_run_masks_the_columns_the_audience_model_tags(
    tmp_path, monkeypatch, capsys
):
    # audience_browse_abandoners.yml tags email, phone, first_name and last_name; its file sync
    # maps them with customer_id, product_views_count and last_product_viewed_at.
    path = tmp_path / "tessera.duckdb"
    warehouse = Warehouse(target="local", duckdb_path=path)
    people = [("c1", "ana.lopez@example.org", "Ana", "Lopez"), ("c2", "bo@x.io", "Bo", "Berg")]
    columns = {
        "customer_id": pa.array([p[0] for p in people]),
        "email": pa.array([p[1] for p in people]),
        "phone": pa.array(["+14155550100", None]),
        "first_name": pa.array([p[2] for p in people]),
        "last_name": pa.array([p[3] for p in people]),
        "has_consent_email_marketing": pa.array([True, True]),
        "has_consent_advertising": pa.array([False, True]),
        "has_consent_analytics": pa.array([True, False]),
        "product_views_count": pa.array([3, 4]),
        "last_product_viewed_at": pa.array([datetime(2025, 6, 9, 10), datetime(2025, 6, 8, 9)]),
    }
    warehouse.write_tables("audiences", {"audience_browse_abandoners": pa.table(columns)})
    monkeypatch.setenv("TESSERA_TARGET", "local")
    monkeypatch.setenv("TESSERA_DUCKDB_PATH", str(path))

    status = cli.main(["sync", "--dry-run", "--sync", "browse_abandoners_file"])
    printed = capsys.readouterr()

    assert status == 0
    output = printed.out + printed.err
    plain = [value for person in people for value in person[1:]]
    assert _plain_values_in([output], plain) == []
    assert (
        f'  add    c1  {{"customer_id": "c1", "email": "{mask("ana.lopez@example.org")}", '
        f'"first_name": "{mask("Ana")}", "last_name": "{mask("Lopez")}", '
        f'"last_product_viewed_at": "2025-06-09T10:00:00", "product_views_count": 3}}'
    ) in output
    assert mask("ana.lopez@example.org").startswith("a***@example.org#")


def test_a_column_is_personal_by_its_models_tag_or_else_by_its_name(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: t\nmodel-paths: [models]\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "audience_vip.yml").write_text(
        textwrap.dedent("""\
            version: 2
            models:
              - name: audience_vip
                columns:
                  - name: loyalty_code
                    meta: {pii: true}
                  - name: tier
            """)
    )
    columns = ["customer_id", "loyalty_code", "tier", "email", "emails_count"]

    tagged = table_pii_columns("audience_vip", columns, project_dir=tmp_path)
    untagged = table_pii_columns("audience_written_by_hand", columns, project_dir=tmp_path)

    # A tag the name would not suggest counts; an untagged email is still personal.
    assert tagged == {"loyalty_code", "email"}
    assert untagged == {"email"}


def test_scrub_masks_whole_values_in_any_case_and_leaves_longer_words_alone():
    text = "Email 'USER1@mail.com' is invalid; Name10 and Name1 too; Al is invalid"

    scrubbed = scrub(text, ["user1@mail.com", "Name1", "Name10", "Al", None])

    # The echo in capitals is masked as the value itself: one value, one mask.
    assert scrubbed == (
        f"Email '{mask('user1@mail.com')}' is invalid; {mask('Name10')} and {mask('Name1')} "
        f"too; {mask('Al')} is invalid"
    )
