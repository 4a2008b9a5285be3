"""Propensity models: declarations, the refusal rules, no feature after its cutoff, explanations
that add up, and models that beat the recency-only baseline where the data says they should.

The warehouse holds only ``marts.customer_events``, written directly: a synthetic timeline where
customers buy at their own rates and a ticket follows an order now and then, so both planted
targets can be learnt (and checked) without a dbt build.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from orchestration.predictive import propensity
from orchestration.predictive.clv import PredictiveInputError
from orchestration.project import ConfigError, ProjectConfig
from orchestration.warehouse import Warehouse

START = datetime(2025, 1, 1)
DAYS = 420
AS_OF = START + timedelta(days=DAYS)
CUSTOMERS = 2_500
MODELS = [
    {"name": "will_buy", "target": {"order": {"status": ["completed"]}}, "window_days": 30},
    {"name": "will_ticket", "target": {"event": "Ticket Opened"}, "window_days": 30},
]


def timeline(customers: int = CUSTOMERS, seed: int = 3) -> pd.DataFrame:
    """customer_events rows: orders at a per-customer rate, a page view before each order and
    a few at random, a ticket within five days of 30% of orders."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1 / 40, customers)  # orders per day
    first = rng.uniform(0, DAYS - 30, customers)
    # Simulated 60 days past as_of: what the leakage test plants.
    end = DAYS + 60
    counts = rng.poisson(rate * (end - first))
    who = np.repeat(np.arange(customers), counts)
    when = first[who] + rng.uniform(0, 1, len(who)) * (end - first[who])
    ticket = rng.random(len(who)) < 0.3
    visits = rng.poisson(3, customers)
    visit_who = np.repeat(np.arange(customers), visits)
    visit_when = first[visit_who] + rng.uniform(0, 1, len(visit_who)) * (DAYS - first[visit_who])
    parts = [
        ("order", "Order Placed", "completed", 40.0, who, when),
        ("page", "Page Viewed", None, None, who, np.maximum(when - 0.01, first[who])),
        (
            "ticket",
            "Ticket Opened",
            "open",
            None,
            who[ticket],
            when[ticket] + rng.uniform(0.5, 5, int(ticket.sum())),
        ),
        ("page", "Page Viewed", None, None, visit_who, visit_when),
        ("page", "Page Viewed", None, None, np.arange(customers), first),
    ]
    frames = [
        pd.DataFrame(
            {
                "customer_id": [f"c{i:05d}" for i in people],
                "event_type": kind,
                "event_name": name,
                "event_status": status,
                "revenue": revenue,
                "occurred_at": [START + timedelta(days=float(d)) for d in days],
            }
        )
        for kind, name, status, revenue, people, days in parts
    ]
    events = pd.concat(frames, ignore_index=True)
    events = events[events["occurred_at"] <= START + timedelta(days=end)]
    events["event_id"] = [f"e{i}" for i in range(len(events))]
    return events.astype({"revenue": "float64", "event_status": "object"})


def write_events(warehouse: Warehouse, events: pd.DataFrame) -> None:
    warehouse.write_tables(
        "marts", {"customer_events": pa.Table.from_pandas(events, preserve_index=False)}
    )


def settings(models=MODELS, as_of=AS_OF, cap: int = 200_000) -> propensity.PropensitySettings:
    config = ProjectConfig.load(
        {
            "tessera_propensity_models": models,
            "tessera_propensity_as_of": as_of.isoformat(sep=" "),
            "tessera_propensity_max_training_customers": cap,
        }
    )
    return propensity.PropensitySettings.from_config(config)


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return timeline()


def _scored(warehouse: Warehouse, events: pd.DataFrame):
    write_events(warehouse, events[events["occurred_at"] <= AS_OF])
    return warehouse, propensity.predict_propensity(warehouse, settings(), AS_OF)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def scored(request: pytest.FixtureRequest, tmp_path_factory, events: pd.DataFrame):
    """The events up to as_of in a warehouse of this module's, scored; tests only read it."""
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("propensity") / "t.duckdb"
        warehouse = Warehouse(target="local", duckdb_path=path)
    else:
        server = request.getfixturevalue("postgres_server")
        warehouse = Warehouse(target="postgres", postgres=server.create_database("propensity"))
    return _scored(warehouse, events)


