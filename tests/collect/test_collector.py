"""The real Segment and RudderStack client libraries send to ``tessera collect``; every call
they were told was accepted reaches raw and staging exactly once."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
import requests
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from orchestration.collect.landing import list_segments
from orchestration.collect.loader import load_landing
from orchestration.dbt_project import run_dbt
from orchestration.warehouse import Warehouse
from tests.collect.conftest import WRITE_KEY, Collector, start_collector

pytestmark = pytest.mark.integration

SEGMENT_VARS = {"tessera_source_preset": "segment"}


def _send_with_clients(url: str) -> dict[str, set[str]]:
    """Identifies, tracks and pages from both libraries, gzip'd and not; the message ids sent
    per raw table. The clients batch in the background and flush at the end, as on a server."""
    errors: list[Exception] = []
    sent: dict[str, set[str]] = {"identifies": set(), "tracks": set(), "pages": set()}
    clients = [
        SegmentClient(
            WRITE_KEY, host=url, gzip=False, upload_size=25, on_error=lambda e, b: errors.append(e)
        ),
        SegmentClient(
            WRITE_KEY, host=url, gzip=True, upload_size=25, on_error=lambda e, b: errors.append(e)
        ),
        RudderClient(WRITE_KEY, host=url, upload_size=25, on_error=lambda e, b: errors.append(e)),
    ]
    for number, client in enumerate(clients):
        for person in range(20):
            user = f"user-{number}-{person}"
            anon = f"anon-{number}-{person}"
            _, msg = client.identify(
                user,
                {"email": f"Person.{number}.{person}@Mail.example.org", "firstName": "Ann"},
                anonymous_id=anon,
            )
            sent["identifies"].add(msg["messageId"])
            for event, props in [
                ("Product Viewed", {"product_id": f"p{person}", "price": 10.5 + person}),
                ("Product Added", {"product_id": f"p{person}", "price": 10.5 + person}),
            ]:
                _, msg = client.track(user, event, props, anonymous_id=anon)
                sent["tracks"].add(msg["messageId"])
            _, msg = client.page(
                user,
                "Shop",
                "Product",
                {"url": f"https://shop.example.org/p/{person}", "path": f"/p/{person}"},
                anonymous_id=anon,
            )
            sent["pages"].add(msg["messageId"])
        client.flush()
        client.join()
    assert errors == []
    return sent


def test_real_clients_calls_reach_raw_and_staging_exactly_once(
    collector: Collector, empty_warehouse: Warehouse
) -> None:
    sent = _send_with_clients(collector.url)
    assert collector.health()["events"] == 3 * 20 * 4

    first = load_landing(empty_warehouse, collector.landing, "raw")
    assert first.inserted["identifies"] == 60 and first.inserted["tracks"] == 120
    assert first.inserted["pages"] == 60 and first.inserted["product_added"] == 60
    assert first.duplicates == 0 and first.rejected == 0
    again = load_landing(empty_warehouse, collector.landing, "raw")
    assert again.rows == 0 and again.events == 0

    for table, ids in sent.items():
        stored = [row[0] for row in empty_warehouse.query(f"select id from raw.{table}")]
        assert len(stored) == len(ids) and set(stored) == ids, table

    run_dbt(
        [
            "build",
            "--exclude-resource-type",
            "unit_test",
        ],
        empty_warehouse,
        dbt_vars=SEGMENT_VARS,
        quiet=True,
    )
    staged = {
        "identifies": "select identify_id from staging.stg_segment__identifies",
        "tracks": "select track_id from staging.stg_segment__tracks",
        "pages": "select page_view_id from staging.stg_segment__pages",
    }
    for table, sql in staged.items():
        ids = [row[0] for row in empty_warehouse.query(sql)]
        assert len(ids) == len(sent[table]) and set(ids) == sent[table], table
    for model in ("identifies", "tracks", "pages"):
        rejected = empty_warehouse.query(
            f"select count(*) from staging.stg_segment__{model}_rejected"
        )
        assert rejected == [(0,)], model
    # Properties come back from the events' own tables; emails are normalised by staging.
    [(price,)] = empty_warehouse.query(
        "select properties from staging.stg_segment__tracks "
        "where user_id = 'user-2-3' and event_name = 'Product Added'"
    )
    assert orjson.loads(price)["price"] in ("13.5", 13.5)
    [(email,)] = empty_warehouse.query(
        "select email from staging.stg_segment__identifies where user_id = 'user-1-4'"
    )
    assert email == "person.1.4@mail.example.org"


def test_a_batch_the_client_retries_is_loaded_once(collector: Collector, tmp_path: Path) -> None:
    batch = {
        "batch": [
            {
                "type": "track",
                "userId": f"u{i}",
                "event": "Checkout Started",
                "messageId": f"retry-{i}",
            }
            for i in range(50)
        ],
        "sentAt": "2026-12-07T12:00:00Z",
    }
    for _ in range(3):
        answer = requests.post(
            f"{collector.url}/v1/batch", json=batch, auth=(WRITE_KEY, ""), timeout=10
        )
        assert answer.status_code == 200
    warehouse = Warehouse(target="local", duckdb_path=tmp_path / "retry.duckdb")
    report = load_landing(warehouse, collector.landing, "raw")
    assert report.events == 150 and report.duplicates == 100
    assert warehouse.query("select count(*), count(distinct id) from raw.tracks") == [(50, 50)]
    assert warehouse.query("select count(*) from raw.checkout_started") == [(50,)]
    # The retry lands again in a later load: still nothing new.
    requests.post(f"{collector.url}/v1/batch", json=batch, auth=(WRITE_KEY, ""), timeout=10)
    assert load_landing(warehouse, collector.landing, "raw").duplicates == 50
    assert warehouse.query("select count(*) from raw.tracks") == [(50,)]


def _post(url: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(
        url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10
    )


def test_oversize_unauthenticated_and_malformed_requests_get_their_answers_and_store_nothing(
    collector: Collector,
) -> None:
    batch_url = f"{collector.url}/v1/batch"
    basic = requests.auth._basic_auth_str(WRITE_KEY, "")
    good_call = {"type": "track", "userId": "u", "event": "E"}
    cases = [
        # (what, status, code, response)
        ("no key", 401, "unauthorized", _post(batch_url, orjson.dumps({"batch": [good_call]}))),
        (
            "unknown basic key",
            401,
            "unauthorized",
            _post(
                batch_url,
                orjson.dumps({"batch": [good_call]}),
                Authorization=requests.auth._basic_auth_str("guess", ""),
            ),
        ),
        (
            "unknown body key",
            401,
            "unauthorized",
            _post(batch_url, orjson.dumps({"batch": [good_call], "writeKey": "guess"})),
        ),
        ("invalid json", 400, "invalid_json", _post(batch_url, b"{batch: [", Authorization=basic)),
        (
            "batch over 500 KB",
            400,
            "request_too_large",
            _post(
                batch_url,
                orjson.dumps({"batch": [{**good_call, "properties": {"x": "y" * 300}}] * 2_000}),
                Authorization=basic,
            ),
        ),
        (
            "call over 32 KB",
            400,
            "event_too_large",
            _post(
                batch_url,
                orjson.dumps({"batch": [{**good_call, "properties": {"x": "y" * 40_000}}]}),
                Authorization=basic,
            ),
        ),
        (
            "single call over 32 KB",
            400,
            "request_too_large",
            _post(
                f"{collector.url}/v1/track",
                orjson.dumps({**good_call, "properties": {"x": "y" * 40_000}}),
                Authorization=basic,
            ),
        ),
        (
            "gzip bomb",
            400,
            "request_too_large",
            _post(
                batch_url,
                gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}"),
                Authorization=basic,
                **{"Content-Encoding": "gzip"},
            ),
        ),
        (
            "broken gzip",
            400,
            "invalid_gzip",
            _post(
                batch_url, b"\x1f\x8b not gzip", Authorization=basic, **{"Content-Encoding": "gzip"}
            ),
        ),
        (
            "no user or anonymous id",
            400,
            "no_user_anon_id",
            _post(
                batch_url,
                orjson.dumps({"batch": [{"type": "track", "event": "E"}]}),
                Authorization=basic,
            ),
        ),
        # The body's write key authenticates as well as Basic auth: the malformed call gets
        # its 400, not a 401 (the collector once answered 401 when only the body held the key).
        (
            "malformed call, key in the body",
            400,
            "no_user_anon_id",
            _post(
                batch_url,
                orjson.dumps({"batch": [{"type": "track", "event": "E"}], "writeKey": WRITE_KEY}),
            ),
        ),
        (
            "2,501 calls",
            400,
            "too_many_events",
            _post(
                batch_url,
                orjson.dumps({"batch": [{"type": "page", "userId": "u"}] * 2_501}),
                Authorization=basic,
            ),
        ),
    ]
    for what, status, code, answer in cases:
        assert answer.status_code == status, what
        assert answer.json()["code"] == code, what
    health = collector.health()
    assert health["events"] == 0 and health["refused"]["unauthorized"] == 3
    assert all(segment.path.stat().st_size == 0 for segment in list_segments(collector.landing))


def test_a_nearly_full_landing_disk_answers_429_with_retry_after(tmp_path: Path) -> None:
    full = start_collector(tmp_path / "landing", "--min-free-mb", str(1 << 40))
    try:
        answer = requests.post(
            f"{full.url}/v1/track",
            json={"userId": "u", "event": "E"},
            auth=(WRITE_KEY, ""),
            timeout=10,
        )
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "30"
        assert full.health()["refused"] == {"backpressure": 1}
    finally:
        full.stop()
