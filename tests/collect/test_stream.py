"""Event triggers in the stream worker: who is sent, when, and only once."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from emulators.webhook import WebhookEmulator
from orchestration.activation.destinations import registry
from orchestration.collect.landing import LandingWriter
from orchestration.collect.messages import land_request
from orchestration.collect.stream import StreamWorker, write_snapshot
from orchestration.collect.triggers import TriggerConfigError, load_triggers
from orchestration.warehouse import Warehouse

SECRET = "stream-test-secret"
AUDIENCE_YAML = """
version: 2
models:
  - name: audience_cart_reachable
    config:
      meta:
        tessera:
          triggers:
            - name: product_added_now
              event: Product Added
              destination: webhook
              fields: {customer_id: customer_id, email: email, sku: event_sku}
            - name: cart_abandoned
              event: Product Added
              absent: {event: Order Completed, minutes: 30}
              where: {churn_risk_tier: [high, medium]}
              destination: webhook
              fields: {customer_id: customer_id, email: email, at: triggered_at}
"""


def _project(tmp_path: Path, text: str = AUDIENCE_YAML) -> Path:
    folder = tmp_path / "project" / "models" / "audiences"
    folder.mkdir(parents=True)
    (folder / "audience_cart_reachable.yml").write_text(text)
    return tmp_path / "project"


def _warehouse(tmp_path: Path) -> Warehouse:
    """Four customers; c4 is not in the audience, c3 is at low churn risk and has not consented
    to email marketing (the audience keeps it: a webhook has no consent purpose)."""
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "warehouse.duckdb")
    warehouse.execute(
        [
            "create schema marts",
            "create schema audiences",
            "create table marts.customer_identities as select * from (values "
            "('c1', 'user_id', 'u1'), ('c2', 'email', 'bea@mail.example.org'), "
            "('c3', 'user_id', 'u3'), ('c4', 'user_id', 'u4'), ('c1', 'anonymous_id', 'a1')) "
            "as t(customer_id, identifier_type, identifier_value)",
            "create table audiences.audience_cart_reachable as select * from (values "
            "('c1', 'ann@mail.example.org', 'high', true), "
            "('c2', 'bea@mail.example.org', 'medium', true), "
            "('c3', 'cy@mail.example.org', 'low', false)) "
            "as t(customer_id, email, churn_risk_tier, has_consent_email_marketing)",
        ]
    )
    return warehouse


def _land(folder: Path, calls: list[dict], received: datetime) -> None:
    writer = LandingWriter(folder)

    async def run() -> None:
        await writer.start()
        await writer.append(land_request("batch", {"batch": calls}, received).lines)
        await writer.stop()

    asyncio.run(run())


def _added(message_id: str, sku: str, **ids: str) -> dict:
    return {"type": "track", "event": "Product Added", "messageId": message_id,
            "properties": {"sku": sku, "price": 12.5}, **ids}  # fmt: skip


def test_triggers_fire_for_audience_members_and_absence_rules_wait_and_cancel(
    tmp_path: Path,
) -> None:
    triggers = load_triggers(_project(tmp_path), registry())
    assert [t.name for t in triggers] == ["product_added_now", "cart_abandoned"]
    stream = tmp_path / "stream"
    counts = write_snapshot(_warehouse(tmp_path), {t.audience for t in triggers}, stream)
    assert counts == {"identifiers": 4, "audience_cart_reachable": 3}

    landing = tmp_path / "landing"
    t0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    _land(
        landing,
        [
            # An anonymous visitor identifies with c2's email: the link is learnt in the stream.
            {"type": "identify", "anonymousId": "a2", "traits": {"email": " Bea@Mail.example.org"}},
            _added("m1", "tent", userId="u1"),
            _added("m2", "stove", anonymousId="a2"),
            _added("m3", "mat", userId="u3"),  # low churn risk: only the immediate trigger
            _added("m4", "lamp", userId="u4"),  # not in the audience
            _added("m5", "rope", anonymousId="stranger"),  # nobody known
            _added("m6", "pegs", anonymousId="a1"),  # c1 again, through its anonymous id
        ],
        t0,
    )
    clock = {"now": t0 + timedelta(seconds=5)}
    with WebhookEmulator(token=SECRET) as hook:
        env = {"TESSERA_WEBHOOK_URL": hook.url, "TESSERA_WEBHOOK_SECRET": SECRET}
        worker = StreamWorker(
            landing, stream, triggers, registry(), env=env, now=lambda: clock["now"]
        )
        first = worker.tick()
        # The snapshot holds the audience's customers only: c4 and the stranger resolve to nobody.
        assert (first.calls, first.resolved) == (7, 4)
        assert first.fired == {"product_added_now": 4, "cart_abandoned": 0}
        assert first.started["cart_abandoned"] == 3
        assert first.syncs == {"product_added_now": "succeeded"}
        sent = hook.records_by_key()
        assert sorted(sent) == ["m1", "m2", "m3", "m6"]
        assert sent["m2"]["fields"] == {
            "customer_id": "c2", "email": "bea@mail.example.org", "sku": "stove",
        }  # fmt: skip

        # c1 orders ten minutes later: its waits end; c2 does not.
        _land(landing, [{"type": "track", "event": "Order Completed", "userId": "u1",
                         "messageId": "o1"}], t0 + timedelta(minutes=10))  # fmt: skip
        clock["now"] = t0 + timedelta(minutes=10, seconds=5)
        second = worker.tick()
        assert second.cancelled["cart_abandoned"] == 2 and second.fired["cart_abandoned"] == 0

        clock["now"] = t0 + timedelta(minutes=30, seconds=1)
        third = worker.tick()
        assert third.fired == {"product_added_now": 0, "cart_abandoned": 1}
        assert third.syncs == {"cart_abandoned": "succeeded"}
        abandoned = [r for r in hook.records.values() if r["fields"].get("at")]
        assert [(r["key"], r["fields"]["customer_id"]) for r in abandoned] == [("m2", "c2")]
        assert abandoned[0]["fields"]["at"].startswith("2026-12-07T12:30:00")

        # Nothing new: nothing fires or is sent again.
        fourth = worker.tick()
        assert sum(fourth.fired.values()) == 0 and fourth.syncs == {}
        assert len(hook.records) == 5 and hook.duplicate_count == 0


def test_trigger_declarations_name_each_mistake(tmp_path: Path) -> None:
    bad = (
        AUDIENCE_YAML.replace("minutes: 30", "minutes: -1")
        .replace("event: Product Added\n              destination", "destination")
        .replace("fields: {customer_id: customer_id, email: email, sku: event_sku}", "mode: upsert")
    )
    with pytest.raises(TriggerConfigError) as error:
        load_triggers(_project(tmp_path, bad), registry())
    problems = "\n".join(error.value.problems)
    assert "triggers[0].event: required" in problems
    assert "triggers[0].mode: unknown setting" in problems
    assert "triggers[0].fields: required" in problems
    assert "triggers[1].absent.minutes" in problems


def test_members_wait_for_an_unconfigured_destination_and_a_new_worker_sends_them(
    tmp_path: Path,
) -> None:
    triggers = [t for t in load_triggers(_project(tmp_path), registry()) if not t.absent_event]
    stream = tmp_path / "stream"
    write_snapshot(_warehouse(tmp_path), {t.audience for t in triggers}, stream)
    landing = tmp_path / "landing"
    _land(landing, [_added("m1", "tent", userId="u1")], datetime.now(UTC))
    unconfigured = StreamWorker(landing, stream, triggers, registry(), env={})
    first = unconfigured.tick()
    assert first.fired == {"product_added_now": 1}
    assert first.syncs["product_added_now"].startswith("skipped: webhook is not configured")
    with WebhookEmulator(token=SECRET) as hook:
        env = {"TESSERA_WEBHOOK_URL": hook.url, "TESSERA_WEBHOOK_SECRET": SECRET}
        restarted = StreamWorker(landing, stream, triggers, registry(), env=env)
        second = restarted.tick()
        assert second.calls == 0 and second.syncs == {"product_added_now": "succeeded"}
        assert sorted(hook.records_by_key()) == ["m1"]
        assert restarted.tick().syncs == {}


@pytest.mark.integration
def test_the_snapshot_is_written_from_postgres_as_from_duckdb(
    tmp_path: Path, postgres_server
) -> None:
    duck = _warehouse(tmp_path)
    postgres = Warehouse(
        target="postgres", postgres=postgres_server.create_database("stream_snapshot")
    )
    postgres.execute(
        [
            "create schema marts",
            "create schema audiences",
            "create table marts.customer_identities (customer_id text, identifier_type text, "
            "identifier_value text)",
            "create table audiences.audience_cart_reachable (customer_id text, email text, "
            "churn_risk_tier text, has_consent_email_marketing boolean)",
        ]
    )
    with postgres.postgres_connection() as con, con.transaction():
        for table in ("marts.customer_identities", "audiences.audience_cart_reachable"):
            rows = duck.query(f"select * from {table}")
            marks = ", ".join(["%s"] * len(rows[0]))
            con.cursor().executemany(f"insert into {table} values ({marks})", rows)
    counts = {
        name: write_snapshot(warehouse, ["audience_cart_reachable"], tmp_path / name)
        for name, warehouse in (("duckdb", duck), ("postgres", postgres))
    }
    assert counts["duckdb"] == counts["postgres"] == {
        "identifiers": 4, "audience_cart_reachable": 3,
    }  # fmt: skip
    snapshots = [
        Warehouse(target="local", duckdb_path=tmp_path / name / "snapshot.duckdb").query(
            "select customer_id, identifier_type, identifier_value from identifiers order by all"
        )
        for name in ("duckdb", "postgres")
    ]
    assert snapshots[0] == snapshots[1]


def test_a_trigger_to_a_table_writes_each_firing_once_to_the_file_it_names(
    tmp_path: Path,
) -> None:
    out = tmp_path / "exports.duckdb"
    text = AUDIENCE_YAML.split("            - name: cart_abandoned")[0].replace(
        "destination: webhook\n              fields: {customer_id: customer_id, email: email, "
        "sku: event_sku}",
        "destination: table\n              fields: {customer_id: customer_id, sku: event_sku}\n"
        f"              options: {{duckdb_path: '{out}', table: added_to_cart}}",
    )
    triggers = load_triggers(_project(tmp_path, text), registry())
    assert [(t.name, t.sync.destination) for t in triggers] == [("product_added_now", "table")]
    stream = tmp_path / "stream"
    write_snapshot(_warehouse(tmp_path), ["audience_cart_reachable"], stream)
    landing = tmp_path / "landing"
    received = datetime.now(UTC)
    _land(landing, [_added("m1", "tent", userId="u1"), _added("m2", "mat", userId="u3")], received)
    worker = StreamWorker(landing, stream, triggers, registry(), env={})
    assert worker.tick().syncs == {"product_added_now": "succeeded"}
    _land(landing, [_added("m1", "tent", userId="u1")], received)  # the same call, retried
    assert worker.tick().fired == {"product_added_now": 0}
    rows = Warehouse(target="local", duckdb_path=out).query(
        "select trigger_id, customer_id, sku from activation_exports.added_to_cart order by 1"
    )
    assert rows == [("m1", "c1", "tent"), ("m2", "c3", "mat")]


def test_calls_wait_in_the_landing_folder_until_a_build_writes_the_first_snapshot(
    tmp_path: Path,
) -> None:
    triggers = [t for t in load_triggers(_project(tmp_path), registry()) if not t.absent_event]
    stream = tmp_path / "stream"
    landing = tmp_path / "landing"
    _land(landing, [_added("m1", "tent", userId="u1")], datetime.now(UTC))
    worker = StreamWorker(landing, stream, triggers, registry(), env={})
    early = worker.tick()
    assert early.waiting_for_snapshot and early.calls == 0
    write_snapshot(_warehouse(tmp_path), ["audience_cart_reachable"], stream)
    later = worker.tick()
    assert (later.calls, later.fired) == (1, {"product_added_now": 1})


def test_a_trigger_to_a_hubspot_list_creates_each_member_and_adds_it_to_the_list(
    tmp_path: Path,
) -> None:
    from emulators.hubspot import HubSpotEmulator

    text = AUDIENCE_YAML.split("            - name: cart_abandoned")[0].replace(
        "destination: webhook\n              fields: {customer_id: customer_id, email: email, "
        "sku: event_sku}",
        "destination: hubspot\n              fields: {email: email}\n"
        "              options: {list_id: '1'}",
    )
    triggers = load_triggers(_project(tmp_path, text), registry())
    stream = tmp_path / "stream"
    write_snapshot(_warehouse(tmp_path), ["audience_cart_reachable"], stream)
    landing = tmp_path / "landing"
    calls = [_added("m1", "tent", userId="u1"), _added("m2", "mat", userId="u3")]
    _land(landing, calls, datetime.now(UTC))
    with HubSpotEmulator(token="hs-token") as hubspot:
        created = requests.post(
            f"{hubspot.base_url}/crm/v3/lists",
            json={"name": "Added to cart", "objectTypeId": "0-1", "processingType": "MANUAL"},
            headers={"Authorization": "Bearer hs-token"},
            timeout=10,
        )
        assert created.json()["list"]["listId"] == "1"
        env = {"TESSERA_HUBSPOT_BASE_URL": hubspot.base_url, "TESSERA_HUBSPOT_TOKEN": "hs-token"}
        worker = StreamWorker(landing, stream, triggers, registry(), env=env)
        assert worker.tick().syncs == {"product_added_now": "succeeded"}
        # HubSpot is for email marketing: c3, who did not consent to it, is not sent.
        emails = sorted(contact.properties["email"] for contact in hubspot.contacts.values())
        assert emails == ["ann@mail.example.org"]
        assert len(hubspot.list_members("1")) == 1
