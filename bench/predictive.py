"""Benchmark: CLV model fits, Tessera's BG/NBD and Gamma-Gamma against the lifetimes package.

Prints one JSON document. One simulated customer base, in whole weeks as the customer_clv model
summarises orders, is fitted three ways:

- tessera: orchestration.predictive.clv.fit_bgnbd and fit_gamma_gamma on the per-customer arrays;
- lifetimes: lifetimes 0.11.3's BetaGeoFitter and GammaGammaFitter, fitted the way its
  documentation shows, one row per customer (its fit also computes a Hessian for standard errors);
- lifetimes_weighted: the same fitters on the distinct rows with their counts as `weights`
  (lifetimes' own option, grouped with pandas inside the clock), to show how much of the gap is
  the row compression and how much the rest.

Tessera's run also times scoring every customer (P(alive), expected purchases, discounted CLV
over 52 weeks and over 365 days), outside the comparison.

Each method runs in a subprocess of its own, so its peak memory (ru_maxrss) is its own; the clock
runs from arrays in memory to fitted parameters. Parameters of all methods must agree: the JSON
gives the largest relative difference from Tessera's.

Target at 1,000,000 customers: Tessera at least 5x faster than lifetimes.

The customers: purchase rate ~ Gamma(r, alpha) per week, dropout after each repeat purchase with
probability ~ Beta(a, b) (CDNOW's estimates, Fader, Hardie & Lee 2005), first purchases spread
uniformly over the 39 weeks before week 39 and a calibration end at week 78. Purchases become
calendar weeks: frequency counts the weeks with a repeat purchase, recency and T are weeks from
the first purchase's week, as lifetimes' summary_data_from_transaction_data(freq="W") does.
Mean repeat-purchase values are Gamma-Gamma with p 6.25, q 3.74, v 15.44. Whole calendar weeks
are not the continuous-time model, so the fits land away from the simulated parameters (alpha
most, 6.0 for 4.41); what must match is the fitters' results on the same data.

Then recommendations and propensity on a shop of the same number of customers built straight
from SQL with planted structure (bench/predictive_shop.py: about 20M events and 3.7M order items
at 1,000,000): the recommendation models as dbt runs them (product_interactions,
customer_recommendations, customer_product_traits, recommendation_evaluations; seconds per model
from dbt's results), and the propensity step of the demo's two models (features, training,
scoring with explanations, write). Each in a process of its own; each JSON part has its
evaluation figures beside the baselines'. Target at 1,000,000 customers: each under 60 s.

    python bench/predictive.py [--customers 1000000] [--seed 42]
        [--part clv|recommendations|propensity ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from orchestration.predictive.clv import (
    BgNbdFit,
    GammaGammaFit,
    bgnbd_log_likelihood,
    discounted_clv,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    p_alive,
)

TARGET_CUSTOMERS = 1_000_000
TARGET_SPEEDUP = 5.0
TARGET_SECONDS = 60.0
PARTS = ("clv", "recommendations", "propensity")
RECOMMENDATION_MODELS = (
    "product_interactions",
    "customer_recommendations",
    "customer_product_traits",
    "recommendation_evaluations",
)
METHODS = ("tessera", "lifetimes", "lifetimes_weighted")
SIMULATED_FROM = {
    "bgnbd": {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
}
FIRST_WEEKS = 39.0
CALIBRATION_END_WEEK = 78.0
BGNBD_PARAMS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMS = ("p", "q", "v")


def simulate(customers: int, seed: int) -> dict[str, np.ndarray]:
    """frequency, recency, T (whole weeks) and monetary_value per customer."""
    rng = np.random.default_rng(seed)
    bg, gg = SIMULATED_FROM["bgnbd"], SIMULATED_FROM["gamma_gamma"]
    rate = rng.gamma(bg["r"], 1 / bg["alpha"], customers)
    dropout = rng.beta(bg["a"], bg["b"], customers)
    first = rng.uniform(0, FIRST_WEEKS, customers)
    first_week = np.floor(first)

    # Purchase after purchase for the customers still buying: an exponential gap, a purchase if it
    # falls before the calibration end, then dropout with the customer's probability.
    buyer, week = [np.arange(customers)], [first_week]
    active = np.arange(customers)
    clock = first.copy()
    while active.size:
        clock[active] += rng.exponential(1 / rate[active])
        active = active[clock[active] < CALIBRATION_END_WEEK]
        buyer.append(active)
        week.append(np.floor(clock[active]))
        active = active[rng.random(active.size) >= dropout[active]]

    buyer_all, week_all = np.concatenate(buyer), np.concatenate(week)
    order = np.lexsort((week_all, buyer_all))
    buyer_all, week_all = buyer_all[order], week_all[order]
    new_week = np.ones(buyer_all.size, dtype=bool)
    new_week[1:] = (buyer_all[1:] != buyer_all[:-1]) | (week_all[1:] != week_all[:-1])
    frequency = np.bincount(buyer_all[new_week], minlength=customers) - 1
    last_week = np.full(customers, -np.inf)
    np.maximum.at(last_week, buyer_all, week_all)

    repeat = frequency > 0
    scale = rng.gamma(gg["q"], 1 / gg["v"], customers)
    monetary_value = np.zeros(customers)
    monetary_value[repeat] = (
        rng.gamma(gg["p"] * frequency[repeat], 1 / scale[repeat]) / (frequency[repeat])
    )
    return {
        "frequency": frequency.astype(float),
        "recency": last_week - first_week,
        "T": CALIBRATION_END_WEEK - first_week,
        "monetary_value": monetary_value,
    }


def run_tessera(data: dict[str, np.ndarray]) -> dict[str, Any]:
    steps: dict[str, float] = {}
    started = time.perf_counter()
    bg = fit_bgnbd(data["frequency"], data["recency"], data["T"])
    steps["bgnbd"] = time.perf_counter() - started
    gg = fit_gamma_gamma(data["frequency"], data["monetary_value"])
    steps["gamma_gamma"] = time.perf_counter() - started - steps["bgnbd"]
    return {
        "steps": steps,
        "bgnbd": {name: getattr(bg, name) for name in BGNBD_PARAMS},
        "gamma_gamma": {name: getattr(gg, name) for name in GAMMA_GAMMA_PARAMS},
        "scoring_seconds": score_tessera(bg, gg, data),
    }


def score_tessera(bg: BgNbdFit, gg: GammaGammaFit, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Seconds to score every customer with the fitted models; not part of the comparison.

    The 365-day CLV scores the same customers in days (weeks times 7 plus a random day of the
    week, alpha times 7): its cost grows with the distinct (frequency, T) pairs times the periods.
    """
    customers = (data["frequency"], data["recency"], data["T"])
    rng = np.random.default_rng(0)
    age_days = data["T"] * 7 + rng.integers(0, 7, data["T"].size)
    recency_days = np.where(
        data["frequency"] > 0, data["recency"] * 7 + rng.integers(0, 7, data["T"].size), 0.0
    )
    in_days = (data["frequency"], np.minimum(recency_days, age_days), age_days)
    bg_days = replace(bg, alpha=bg.alpha * 7)
    spend = data["monetary_value"]
    runs = {
        "p_alive": lambda: p_alive(bg, *customers),
        "expected_purchases_52_weeks": lambda: expected_purchases(bg, 52, *customers),
        "discounted_clv_52_weeks": lambda: discounted_clv(
            bg, gg, *customers, spend, 52, 0.1, "week"
        ),
        "discounted_clv_365_days": lambda: discounted_clv(
            bg_days, gg, *in_days, spend, 365, 0.1, "day"
        ),
    }
    seconds = {}
    for name, run in runs.items():
        started = time.perf_counter()
        run()
        seconds[name] = round(time.perf_counter() - started, 3)
    return seconds


