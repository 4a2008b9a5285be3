"""Product recommendations on DuckDB and Postgres: the session's demo warehouses (1,500 customers,
with broken rows) against an independent Python recomputation of the recommender.

The reference below follows the documentation of macro recommend_products step by step in
pandas: if the SQL and it disagree, one of them does not do what the docs say.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pytest

from orchestration.project import ProjectConfig
from orchestration.warehouse import Warehouse
from tests.dbt.frames import timed_frame

pytestmark = pytest.mark.integration

# The caps of macro recommendation_settings (not vars).
SEED_CAP = 20
MIN_CO_CUSTOMERS = 2
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Settings:
    count: int
    lookback_days: int
    half_life_days: float
    allow_repurchase: bool
    holdout_days: int

    @property
    def neighbour_cap(self) -> int:
        return max(self.count, 5)

    @classmethod
    def load(cls) -> Settings:
        config = ProjectConfig.load()
        return cls(
            count=int(config["tessera_recommendation_count"]),
            lookback_days=int(config["tessera_recommendation_lookback_days"]),
            half_life_days=float(config["tessera_recommendation_half_life_days"]),
            allow_repurchase=bool(config["tessera_recommendation_allow_repurchase"]),
            holdout_days=int(config["tessera_recommendation_holdout_days"]),
        )


@dataclass(frozen=True)
class Pick:
    product_id: str
    source: str
    score: float


@dataclass(frozen=True)
class Reference:
    """The reference recommender's lists, and the scores of every candidate (for ties)."""

    picks: dict[str, list[Pick]]
    cooccurrence: dict[str, dict[str, float]]
    relative_popularity: dict[str, float]

    def score(self, customer: str, pick: Pick) -> float:
        if pick.source == "item_cooccurrence":
            return self.cooccurrence[customer][pick.product_id]
        return self.relative_popularity[pick.product_id]


def _interactions(warehouse: Warehouse) -> pd.DataFrame:
    frame = timed_frame(warehouse, "select * from marts.product_interactions")
    frame["interaction_weight"] = frame["interaction_weight"].astype(float)
    frame["day"] = frame["interacted_at"].dt.date
    return frame


def _targets(warehouse: Warehouse) -> set[str]:
    return {row[0] for row in warehouse.query("select customer_id from marts.customers")}


def _bytewise(value: str) -> bytes:
    return value.encode()


def reference(
    interactions: pd.DataFrame,
    targets: set[str],
    settings: Settings,
    cutoff: date | None = None,
    method: str = "item_cooccurrence",
) -> Reference:
    """Recommendations as macro recommend_products documents them, without exclusions."""
    seen = interactions if cutoff is None else interactions[interactions["day"] <= cutoff]
    as_of = seen["interacted_at"].max()
    age = seen["day"].map(lambda day: (as_of.date() - day).days)
    recent = seen[(age >= 0) & (age < settings.lookback_days)].copy()
    recent["recency_weight"] = recent["interaction_weight"] * 0.5 ** (
        age[recent.index] / settings.half_life_days
    )
    products = recent.groupby("product_id").agg(
        category=("category", "max"), popularity=("recency_weight", "sum")
    )
    order = sorted(products.index, key=_bytewise)
    popularity = products["popularity"].to_dict()
    category_of = products["category"].to_dict()
    popular = sorted(order, key=lambda p: -popularity[p])
    top_popularity = max(p for p in popularity.values() if p > 0)
    relative = {product: value / top_popularity for product, value in popularity.items()}
    purchased: set[tuple[str, str]] = set()
    if not settings.allow_repurchase:
        bought = seen[(seen["interaction_kind"] == "purchase") & seen["customer_id"].isin(targets)]
        purchased = set(zip(bought["customer_id"], bought["product_id"], strict=True))

    scored: dict[str, dict[str, float]] = {}
    top_category: dict[str, str] = {}
    if method == "item_cooccurrence":
        scored = _cooccurrence_scores(recent, targets, settings, order)
        weights = (
            recent[recent["category"].notna()]
            .groupby(["customer_id", "category"])["recency_weight"]
            .sum()
        )
        for (customer, category), _weight in sorted(
            weights.items(), key=lambda item: (item[0][0], -item[1], _bytewise(item[0][1]))
        ):
            top_category.setdefault(customer, category)

    picks: dict[str, list[Pick]] = {}
    for customer in targets:
        candidates = scored.get(customer, {})
        ranked = sorted(
            (p for p in candidates if (customer, p) not in purchased),
            key=lambda p: (-candidates[p], _bytewise(p)),
        )
        chosen = [Pick(p, "item_cooccurrence", candidates[p]) for p in ranked[: settings.count]]
        taken = {pick.product_id for pick in chosen}
        fills = []
        if customer in top_category:
            category = top_category[customer]
            fills += [(p, "category_popularity") for p in popular if category_of[p] == category]
        fills += [(p, "popularity") for p in popular]
        for product, source in fills:
            if len(chosen) == settings.count:
                break
            if product not in taken and (customer, product) not in purchased:
                chosen.append(Pick(product, source, relative[product]))
                taken.add(product)
        picks[customer] = chosen
    return Reference(picks, scored, relative)


