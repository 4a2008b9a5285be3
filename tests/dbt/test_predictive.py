"""The predictive layer on DuckDB and Postgres: feature marts, CLV and churn written back, plots.

The demo generator spreads each buyer's orders evenly up to its clock's end, so nobody stops
buying and churn is only weakly predictable from its data (held-out AUC 0.75 on 1,500 generated
customers, 0.69 on 400). These tests simulate a shop instead, from
the BG/NBD and Gamma-Gamma stories (customers buy at their own rate and drop out after a
purchase), with orders only and no events, plus a few hand-made customers with known features.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from orchestration.dbt_project import run_dbt
from orchestration.predictive.clv import PredictiveInputError
from orchestration.predictive.pipeline import PredictiveResult, run_predictive
from orchestration.warehouse import Warehouse, WarehouseError

pytestmark = pytest.mark.integration

START = date(2024, 7, 1)
# A Monday 104 weeks after START; the hand-made customers' T is a whole number of weeks.
CALIBRATION_END = date(2026, 6, 29)
VARS = {"tessera_clv_calibration_end": CALIBRATION_END.isoformat()}
SIMULATED_CUSTOMERS = 1_200
# Seeds and models only: the other models' data tests run in the session builds of tests/dbt.
BUILD_MODELS = ["build", "--resource-type", "seed", "--resource-type", "model"]
FEATURES = ["customer_features", "customer_features_holdout"]
# The feature marts and the predictive models with their data tests, as `tessera run` ends.
BUILD_PREDICTIVE = [
    "build", "--exclude-resource-type", "unit_test", "--select", *FEATURES, "path:models/predictive"
]  # fmt: skip
RUN_FEATURES = ["run", "--select", *FEATURES]
PREDICTIVE_MODELS = ("customer_clv", "customer_churn_scores", "clv_model_fits")
PREDICTIVE_TABLES = (
    "customer_clv_predictions",
    "customer_churn_predictions",
    "clv_model_parameters",
    "churn_model_evaluations",
)

# (customer_ref, ordered_at, total_amount, status) of customers whose features are known:
# hand_1 buys twice on 2026-01-05 (one purchase worth 30), then on 02-02 and 03-30, has a
# cancelled order between and an order after the calibration end; hand_2 buys once.
HAND_MADE_ORDERS = [
    ("hand_1", "2026-01-05T09:00:00Z", 20.0, "completed"),
    ("hand_1", "2026-01-05T18:30:00Z", 10.0, "completed"),
    ("hand_1", "2026-02-02T12:00:00Z", 40.0, "completed"),
    ("hand_1", "2026-03-02T12:00:00Z", 99.0, "cancelled"),
    ("hand_1", "2026-03-30T12:00:00Z", 60.0, "completed"),
    ("hand_1", "2026-07-10T12:00:00Z", 70.0, "completed"),
    ("hand_2", "2026-06-01T08:00:00Z", 25.0, "completed"),
]


def simulated_orders(customers: int, seed: int) -> list[tuple[str, datetime, float]]:
    """(customer_ref, ordered_at, amount) from BG/NBD (r, alpha in weeks, a, b) and Gamma-Gamma
    (p, q, v): each customer arrives in the first year, buys at rate lambda ~ Gamma(r, alpha) a
    week and after each purchase drops out with probability p ~ Beta(a, b)."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = 0.9, 6.0, 0.7, 2.5
    p, q, v = 6.0, 4.0, 15.0
    weeks = (CALIBRATION_END - START).days / 7
    orders = []
    for i in range(customers):
        ref = f"sim_{i:05d}"
        rate = rng.gamma(r, 1 / alpha)
        dropout = rng.beta(a, b)
        spend = rng.gamma(q, 1 / v)
        week = rng.uniform(0, 52)
        while week < weeks + 26:
            stamp = datetime.combine(START, datetime.min.time()) + timedelta(weeks=week)
            amount = max(round(float(rng.gamma(p, 1 / spend)), 2), 0.01)
            orders.append((ref, stamp, amount))
            if rng.random() < dropout:
                break
            week += rng.exponential(1 / rate)
    return orders


def orders_table(customers: int = SIMULATED_CUSTOMERS, seed: int = 3) -> pa.Table:
    rows = [
        (ref, stamp.replace(tzinfo=UTC).isoformat(), amount, "completed")
        for ref, stamp, amount in simulated_orders(customers, seed)
    ] + HAND_MADE_ORDERS
    return pa.table(
        {
            "order_id": [f"ord_{i:07d}" for i in range(len(rows))],
            "customer_ref": [row[0] for row in rows],
            "email": [None] * len(rows),
            "phone": [None] * len(rows),
            "ordered_at": [row[1] for row in rows],
            "total_amount": [row[2] for row in rows],
            "currency": ["USD"] * len(rows),
            "status": [row[3] for row in rows],
            "channel": ["web"] * len(rows),
        },
        schema=pa.schema(
            [
                ("order_id", pa.string()),
                ("customer_ref", pa.string()),
                ("email", pa.string()),
                ("phone", pa.string()),
                ("ordered_at", pa.string()),
                ("total_amount", pa.float64()),
                ("currency", pa.string()),
                ("status", pa.string()),
                ("channel", pa.string()),
            ]
        ),
    )


