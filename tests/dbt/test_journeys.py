"""Journeys on DuckDB and Postgres: sessions, attribution and funnels of the session's demo
warehouses (1,500 customers, with broken rows) against independent recomputations in Python.

Each reference follows the models' documentation: sessions split on the inactivity timeout and
take their channel from the first matching rule of seed channel_rules; the Markov model's
removal effects come from solving the absorbing chain's linear equations with numpy, not from
the repeated squaring the SQL does.
"""

from __future__ import annotations

import csv
import itertools
import re
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from orchestration.dbt_project import project_dir
from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse
from tests.dbt.frames import timed_frame

pytestmark = pytest.mark.integration

TOLERANCE = 1e-9


def _events(warehouse: Warehouse) -> pd.DataFrame:
    return timed_frame(
        warehouse,
        "select event_id, customer_id, event_type, event_name, occurred_at, page_url, page_path,"
        " referrer, utm_source, utm_medium, utm_campaign, properties"
        " from marts.customer_events where customer_id is not null",
    )


def _sessionise(events: pd.DataFrame, timeout_minutes: int) -> pd.DataFrame:
    """Each page view and track call with its session's id (the session's first event)."""
    web = events[events["event_type"].isin(["page", "track"])].copy()
    web["sort_id"] = web["event_id"].map(lambda value: value.encode())
    web = web.sort_values(["customer_id", "occurred_at", "sort_id"], kind="stable")
    gap = web.groupby("customer_id")["occurred_at"].diff()
    starts = gap.isna() | (gap > timedelta(minutes=timeout_minutes))
    web["session_id"] = web["event_id"].where(starts).ffill()
    return web


def _host(url: object) -> str | None:
    if not isinstance(url, str) or "://" not in url:
        return None
    return url.split("/")[2].split(":")[0].lower() or None