def test_declarations_are_checked_and_errors_name_the_model_and_field() -> None:
    specs = propensity.parse_models(MODELS)
    assert [spec.name for spec in specs] == ["will_buy", "will_ticket"]
    assert specs[0].order_statuses == ("completed",)
    assert specs[1].event == "Ticket Opened"
    bad = [
        ([{"name": "x", "target": {"event": "E"}, "window_days": 0}], "'x': window_days"),
        ([{"name": "x", "target": {"order": {"status": ["paid"]}}, "window_days": 7}], "status"),
        ([{"name": "x", "target": {"page": "/"}, "window_days": 7}], "'x': target must be"),
        ([{"name": "x", "target": {"event": "E"}, "window_days": 7, "customers": "vip"}], "vip"),
        ([MODELS[0], MODELS[0]], "declared twice"),
        ([{"name": "Bad Name", "target": {"event": "E"}, "window_days": 7}], "lowercase"),
    ]
    for value, expected in bad:
        with pytest.raises(ConfigError, match="tessera_propensity_models") as error:
            ProjectConfig.load({"tessera_propensity_models": value})
        assert expected.replace("'", "") in str(error.value).replace("'", "")


def test_too_few_positives_or_too_little_history_is_refused_naming_the_counts() -> None:
    spec = propensity.parse_models(MODELS)[1]
    frame = pd.DataFrame({name: np.ones(300) for name in propensity.FEATURES})
    labels = np.r_[np.ones(99), np.zeros(201)]
    cutoff = datetime(2026, 1, 1)
    with pytest.raises(PredictiveInputError) as error:
        propensity.train(spec, frame, labels, cutoff, history_days=400, max_customers=1000)
    text = str(error.value)
    assert "'will_ticket'" in text and "99 positives" in text and "201 negatives" in text
    with pytest.raises(PredictiveInputError, match="'will_ticket' needs at least 30 days"):
        propensity.train(
            spec, frame, np.r_[np.ones(150), np.zeros(150)], cutoff, 12, max_customers=1000
        )


def test_a_model_without_enough_data_is_refused_and_the_others_still_score(
    scored, events: pd.DataFrame
) -> None:
    warehouse, _ = scored
    rare = {"name": "will_never", "target": {"event": "No Such Event"}, "window_days": 30}
    _, models, refused, table = propensity.predict_propensity(
        warehouse, settings([*MODELS, rare]), AS_OF
    )
    assert [model.spec.name for model in models] == ["will_buy", "will_ticket"]
    assert list(refused) == ["will_never"]
    assert "found 0 positives" in refused["will_never"]
    assert set(table["model"]) == {"will_buy", "will_ticket"}