def _cooccurrence_scores(
    recent: pd.DataFrame, targets: set[str], settings: Settings, order: list[str]
) -> dict[str, dict[str, float]]:
    key = {product: index for index, product in enumerate(order)}
    affinities = (
        recent.groupby(["customer_id", "product_id"])
        .agg(affinity=("recency_weight", "max"), last_at=("interacted_at", "max"))
        .reset_index()
    )
    affinities = affinities[affinities["affinity"] > 0]
    affinities["key"] = affinities["product_id"].map(key)
    affinities = affinities.sort_values(
        ["customer_id", "affinity", "last_at", "key"], ascending=[True, False, False, True]
    )
    seeds = affinities.groupby("customer_id").head(SEED_CAP)
    norms = seeds.groupby("product_id")["affinity"].apply(lambda a: math.sqrt((a * a).sum()))
    pairs = seeds.merge(seeds, on="customer_id", suffixes=("", "_other"))
    pairs = pairs[pairs["key"] < pairs["key_other"]]
    pairs["co_weight"] = pairs["affinity"] * pairs["affinity_other"]
    co = pairs.groupby(["product_id", "product_id_other"]).agg(
        co_weight=("co_weight", "sum"), customers=("co_weight", "size")
    )
    similar: dict[str, list[tuple[str, float]]] = {
        product: [(product, 1.0)] for product in norms.index
    }
    for (first, second), row in co[co["customers"] >= MIN_CO_CUSTOMERS].iterrows():
        similarity = row["co_weight"] / (norms[first] * norms[second])
        similar[first].append((second, similarity))
        similar[second].append((first, similarity))
    neighbours = {
        product: sorted(found, key=lambda n: (-n[1], key[n[0]]))[: settings.neighbour_cap]
        for product, found in similar.items()
    }
    scores: dict[str, dict[str, float]] = {}
    for row in seeds[seeds["customer_id"].isin(targets)].itertuples():
        for product, similarity in neighbours[row.product_id]:
            customer_scores = scores.setdefault(row.customer_id, {})
            customer_scores[product] = customer_scores.get(product, 0.0) + row.affinity * similarity
    return scores


def _recommendations(warehouse: Warehouse) -> dict[str, list[Pick]]:
    rows = warehouse.query(
        "select customer_id, rank, product_id, recommendation_source, score "
        "from marts.customer_recommendations"
    )
    picks: dict[str, list[tuple[int, Pick]]] = {}
    for customer, rank, product, source, score in rows:
        picks.setdefault(customer, []).append((rank, Pick(product, source, float(score))))
    return {customer: [pick for _, pick in sorted(ranked)] for customer, ranked in picks.items()}


def test_every_customer_gets_the_count_of_recommendations_ranked_from_one(
    warehouse: Warehouse,
) -> None:
    count = Settings.load().count
    rows = warehouse.query("select customer_id, rank from marts.customer_recommendations")
    ranks: dict[str, list[int]] = {}
    for customer, rank in rows:
        ranks.setdefault(customer, []).append(rank)
    assert set(ranks) == _targets(warehouse)
    # 499 products: nobody runs out of products to recommend.
    assert {tuple(sorted(found)) for found in ranks.values()} == {tuple(range(1, count + 1))}
    erased = warehouse.query("select customer_id from marts.customer_erasures")
    assert erased, "the demo data erases some customers"
    assert not {customer for (customer,) in erased} & set(ranks)


def test_nobody_is_recommended_a_product_they_bought_or_an_excluded_one(
    warehouse: Warehouse,
) -> None:
    bought_again = warehouse.query("""
        select count(*)
        from marts.customer_recommendations as recommendations
        inner join marts.product_interactions as interactions
            on recommendations.customer_id = interactions.customer_id
            and recommendations.product_id = interactions.product_id
        where interactions.interaction_kind = 'purchase'
    """)[0][0]
    excluded = warehouse.query("""
        select count(*)
        from marts.customer_recommendations
        where product_id in (select product_id from reference.recommendation_exclusions)
    """)[0][0]
    buyers_recommended = warehouse.query("""
        select count(distinct customer_id)
        from marts.product_interactions
        where interaction_kind = 'purchase'
            and customer_id in (select customer_id from marts.customer_recommendations)
    """)[0][0]
    assert (bought_again, excluded) == (0, 0)
    assert buyers_recommended > 500


