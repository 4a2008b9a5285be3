"""Fuzzy customer matching against synthetic customers whose duplicates are known."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest

from orchestration.identity.fuzzy import (
    AUTO_APPLY_PROBABILITY,
    OUTPUT_SCHEMA,
    SUGGEST_MIN_PROBABILITY,
    evaluate,
    labelled_duplicates,
    suggest_matches,
)

PEOPLE = 3_000
DUPLICATE_SHARE = 0.1


@cache
def _run(seed: int) -> tuple[pa.Table, set[tuple[str, str]], pa.Table]:
    records, truth = labelled_duplicates(PEOPLE, DUPLICATE_SHARE, seed)
    return records, truth, suggest_matches(records, seed=seed)


def _record(customer_id: str, first: str, last: str, email: str, phone: str) -> dict[str, str]:
    return {
        "customer_id": customer_id,
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_precision_at_auto_apply_and_recall_of_suggestions(seed: int) -> None:
    _, truth, suggestions = _run(seed)
    report = evaluate(suggestions, truth, AUTO_APPLY_PROBABILITY)
    assert report["true_pairs"] > 300
    assert report["above_threshold"] > 200
    assert report["precision_at_threshold"] >= 0.98, report
    assert report["recall_suggested"] >= 0.90, report
    # Auto-applied links are most of what is found, not a sliver of sure things.
    assert report["recall_at_threshold"] >= 0.70, report


def test_output_shape_and_order() -> None:
    _, _, suggestions = _run(1)
    assert suggestions.schema == OUTPUT_SCHEMA
    rows = suggestions.to_pylist()
    assert all(r["customer_id_l"] < r["customer_id_r"] for r in rows)
    assert all(r["match_probability"] >= SUGGEST_MIN_PROBABILITY for r in rows)
    keys = [(-r["match_probability"], r["customer_id_l"], r["customer_id_r"]) for r in rows]
    assert keys == sorted(keys)
    assert len({(r["customer_id_l"], r["customer_id_r"]) for r in rows}) == len(rows)
    described = rows[0]["comparisons"].split("; ")
    assert [part.split(": ")[0] for part in described] == [
        "first_name",
        "last_name",
        "email",
        "phone",
    ]
    labels = {r["comparisons"] for r in rows}
    assert any("first_name: nickname" in c for c in labels)
    assert any("email: same local part" in c for c in labels)
    assert any("phone: no data" in c for c in labels)


def test_deterministic() -> None:
    records, _, first = _run(1)
    assert suggest_matches(records, seed=1).equals(first)


def test_generator_is_deterministic_with_namesakes() -> None:
    records, truth = labelled_duplicates(PEOPLE, DUPLICATE_SHARE, 1)
    again, truth_again = labelled_duplicates(PEOPLE, DUPLICATE_SHARE, 1)
    assert records.equals(again)
    assert truth == truth_again
    assert records.num_rows >= PEOPLE * (1 + DUPLICATE_SHARE)
    assert len(set(records.column("customer_id").to_pylist())) == records.num_rows
    assert all(left < right for left, right in truth)
    # Different people sharing a first and last name, which no model may link on names alone.
    rows = records.to_pylist()
    by_name: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by_name.setdefault((r["first_name"].lower(), r["last_name"].lower()), []).append(
            r["customer_id"]
        )
    namesakes = sum(
        1
        for ids in by_name.values()
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
        if (min(a, b), max(a, b)) not in truth
    )
    assert namesakes >= 50
    # The identity graph keeps duplicates apart: no true pair shares an email or a phone.
    by_id = {r["customer_id"]: r for r in rows}
    for a, b in truth:
        for column in ("email", "phone"):
            assert by_id[a][column] is None or by_id[a][column] != by_id[b][column]


def test_common_last_name_alone_is_no_match() -> None:
    records, _, _ = _run(1)
    strangers = pa.Table.from_pylist(
        [
            _record("zz-1", "Aurelio", "Smith", "aurelio.q.1961@example.org", "+12125550111"),
            _record("zz-2", "Philippa", "Smith", "pip.wrenfield@example.net", "+19175550177"),
        ],
        schema=records.schema,
    )
    scored = suggest_matches(pa.concat_tables([records, strangers]), min_probability=0.0, seed=1)
    pairs = {
        (r["customer_id_l"], r["customer_id_r"]): r
        for r in scored.to_pylist()
        if r["customer_id_r"] == "zz-2"
    }
    # Same last name is a candidate pair, scored and found wanting.
    pair = pairs[("zz-1", "zz-2")]
    assert "last_name: exact" in pair["comparisons"]
    assert pair["match_probability"] < SUGGEST_MIN_PROBABILITY
    assert pair["match_probability"] < AUTO_APPLY_PROBABILITY


def test_missing_column_is_named() -> None:
    records = pa.table({"customer_id": ["a", "b"], "first_name": ["Ann", "Bo"]})
    with pytest.raises(ValueError, match="last_name, email, phone"):
        suggest_matches(records)


def test_duplicate_customer_id_is_named() -> None:
    records = pa.Table.from_pylist(
        [
            _record("c1", "Ann", "Lee", "ann@example.com", "+14155550100"),
            _record("c1", "Bo", "Lee", "bo@example.com", "+14155550101"),
        ]
    )
    with pytest.raises(ValueError, match=r"customer_id must be unique.*c1"):
        suggest_matches(records)


@pytest.mark.parametrize("rows", [0, 1])
def test_fewer_than_two_records_is_empty(rows: int) -> None:
    records, _ = labelled_duplicates(5, 0.0, 3)
    result = suggest_matches(records.slice(0, rows))
    assert result.schema == OUTPUT_SCHEMA
    assert result.num_rows == 0


def test_no_candidate_pairs_is_empty() -> None:
    records = pa.Table.from_pylist(
        [
            _record("c1", "Ann", "Lee", "ann@example.com", "+14155550100"),
            _record("c2", "Bo", "Park", None, "+13125559999"),
            _record("c3", None, None, "zed@example.org", None),
        ]
    )
    result = suggest_matches(records)
    assert result.schema == OUTPUT_SCHEMA
    assert result.num_rows == 0


def test_quiet_and_leaves_no_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    records, truth = labelled_duplicates(400, 0.1, 5)
    with caplog.at_level(logging.DEBUG):
        suggestions = suggest_matches(records, seed=5)
    assert evaluate(suggestions, truth, AUTO_APPLY_PROBABILITY)["above_threshold"] > 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert list(tmp_path.iterdir()) == []