def _lifetimes() -> tuple[Any, Any]:
    # lifetimes 0.11.3 predates pandas 3: importing it sets a pandas option that pandas 3 has
    # deprecated, and its autograd-based fits warn under numpy 2. The fits themselves need no
    # shim; the warnings are silenced here, in the benchmark only.
    warnings.filterwarnings("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    return BetaGeoFitter, GammaGammaFitter


def run_lifetimes(data: dict[str, np.ndarray]) -> dict[str, Any]:
    import pandas as pd

    beta_geo_fitter, gamma_gamma_fitter = _lifetimes()
    frame = pd.DataFrame(data)
    repeat = frame[frame["frequency"] > 0]
    steps: dict[str, float] = {}
    started = time.perf_counter()
    bg = beta_geo_fitter().fit(frame["frequency"], frame["recency"], frame["T"])
    steps["bgnbd"] = time.perf_counter() - started
    gg = gamma_gamma_fitter().fit(repeat["frequency"], repeat["monetary_value"])
    steps["gamma_gamma"] = time.perf_counter() - started - steps["bgnbd"]
    return {
        "steps": steps,
        "bgnbd": {name: float(bg.params_[name]) for name in BGNBD_PARAMS},
        "gamma_gamma": {name: float(gg.params_[name]) for name in GAMMA_GAMMA_PARAMS},
    }


def run_lifetimes_weighted(data: dict[str, np.ndarray]) -> dict[str, Any]:
    import pandas as pd

    beta_geo_fitter, gamma_gamma_fitter = _lifetimes()
    frame = pd.DataFrame(data)
    steps: dict[str, float] = {}
    started = time.perf_counter()
    rows = frame.groupby(["frequency", "recency", "T"]).size().reset_index(name="weights")
    bg = beta_geo_fitter().fit(
        rows["frequency"], rows["recency"], rows["T"], weights=rows["weights"]
    )
    steps["bgnbd"] = time.perf_counter() - started
    repeat = frame[frame["frequency"] > 0]
    spend = repeat.groupby(["frequency", "monetary_value"]).size().reset_index(name="weights")
    gg = gamma_gamma_fitter().fit(
        spend["frequency"], spend["monetary_value"], weights=spend["weights"]
    )
    steps["gamma_gamma"] = time.perf_counter() - started - steps["bgnbd"]
    return {
        "steps": steps,
        "rows": {"bgnbd": len(rows), "gamma_gamma": len(spend)},
        "bgnbd": {name: float(bg.params_[name]) for name in BGNBD_PARAMS},
        "gamma_gamma": {name: float(gg.params_[name]) for name in GAMMA_GAMMA_PARAMS},
    }


_RUNNERS = {
    "tessera": run_tessera,
    "lifetimes": run_lifetimes,
    "lifetimes_weighted": run_lifetimes_weighted,
}


def run_method(method: str, path: Path) -> dict[str, Any]:
    """One method on the saved customers, in this process; what a subprocess reports.

    The clock covers the fits (and lifetimes_weighted's grouping), not imports or the loading
    of the arrays into each library's input shape.
    """
    with np.load(path) as saved:
        data = {name: saved[name] for name in saved.files}
    result = _RUNNERS[method](data)
    seconds = sum(result["steps"].values())
    result["steps"] = {name: round(value, 3) for name, value in result["steps"].items()}
    return {
        "seconds": round(seconds, 3),
        **result,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _in_subprocess(flag: str, name: str, path: Path) -> dict[str, Any]:
    """This script run again with ``flag name --data path``: the JSON its last line prints."""
    completed = subprocess.run(
        [sys.executable, __file__, flag, name, "--data", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _log_likelihoods(data: dict[str, np.ndarray], result: dict[str, Any]) -> dict[str, float]:
    """Both models' total log-likelihood at a method's parameters, by the same code for all."""
    bg = [result["bgnbd"][name] for name in BGNBD_PARAMS]
    gg = [result["gamma_gamma"][name] for name in GAMMA_GAMMA_PARAMS]
    return {
        "bgnbd": round(
            float(bgnbd_log_likelihood(bg, data["frequency"], data["recency"], data["T"]).sum()), 3
        ),
        "gamma_gamma": round(
            float(gamma_gamma_log_likelihood(gg, data["frequency"], data["monetary_value"]).sum()),
            3,
        ),
    }


def _max_relative_difference(result: dict[str, Any], reference: dict[str, Any]) -> float:
    return max(
        abs(result[model][name] / reference[model][name] - 1)
        for model in ("bgnbd", "gamma_gamma")
        for name in reference[model]
    )


def _target(customers: int, seconds: float) -> dict[str, Any]:
    return {
        "customers": TARGET_CUSTOMERS,
        "seconds": TARGET_SECONDS,
        "measured": customers == TARGET_CUSTOMERS,
        "meets_target": customers == TARGET_CUSTOMERS and seconds < TARGET_SECONDS,
    }


def _evaluations(rows: list[Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row.model, {"baseline": row.baseline, "n": row.n})[row.metric] = {
            "value": round(row.value, 4),
            "baseline": round(row.baseline_value, 4),
        }
    return out


def run_recommendations(path: Path) -> dict[str, Any]:
    """The recommendation models on the shop at ``path``, as ``dbt run`` builds them."""
    from orchestration.dbt_project import run_dbt
    from orchestration.predictive.evaluations import from_frame
    from orchestration.warehouse import Warehouse

    warehouse = Warehouse(target="local", duckdb_path=path)
    run_dbt(["seed", "--select", "recommendation_exclusions"], warehouse, quiet=True)
    started = time.perf_counter()
    result = run_dbt(["run", "--select", *RECOMMENDATION_MODELS], warehouse, quiet=True)
    seconds = time.perf_counter() - started
    models = {
        r.node.name: round(r.execution_time, 3)
        for r in result.results
        if r.node.name in RECOMMENDATION_MODELS
    }
    rows = from_frame(warehouse.query_frame("select * from marts.recommendation_evaluations"))
    counts = warehouse.query(
        "select count(*), count(distinct customer_id) from marts.customer_recommendations"
    )[0]
    return {
        "seconds": round(seconds, 3),
        "model_seconds": round(sum(models.values()), 3),
        "models": models,
        "recommendations": int(counts[0]),
        "customers_with_recommendations": int(counts[1]),
        "evaluation": _evaluations(rows),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def run_propensity_part(path: Path) -> dict[str, Any]:
    """The demo's propensity models on the shop at ``path``, as of its last day."""
    from predictive_shop import AS_OF

    from orchestration.predictive.propensity import run_propensity
    from orchestration.warehouse import Warehouse

    warehouse = Warehouse(target="local", duckdb_path=path)
    started = time.perf_counter()
    result = run_propensity(
        warehouse, {"tessera_propensity_as_of": str(AS_OF)}, path.parent / "output"
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "steps": dict(result.seconds),
        "models": {
            model.spec.name: {
                "kind": model.kind,
                "training_customers": model.evaluation.train_customers,
                "held_out_customers": model.evaluation.test_customers,
                "customers_scored": result.customers_scored[model.spec.name],
            }
            for model in result.models
        },
        "refused": dict(result.refused),
        "evaluation": _evaluations(list(result.evaluations)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _shop(customers: int, seed: int, folder: Path) -> tuple[Path, dict[str, Any]]:
    import duckdb
    from predictive_shop import build

    path = folder / "shop.duckdb"
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        rows = build(con, customers, seed)
    finally:
        con.close()
    return path, {"rows": rows, "build_seconds": round(time.perf_counter() - started, 2)}


def shop_parts(customers: int, seed: int, parts: list[str]) -> dict[str, Any]:
    """Recommendations and propensity on one shop, each part in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="tessera-bench-shop-") as folder:
        path, shop = _shop(customers, seed, Path(folder))
        results: dict[str, Any] = {"shop": shop}
        for part in parts:
            result = _in_subprocess("--run-part", part, path)
            result["target"] = _target(customers, result["seconds"])
            results[part] = result
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=TARGET_CUSTOMERS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--part", action="append", choices=PARTS)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--run-part", choices=PARTS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args.data)))
        return
    if args.run_part:
        run = run_recommendations if args.run_part == "recommendations" else run_propensity_part
        print(json.dumps(run(args.data)))
        return
    parts = args.part or list(PARTS)
    report: dict[str, Any] = {
        "benchmark": "predictive",
        "customers": args.customers,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
    }
    if "clv" in parts:
        report["clv"] = clv_part(args.customers, args.seed)
    shop = [part for part in parts if part != "clv"]
    if shop:
        report |= shop_parts(args.customers, args.seed, shop)
    print(json.dumps(report, indent=2))


def clv_part(customers: int, seed: int) -> dict[str, Any]:
    """The CLV fits of Tessera and lifetimes on one simulated customer base (module docstring)."""
    started = time.perf_counter()
    data = simulate(customers, seed)
    simulate_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as folder:
        path = Path(folder) / "customers.npz"
        np.savez(path, **data)
        methods = {method: _in_subprocess("--method", method, path) for method in METHODS}

    tessera = methods["tessera"]
    for result in methods.values():
        result["log_likelihood"] = _log_likelihoods(data, result)
        result["bgnbd"] = {name: round(value, 6) for name, value in result["bgnbd"].items()}
        result["gamma_gamma"] = {
            name: round(value, 6) for name, value in result["gamma_gamma"].items()
        }
    speedup = methods["lifetimes"]["seconds"] / tessera["seconds"]
    distinct = np.unique(np.column_stack([data["frequency"], data["recency"], data["T"]]), axis=0)
    repeat = data["frequency"] > 0
    return {
        "time_unit": "week",
        "repeat_buyers": int(repeat.sum()),
        "distinct_frequency_recency_T": len(distinct),
        "mean_frequency": round(float(data["frequency"].mean()), 3),
        "simulate_seconds": round(simulate_seconds, 2),
        "simulated_from": SIMULATED_FROM,
        "methods": methods,
        "lifetimes_over_tessera": round(speedup, 1),
        "lifetimes_weighted_over_tessera": round(
            methods["lifetimes_weighted"]["seconds"] / tessera["seconds"], 1
        ),
        "max_relative_parameter_difference": {
            method: float(f"{_max_relative_difference(methods[method], tessera):.2g}")
            for method in METHODS[1:]
        },
        "target": {
            "customers": TARGET_CUSTOMERS,
            "speedup_over_lifetimes": TARGET_SPEEDUP,
            "measured": customers == TARGET_CUSTOMERS,
            "meets_target": customers == TARGET_CUSTOMERS and speedup >= TARGET_SPEEDUP,
        },
    }


if __name__ == "__main__":
    main()