@dataclass(frozen=True)
class Shop:
    warehouse: Warehouse
    result: PredictiveResult
    # Rows of the predictive models after the first dbt build, before the predictive step ran.
    rows_before_step: dict[str, int]


def _count(warehouse: Warehouse, relation: str) -> int:
    return int(warehouse.query(f"select count(*) from {relation}")[0][0])


def _customer_of(warehouse: Warehouse, ref: str) -> str:
    mark = warehouse.placeholder
    return warehouse.query(
        "select customer_id from identity.identity_customer_map "
        f"where identifier_type = 'shop_customer_ref' and identifier_value = {mark}",
        [ref],
    )[0][0]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """A shop with orders only (no events, no CRM), built, scored and rebuilt, as `tessera run`
    does it."""
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("predictive") / "t.duckdb"
        warehouse = Warehouse(target="local", duckdb_path=path)
    else:
        server = request.getfixturevalue("postgres_server")
        warehouse = Warehouse(target="postgres", postgres=server.create_database("predictive"))
    warehouse.write_tables("raw", {"orders": orders_table()})
    run_dbt(BUILD_MODELS, warehouse, VARS, quiet=True)
    before = {model: _count(warehouse, f"marts.{model}") for model in PREDICTIVE_MODELS}
    output = tmp_path_factory.mktemp(f"output_{request.param}")
    result = run_predictive(warehouse, VARS, output)
    run_dbt(BUILD_PREDICTIVE, warehouse, VARS, quiet=True)
    return Shop(warehouse, result, before)


def test_features_count_same_day_purchases_once(shop: Shop) -> None:
    warehouse = shop.warehouse
    mark = warehouse.placeholder
    columns = (
        "frequency, recency, t, monetary_value, first_purchase_value, completed_revenue, "
        "orders_count, uncompleted_orders_count, events_count, days_since_last_purchase"
    )
    rows = {
        ref: warehouse.query(
            f"select {columns} from marts.customer_features where customer_id = {mark}",
            [_customer_of(warehouse, ref)],
        )
        for ref in ("hand_1", "hand_2")
    }
    # hand_1: purchase days 01-05 (20 + 10), 02-02 (40), 03-30 (60); a cancelled order is an
    # order but no purchase; the 07-10 order is after the calibration end. Weeks: recency 84/7,
    # T 175/7, mean repeat value (40 + 60) / 2.
    assert [tuple(float(v) for v in row) for row in rows["hand_1"]] == [
        (2.0, 12.0, 25.0, 50.0, 30.0, 130.0, 5.0, 1.0, 0.0, 91.0)
    ]
    (hand_2,) = rows["hand_2"]
    assert [float(v) if v is not None else None for v in hand_2] == [
        0.0, 0.0, 4.0, None, 25.0, 25.0, 1.0, 0.0, 0.0, 28.0
    ]  # fmt: skip


def test_a_shop_with_orders_only_gets_every_customer_scored(shop: Shop) -> None:
    warehouse = shop.warehouse
    assert not warehouse.relation_exists("raw", "tracks")
    assert not warehouse.relation_exists("raw", "pages")
    # The models build empty before the predictive step has ever run, then fill.
    assert shop.rows_before_step == dict.fromkeys(PREDICTIVE_MODELS, 0)
    customers = _count(warehouse, "marts.customer_features")
    assert customers == shop.result.customers_scored > SIMULATED_CUSTOMERS * 0.9
    assert _count(warehouse, "marts.customer_clv") == customers
    assert _count(warehouse, "marts.customer_churn_scores") == customers
    assert warehouse.query(
        "select count(*) from marts.customer_churn_scores as scores "
        "inner join marts.customer_clv as clv on scores.customer_id = clv.customer_id "
        "where scores.p_alive = clv.p_alive and scores.churn_probability between 0 and 1 "
        "and clv.discounted_clv >= 0 and clv.expected_purchases >= 0"
    ) == [(customers,)]
    tiers = dict(
        warehouse.query("select risk_tier, count(*) from marts.customer_churn_scores group by 1")
    )
    assert set(tiers) <= {"high", "medium", "low"}
    assert len(tiers) >= 2, tiers


def _columns(warehouse: Warehouse, schema: str, table: str) -> list[str]:
    mark = warehouse.placeholder
    rows = warehouse.query(
        "select column_name from information_schema.columns "
        f"where table_schema = {mark} and table_name = {mark} order by ordinal_position",
        [schema, table],
    )
    return [name for (name,) in rows]