def _clean(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()


def _channel(source: str, medium: str, rules: list[dict[str, str]]) -> str:
    for rule in rules:
        tests = [
            re.search(pattern, value) is not None
            for pattern, value in (
                (rule["source_pattern"], source),
                (rule["medium_pattern"], medium),
            )
            if pattern
        ]
        if (all(tests) if rule["match"] == "all" else any(tests)) and tests:
            return rule["channel"]
    return "unassigned"


def _rules() -> list[dict[str, str]]:
    with (project_dir() / "seeds" / "channel_rules.csv").open(newline="") as f:
        return sorted(csv.DictReader(f), key=lambda rule: int(rule["priority"]))


def test_sessions_match_a_recomputation(warehouse: Warehouse) -> None:
    timeout = int(ProjectConfig.load()["tessera_session_timeout_minutes"])
    web = _sessionise(_events(warehouse), timeout)
    expected = web.groupby("session_id").agg(
        customer_id=("customer_id", "first"),
        started_at=("occurred_at", "min"),
        ended_at=("occurred_at", "max"),
        event_count=("event_id", "size"),
        page_view_count=("event_type", lambda types: int((types == "page").sum())),
    )
    # The first page view of each session, all of its columns (first() would skip nulls).
    landing = web[web["event_type"] == "page"].groupby("session_id").head(1)
    landing = landing.set_index("session_id")
    expected = expected.join(
        landing[["page_path", "page_url", "referrer", "utm_source", "utm_medium", "utm_campaign"]]
    )
    rules = _rules()
    sources, mediums, channels = [], [], []
    for row in expected.itertuples():
        utm_source, utm_medium = _clean(row.utm_source), _clean(row.utm_medium)
        host = _host(row.referrer)
        external = None if host == _host(row.page_url) else host
        source = utm_source or external or "(direct)"
        if utm_medium:
            medium = utm_medium
        elif utm_source:
            medium = "(not set)"
        else:
            medium = "referral" if external else "(none)"
        sources.append(source)
        mediums.append(medium)
        channels.append(_channel(source, medium, rules))
    expected["source"], expected["medium"], expected["channel"] = sources, mediums, channels

    actual = timed_frame(warehouse, "select * from marts.sessions").set_index("session_id")
    assert len(actual) == len(expected) > 10_000
    actual = actual.loc[expected.index]
    for column in ("customer_id", "started_at", "ended_at", "source", "medium", "channel"):
        assert actual[column].tolist() == expected[column].tolist(), column
    assert actual["event_count"].astype(int).tolist() == expected["event_count"].tolist()
    assert actual["page_view_count"].astype(int).tolist() == expected["page_view_count"].tolist()
    assert actual["landing_page"].tolist() == expected["page_path"].tolist()
    # The demo's pages come from several channels, so the rules are exercised, not just direct.
    assert {"direct", "organic_social", "organic_search", "paid_search", "email"} <= set(channels)


def _touchpoints(warehouse: Warehouse) -> pd.DataFrame:
    return timed_frame(warehouse, "select * from marts.attribution_touchpoints")


def test_touchpoints_are_the_sessions_in_the_lookback(warehouse: Warehouse) -> None:
    lookback = timedelta(days=int(ProjectConfig.load()["tessera_attribution_lookback_days"]))
    conversions = timed_frame(
        warehouse, "select * from marts.attribution_conversions where customer_id is not null"
    )
    sessions = timed_frame(
        warehouse, "select session_id, customer_id, started_at from marts.sessions"
    )
    pairs = conversions.merge(sessions, on="customer_id")
    pairs = pairs[
        (pairs["started_at"] <= pairs["converted_at"])
        & (pairs["started_at"] >= pairs["converted_at"] - lookback)
    ]
    expected = set(zip(pairs["conversion_id"], pairs["session_id"], strict=True))
    actual = _touchpoints(warehouse)
    assert set(zip(actual["conversion_id"], actual["session_id"], strict=True)) == expected
    assert len(expected) > 1_000


def _credits(warehouse: Warehouse) -> pd.DataFrame:
    credits = timed_frame(warehouse, "select * from marts.attribution_credits")
    credits["credit"] = credits["credit"].astype(float)
    credits["revenue_credit"] = credits["revenue_credit"].astype(float)
    return credits


def test_every_model_gives_each_conversion_all_its_revenue(warehouse: Warehouse) -> None:
    conversions = timed_frame(warehouse, "select * from marts.attribution_conversions")
    conversions["revenue"] = conversions["revenue"].astype(float)
    credits = _credits(warehouse)
    sums = credits.groupby(["conversion_id", "model"])[["credit", "revenue_credit"]].sum()
    assert len(sums) == 6 * len(conversions)
    merged = sums.reset_index().merge(conversions, on="conversion_id")
    assert (merged["credit"] - 1).abs().max() < TOLERANCE
    assert (merged["revenue_credit"] - merged["revenue"]).abs().max() < TOLERANCE

    # A conversion without touchpoints (no session in the window, or no customer) is direct.
    touched = set(_touchpoints(warehouse)["conversion_id"])
    untouched = credits[~credits["conversion_id"].isin(touched)]
    assert len(untouched) > 0
    assert set(untouched["channel"]) == {"direct"}
    assert untouched["session_id"].isna().all()
    assert (untouched["credit"] == 1).all()


def test_position_and_time_decay_credits_follow_the_docs(warehouse: Warehouse) -> None:
    config = ProjectConfig.load()
    weights = config["tessera_attribution_position_weights"]
    half_life = float(config["tessera_attribution_half_life_days"])
    touches = _touchpoints(warehouse)
    touches["days_before_conversion"] = touches["days_before_conversion"].astype(float)
    n, k = touches["touch_count"].astype(int), touches["touch_number"].astype(int)
    middle = (1 - weights["first"] - weights["last"]) / (n - 2).clip(lower=1)
    touches["position_based"] = np.select(
        [n == 1, n == 2, k == 1, k == n], [1.0, 0.5, weights["first"], weights["last"]], middle
    )
    decay = 0.5 ** (touches["days_before_conversion"] / half_life)
    touches["time_decay"] = decay / decay.groupby(touches["conversion_id"]).transform("sum")
    touches["linear"] = 1 / n
    credits = _credits(warehouse)
    for model in ("position_based", "time_decay", "linear"):
        got = credits[credits["model"] == model].merge(touches, on=["conversion_id", "session_id"])
        assert len(got) == len(touches)
        assert (got["credit"] - got[model]).abs().max() < TOLERANCE, model


def _markov_effects(touches: pd.DataFrame, sessions: pd.DataFrame) -> dict[str, float]:
    """Removal effects by solving (I - Q) x = r for the probability of absorption in conversion."""
    paths: list[tuple[list[str], str]] = [
        (list(group.sort_values("touch_number")["channel"]), "(conversion)")
        for _, group in touches.groupby("conversion_id")
    ]
    rest = sessions[~sessions["session_id"].isin(set(touches["session_id"]))].copy()
    rest["sort_id"] = rest["session_id"].map(lambda value: value.encode())
    rest = rest.sort_values(["customer_id", "started_at", "sort_id"])
    paths += [(list(group["channel"]), "(null)") for _, group in rest.groupby("customer_id")]
    counts: dict[tuple[str, str], int] = {}
    for channels, outcome in paths:
        states = ["(start)", *channels, outcome]
        for pair in itertools.pairwise(states):
            counts[pair] = counts.get(pair, 0) + 1
    channels = sorted({channel for channels, _ in paths for channel in channels})

    def conversion_probability(removed: str | None) -> float:
        transient = ["(start)", *(c for c in channels if c != removed)]
        index = {state: i for i, state in enumerate(transient)}
        q = np.zeros((len(transient), len(transient)))
        r = np.zeros(len(transient))
        totals: dict[str, int] = {}
        for (a, _), count in counts.items():
            totals[a] = totals.get(a, 0) + count
        for (a, b), count in counts.items():
            if a not in index:
                continue
            p = count / totals[a]
            if b == "(conversion)":
                r[index[a]] += p
            elif b in index:
                q[index[a], index[b]] += p
        x = np.linalg.solve(np.eye(len(transient)) - q, r)
        return float(x[index["(start)"]])

    whole = conversion_probability(None)
    return {c: 1 - conversion_probability(c) / whole for c in channels}


def test_markov_removal_effects_solve_the_chain(warehouse: Warehouse) -> None:
    touches = _touchpoints(warehouse)
    sessions = timed_frame(
        warehouse, "select session_id, customer_id, started_at, channel from marts.sessions"
    )
    expected = _markov_effects(touches, sessions)
    actual = timed_frame(warehouse, "select * from marts.attribution_channel_effects")
    actual = dict(zip(actual["channel"], actual["removal_effect"].astype(float), strict=True))
    assert actual.keys() == expected.keys()
    assert len(expected) >= 4
    for channel, effect in expected.items():
        assert abs(actual[channel] - effect) < TOLERANCE, channel

    # Each conversion is split between its path's channels in proportion to their effects.
    credits = _credits(warehouse)
    markov = credits[(credits["model"] == "markov") & credits["session_id"].notna()]
    by_channel = markov.groupby(["conversion_id", "channel"])["credit"].sum().reset_index()
    by_channel["effect"] = by_channel["channel"].map(expected)
    share = by_channel["effect"] / by_channel.groupby("conversion_id")["effect"].transform("sum")
    assert (by_channel["credit"] - share).abs().max() < 1e-6


def test_funnel_steps_match_a_recomputation(warehouse: Warehouse) -> None:
    (funnel,) = ProjectConfig.load()["tessera_funnels"]
    window = timedelta(hours=float(funnel["window_hours"]))
    events = _events(warehouse)
    sessions = timed_frame(
        warehouse, "select customer_id, started_at, ended_at, channel from marts.sessions"
    )
    steps = [step["event"] for step in funnel["steps"]]
    firsts = events[events["event_name"] == steps[0]].copy()
    firsts["week_start"] = (
        firsts["occurred_at"].dt.normalize()
        - pd.to_timedelta(firsts["occurred_at"].dt.day_of_week, unit="D")
    ).dt.date
    attempts = firsts.sort_values("occurred_at").groupby(["customer_id", "week_start"]).head(1)
    attempts = attempts[["customer_id", "week_start", "occurred_at"]].rename(
        columns={"occurred_at": "entered_at"}
    )
    # The session each attempt started in: the latest to start by then, if it had not ended.
    located = pd.merge_asof(
        attempts.sort_values("entered_at"),
        sessions.sort_values("started_at"),
        left_on="entered_at",
        right_on="started_at",
        by="customer_id",
    )
    inside = located["ended_at"].notna() & (located["ended_at"] >= located["entered_at"])
    located["channel"] = located["channel"].where(inside, "unassigned")
    # Step by step, the first next-step event at or after the step before, within the window.
    reached = located.assign(reached_at=located["entered_at"])
    rows: dict[tuple, int] = {}
    for number, event in enumerate(steps, 1):
        if number > 1:
            hits = events[events["event_name"] == event][["customer_id", "occurred_at"]]
            reached = pd.merge_asof(
                reached.sort_values("reached_at"),
                hits.sort_values("occurred_at"),
                left_on="reached_at",
                right_on="occurred_at",
                by="customer_id",
                direction="forward",
            )
            reached = reached[reached["occurred_at"] <= reached["entered_at"] + window]
            reached = reached.drop(columns="reached_at").rename(
                columns={"occurred_at": "reached_at"}
            )
        for (week, channel), count in reached.groupby(["week_start", "channel"]).size().items():
            rows[(number, week, channel)] = int(count)

    actual = timed_frame(warehouse, "select * from marts.funnel_steps")
    actual["week_start"] = pd.to_datetime(actual["week_start"]).dt.date
    got = {
        (int(row.step_number), row.week_start, row.channel): int(row.conversions)
        for row in actual.itertuples()
        if int(row.conversions) > 0
    }
    assert got == rows
    totals = actual.groupby("step_number")[["entrants", "conversions"]].sum().astype(int)
    # Each step's entrants are the previous step's conversions.
    assert totals["entrants"].iloc[1:].tolist() == totals["conversions"].iloc[:-1].tolist()
    assert totals["conversions"].iloc[-1] > 0


def test_customer_journeys_first_and_last_touch(warehouse: Warehouse) -> None:
    sessions = timed_frame(
        warehouse, "select customer_id, started_at, channel, utm_campaign from marts.sessions"
    ).sort_values(["customer_id", "started_at"])
    first = sessions.groupby("customer_id").head(1).set_index("customer_id")
    last = sessions.groupby("customer_id").tail(1).set_index("customer_id").loc[first.index]
    journeys = timed_frame(warehouse, "select * from marts.customer_journeys")
    journeys = journeys.set_index("customer_id")
    assert len(journeys) == len(first)
    journeys = journeys.loc[first.index]
    assert journeys["first_touch_channel"].tolist() == first["channel"].tolist()
    assert journeys["last_touch_channel"].tolist() == last["channel"].tolist()
    counts = sessions.groupby("customer_id").size()
    assert journeys["sessions_count"].astype(int).tolist() == counts.loc[first.index].tolist()