def test_models_beat_the_recency_baseline_where_the_data_plants_more(scored) -> None:
    _, (as_of, models, refused, table) = scored
    assert as_of == AS_OF and not refused
    by_name = {model.spec.name: model for model in models}
    buy, ticket = by_name["will_buy"].evaluation, by_name["will_ticket"].evaluation
    # Tickets follow orders: recent orders say more than the last ticket.
    assert ticket.auc > ticket.baseline_auc + 0.05
    assert buy.auc >= 0.7
    assert buy.top_decile_lift > 2.0
    for model in models:
        e = model.evaluation
        assert e.train_customers + e.test_customers <= CUSTOMERS
        assert e.test_customers == pytest.approx(0.3 * (e.train_customers + e.test_customers), 1)
        assert len(e.lift_by_decile) == 10
        # Lift deciles average to 1 (equal-sized deciles, up to rounding of their sizes).
        assert np.mean(e.lift_by_decile) == pytest.approx(1.0, abs=0.02)
    # Every customer with an event by as_of is scored once per model, probabilities in (0, 1).
    customers = table.groupby("model")["customer_id"].nunique()
    assert set(customers) == {len(table) // 2}
    assert table["probability"].between(0, 1).all()


def test_logistic_explanations_add_up_to_the_score(scored) -> None:
    warehouse, (as_of, models, _, _) = scored
    frame = propensity.load_features(warehouse, [m.spec for m in models], as_of, False)
    for index, model in enumerate(models):
        if model.kind != "logit":
            continue
        x = propensity.feature_matrix(propensity.model_frame(frame, index))
        effects = propensity.contributions(model, x)
        p = model.pipeline.predict_proba(x)[:, 1]
        p_ref = model.pipeline.predict_proba(model.reference[None, :])[0, 1]
        logit = np.log(p / (1 - p))
        assert np.allclose(logit, np.log(p_ref / (1 - p_ref)) + effects.sum(axis=1), atol=1e-9)
        raising, lowering = propensity.reasons(model, x[:50], effects[:50])
        for i, text in enumerate(raising):
            shown = [float(part.rsplit("(", 1)[1].rstrip(")")) for part in text.split("; ") if part]
            assert shown == sorted(shown, reverse=True) and all(v > 0 for v in shown)
            assert len(shown) == min(3, int((effects[i] >= propensity.MIN_EFFECT).sum()))
        for text in lowering:
            shown = [float(part.rsplit("(", 1)[1].rstrip(")")) for part in text.split("; ") if part]
            assert shown == sorted(shown) and all(v < 0 for v in shown)


def test_events_after_the_cutoff_move_no_feature_and_no_score(scored, events: pd.DataFrame) -> None:
    warehouse, (_, models, _, before) = scored
    specs = [model.spec for model in models]
    # What happened after as_of: the scores as of as_of do not move.
    later = events[events["occurred_at"] > AS_OF]
    assert len(later) > 100
    write_events(warehouse, events)
    frame = propensity.load_features(warehouse, specs, AS_OF, with_labels=False)
    for index, model in enumerate(models):
        rescored = propensity.score(model, propensity.model_frame(frame, index), AS_OF)
        expected = before[before["model"] == model.spec.name].reset_index(drop=True)
        assert list(rescored["customer_id"]) == list(expected["customer_id"])
        assert np.array_equal(rescored["probability"], expected["probability"])
        assert list(rescored["factors_raising"]) == list(expected["factors_raising"])

    # Orders planted after the training cutoff, for customers who had no event there: the
    # training features do not move (only the labels read past the cutoff).
    cutoff = AS_OF - timedelta(days=30)
    features_before = propensity.load_features(warehouse, specs, cutoff, with_labels=False)
    quiet = sorted(
        set(features_before["customer_id"])
        - set(events.loc[events["occurred_at"] > cutoff, "customer_id"])
    )[:50]
    assert len(quiet) == 50
    planted = pd.DataFrame(
        {
            "customer_id": quiet,
            "event_type": "order",
            "event_name": "Order Placed",
            "event_status": "completed",
            "revenue": 500.0,
            "occurred_at": cutoff + timedelta(days=3),
            "event_id": [f"planted{i}" for i in range(len(quiet))],
        }
    )
    write_events(warehouse, pd.concat([events, planted], ignore_index=True))
    features_after = propensity.load_features(warehouse, specs, cutoff, with_labels=False)
    pd.testing.assert_frame_equal(features_before, features_after)
    labelled = propensity.load_features(warehouse, specs, cutoff, with_labels=True)
    assert labelled.set_index("customer_id").loc[quiet, "label_0"].eq(1).all()


def test_boosted_trees_win_on_a_non_monotone_signal_and_explain_it() -> None:
    """Customers with 3 to 6 events in the last 30 days buy far more often than those with fewer
    or more: a logistic regression on log counts cannot bend that way, the trees can, are
    chosen, and their explanations point at that feature with the right sign."""
    rng = np.random.default_rng(5)
    n = 6_000
    frame = pd.DataFrame({name: rng.poisson(3, n).astype(float) for name in propensity.FEATURES})
    frame["events_30d"] = rng.integers(0, 11, n).astype(float)
    band = frame["events_30d"].between(3, 6).to_numpy()
    labels = (rng.random(n) < np.where(band, 0.6, 0.08)).astype(int)
    spec = propensity.parse_models(MODELS)[0]
    model = propensity.train(spec, frame, labels, datetime(2026, 1, 1), 400, max_customers=n)
    assert model.kind == "gbm"
    assert model.evaluation.candidates["gbm"] > model.evaluation.candidates["logit"] + 0.05
    x = propensity.feature_matrix(frame)
    effects = propensity.contributions(model, x)
    column = propensity.FEATURES.index("events_30d")
    assert np.allclose(propensity.contributions(model, model.reference[None, :]), 0.0)
    inside, outside = effects[band, column], effects[~band, column]
    assert np.median(inside) - np.median(outside) > 1.0
    # The feature explains most of the spread: it is the largest effect for most customers.
    largest = np.abs(effects).argmax(axis=1)
    assert (largest == column).mean() > 0.5


def test_a_run_where_every_model_is_refused_writes_empty_tables_of_the_right_types(
    empty_warehouse: Warehouse, events: pd.DataFrame, tmp_path
) -> None:
    """On Postgres an empty column must still have a type: 100 customers refuse both models."""
    write_events(empty_warehouse, events[events["customer_id"] < "c00100"])
    variables = {
        "tessera_propensity_models": MODELS,
        "tessera_propensity_as_of": AS_OF.isoformat(sep=" "),
    }
    result = propensity.run_propensity(empty_warehouse, variables, tmp_path)
    assert result.models == () and set(result.refused) == {"will_buy", "will_ticket"}
    for table in (propensity.PREDICTIONS_TABLE, propensity.EVALUATIONS_TABLE):
        assert empty_warehouse.query(f"select count(*) from predictive.{table}") == [(0,)]