def test_predictive_models_have_the_contract_columns(shop: Shop) -> None:
    warehouse = shop.warehouse
    assert _columns(warehouse, "marts", "clv_model_fits") == [
        "model", "parameter", "time_unit", "value", "log_likelihood", "n_customers",
        "calibration_start", "calibration_end", "fitted_at",
    ]  # fmt: skip
    assert set(_columns(warehouse, "marts", "customer_clv")) >= {
        "customer_id", "frequency", "recency", "t", "monetary_value", "p_alive",
        "expected_purchases", "discounted_clv", "horizon", "time_unit",
    }  # fmt: skip
    assert set(_columns(warehouse, "marts", "customer_churn_scores")) == {
        "customer_id", "churn_probability", "p_alive", "risk_tier", "model_version", "scored_at",
    }  # fmt: skip
    fits = warehouse.query(
        "select model, parameter, value, n_customers, time_unit, calibration_end "
        "from marts.clv_model_fits order by model, parameter"
    )
    assert [(model, parameter) for model, parameter, *_ in fits] == [
        ("bg_nbd", "a"), ("bg_nbd", "alpha"), ("bg_nbd", "b"), ("bg_nbd", "r"),
        ("gamma_gamma", "p"), ("gamma_gamma", "q"), ("gamma_gamma", "v"),
    ]  # fmt: skip
    bg = shop.result.bgnbd
    assert {p: v for _, p, v, *_ in fits if p in ("r", "alpha", "a", "b")} == pytest.approx(
        {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b}
    )
    assert {(n, unit, str(end)) for *_, n, unit, end in fits} >= {
        (bg.n_customers, "week", CALIBRATION_END.isoformat())
    }


def test_churn_classifier_ranks_held_out_customers_with_auc_above_075(shop: Shop) -> None:
    evaluation = shop.result.churn
    assert evaluation.auc > 0.75
    assert evaluation.calibration_error < 0.1
    assert evaluation.test_customers > 200
    stored = shop.warehouse.query(
        "select model_version, auc from predictive.churn_model_evaluations"
    )
    assert stored == [(shop.result.model_version, pytest.approx(evaluation.auc))]


def test_plots_are_written_and_show_something(shop: Shop) -> None:
    from matplotlib.image import imread

    assert set(shop.result.plots) == {"clv_distribution", "holdout_purchases", "churn_roc"}
    for name, path in shop.result.plots.items():
        assert path.suffix == ".png" and path.stat().st_size > 15_000, name
        pixels = imread(path)
        assert pixels.shape[0] >= 400 and pixels.shape[1] >= 800, name
        # Not a blank canvas: a good share of the pixels is not background white.
        assert (pixels[..., :3] < 0.9).any(axis=-1).mean() > 0.02, name


def _snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    return {
        table: sorted(
            warehouse.query(f"select * from predictive.{table}"), key=lambda row: str(row[:2])
        )
        for table in PREDICTIVE_TABLES
    }


def test_degenerate_input_fails_and_leaves_the_previous_results(shop: Shop, tmp_path: Path) -> None:
    warehouse = shop.warehouse
    before = _snapshot(warehouse)
    # Three weeks into the shop's history: a few dozen customers, hardly any repeat buyer.
    early = {"tessera_clv_calibration_end": "2024-07-21", "tessera_churn_window_days": 7}
    # A target path of its own: other vars would make dbt drop the parse it saved for the shop's
    # vars, and parse the whole project again (~4 s) for the run that restores the features.
    run_dbt([*RUN_FEATURES, "--target-path", str(tmp_path)], warehouse, early, quiet=True)
    try:
        with pytest.raises(PredictiveInputError, match=r"repeat buyers|churned|is empty"):
            run_predictive(warehouse, early, Path(shop.result.plots["churn_roc"]).parent)
        assert _snapshot(warehouse) == before
        # The features were built with other vars than the step gets: it refuses.
        with pytest.raises(PredictiveInputError, match="rebuild it with `dbt build`"):
            run_predictive(warehouse, VARS, Path(shop.result.plots["churn_roc"]).parent)
    finally:
        run_dbt(RUN_FEATURES, warehouse, VARS, quiet=True)
    assert _snapshot(warehouse) == before


def test_a_failed_write_replaces_no_table(shop: Shop) -> None:
    warehouse = shop.warehouse
    # A view where a table should go makes the second replacement fail on both adapters.
    warehouse.execute(
        [
            "create schema if not exists write_probe",
            "create or replace view write_probe.blocked as select 1 as x",
        ]
    )
    warehouse.write_tables("write_probe", {"kept": pa.table({"x": [1, 2]})})
    with pytest.raises(WarehouseError, match="nothing was replaced"):
        warehouse.write_tables(
            "write_probe",
            {"kept": pa.table({"x": [3]}), "blocked": pa.table({"x": [4]})},
        )
    assert sorted(warehouse.query("select x from write_probe.kept")) == [(1,), (2,)]