def test_interactions_are_the_completed_items_and_the_product_tracks(warehouse: Warehouse) -> None:
    items = warehouse.query("""
        select count(*) from marts.order_items
        where order_status = 'completed' and customer_id is not null and product_id is not null
    """)[0][0]
    events = warehouse.query("""
        select event_name, properties from marts.customer_events
        where event_type = 'track' and customer_id is not null
            and event_name in ('Product Viewed', 'Product Added')
    """)
    expected = {"purchase": items, "view": 0, "add_to_cart": 0}
    for name, properties in events:
        try:
            product = json.loads(properties).get("product_id")
        except (TypeError, ValueError, AttributeError):
            continue
        if product is not None and str(product).strip():
            expected["view" if name == "Product Viewed" else "add_to_cart"] += 1
    counts = dict(
        warehouse.query(
            "select interaction_kind, count(*) from marts.product_interactions group by 1"
        )
    )
    assert counts == expected
    assert min(expected.values()) > 1_000


def test_recommendations_are_the_reference_recommender_s(warehouse: Warehouse) -> None:
    settings = Settings.load()
    expected = reference(_interactions(warehouse), _targets(warehouse), settings)
    actual = _recommendations(warehouse)
    assert set(actual) == set(expected.picks)
    by_source: dict[str, int] = {}
    for customer, picks in actual.items():
        wanted = expected.picks[customer]
        assert [p.source for p in picks] == [p.source for p in wanted], customer
        for pick, want in zip(picks, wanted, strict=True):
            # A product tied with the reference's on score may stand in its place.
            assert pick.score == pytest.approx(want.score, abs=TOLERANCE), customer
            assert expected.score(customer, pick) == pytest.approx(want.score, abs=TOLERANCE), (
                customer
            )
            by_source[pick.source] = by_source.get(pick.source, 0) + 1
    # Both steps are exercised: customers with history, and customers without.
    assert by_source["item_cooccurrence"] > 1_000
    assert by_source["popularity"] > 100


def test_evaluation_metrics_are_the_reference_recommender_s_on_the_held_out_days(
    warehouse: Warehouse,
) -> None:
    settings = Settings.load()
    interactions = _interactions(warehouse)
    targets = _targets(warehouse)
    cutoff = interactions["interacted_at"].max().date() - timedelta(days=settings.holdout_days)
    held_out = interactions[
        (interactions["interaction_kind"] == "purchase")
        & (interactions["day"] > cutoff)
        & interactions["customer_id"].isin(targets)
    ]
    bought = held_out.groupby("customer_id")["product_id"].agg(set).to_dict()
    judged = set(bought)
    metrics = {}
    for method, side in (("item_cooccurrence", "value"), ("popularity", "baseline_value")):
        picks = reference(interactions, judged, settings, cutoff, method).picks
        hits = {c: len({p.product_id for p in picks[c]} & bought[c]) for c in judged}
        k = settings.count
        metrics[(f"precision_at_{k}", side)] = sum(h / k for h in hits.values()) / len(judged)
        metrics[(f"recall_at_{k}", side)] = sum(hits[c] / len(bought[c]) for c in judged) / len(
            judged
        )
        metrics[(f"hit_rate_at_{k}", side)] = sum(h > 0 for h in hits.values()) / len(judged)

    rows = warehouse.query(
        "select metric, value, baseline_value, evaluated_on, n, model, baseline, "
        "higher_is_better from marts.recommendation_evaluations"
    )
    assert len(rows) == 3
    for metric, value, baseline_value, evaluated_on, n, model, baseline, higher in rows:
        assert (evaluated_on, n, model, baseline, higher) == (
            cutoff,
            len(judged),
            "recommendations",
            "popularity",
            True,
        )
        assert value == pytest.approx(metrics[(metric, "value")], abs=TOLERANCE), metric
        assert baseline_value == pytest.approx(
            metrics[(metric, "baseline_value")], abs=TOLERANCE
        ), metric
    assert len(judged) > 20


def test_product_traits_list_the_recommendations_and_favourite_categories(
    warehouse: Warehouse,
) -> None:
    recommendations = _recommendations(warehouse)
    rows = warehouse.query(
        "select customer_id, top_category, product_affinity, recommended_products, "
        "top_recommended_product from marts.customer_product_traits"
    )
    assert {row[0] for row in rows} == _targets(warehouse)
    with_category = 0
    for customer, top, affinity, listed, first in rows:
        products = [pick.product_id for pick in recommendations[customer]]
        assert (listed, first) == (",".join(products), products[0])
        if top is not None:
            with_category += 1
            categories = affinity.split(",")
            assert categories[0] == top and 1 <= len(categories) <= 3
            assert len(set(categories)) == len(categories)
        else:
            assert affinity is None
    assert with_category > 500
