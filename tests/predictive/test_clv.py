"""BG/NBD and Gamma-Gamma: parameter recovery on simulated customers, likelihoods against a plain
closed-form evaluation, the published CDNOW estimates, predictions and degenerate input."""

from __future__ import annotations

import csv
import decimal
import importlib.util
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scipy.special import hyp2f1

from orchestration.predictive.clv import (
    MAX_DROPOUT_SHAPE,
    BgNbdFit,
    GammaGammaFit,
    PredictiveInputError,
    bgnbd_log_likelihood,
    discounted_clv,
    expected_average_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    p_alive,
)

# CDNOW's published estimates, per week (Fader, Hardie & Lee 2005, both papers).
TRUE_BG = BgNbdFit(r=0.24, alpha=4.41, a=0.79, b=2.43, log_likelihood=math.nan, n_customers=0)
TRUE_GG = GammaGammaFit(p=6.25, q=3.74, v=15.44, log_likelihood=math.nan, n_customers=0)
# The Fisher information at these parameters, with T from 39 to 78 weeks, puts the standard error
# of b at 10.4 / sqrt(customers) relative and of Gamma-Gamma v at 7.5 / sqrt(repeat buyers): with
# 500,000 customers (about 235,000 repeat buyers) every parameter's 5% bound is over 3 standard
# errors away. At 20,000 customers each of 5 seeds tried missed 5% on some parameter.
CUSTOMERS = 500_000
FUTURE_WEEKS = 39.0


@dataclass(frozen=True)
class Simulated:
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray
    future_purchases: np.ndarray


def simulate(rng: np.random.Generator, customers: int, future: float) -> Simulated:
    """Customers drawn from TRUE_BG and TRUE_GG, exactly as the models describe them.

    Purchase rate lambda ~ Gamma(r, alpha); after each repeat purchase the customer leaves with
    probability p ~ Beta(a, b), so the repeat purchase they leave after is Geometric(p). Given
    n Poisson purchases in (0, T], the x-th of them falls at T times a Beta(x, n - x + 1) order
    statistic. The mean of x order values, each Gamma(p, nu) with nu ~ Gamma(q, v), is
    Gamma(p x, nu) / x. T is whole weeks from 39 to 78: weekly cohorts of first purchases.
    """
    rate = rng.gamma(TRUE_BG.r, 1 / TRUE_BG.alpha, customers)
    dropout = rng.beta(TRUE_BG.a, TRUE_BG.b, customers)
    age = rng.integers(39, 79, customers).astype(float)
    last = rng.geometric(dropout)
    purchases = rng.poisson(rate * age)
    frequency = np.minimum(last, purchases)
    repeat = frequency > 0
    recency = np.zeros(customers)
    recency[repeat] = age[repeat] * rng.beta(
        frequency[repeat], purchases[repeat] - frequency[repeat] + 1
    )
    # A customer still alive at T goes on at the same rate until their last purchase.
    alive = last > purchases
    future_purchases = np.where(
        alive, np.minimum(last - purchases, rng.poisson(rate * future)), 0
    ).astype(float)
    scale = rng.gamma(TRUE_GG.q, 1 / TRUE_GG.v, customers)
    monetary_value = np.zeros(customers)
    monetary_value[repeat] = (
        rng.gamma(TRUE_GG.p * frequency[repeat], 1 / scale[repeat]) / frequency[repeat]
    )
    return Simulated(frequency.astype(float), recency, age, monetary_value, future_purchases)


@pytest.fixture(scope="module")
def simulated() -> Simulated:
    return simulate(np.random.default_rng(20050501), CUSTOMERS, FUTURE_WEEKS)


@pytest.fixture(scope="module")
def bg_fit(simulated: Simulated) -> BgNbdFit:
    return fit_bgnbd(simulated.frequency, simulated.recency, simulated.T)


def _cdnow() -> dict[str, np.ndarray]:
    """CDNOW's 2,357 customers (weeks), as shipped with the lifetimes package."""
    # Found without importing lifetimes, which takes seconds.
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(spec.submodule_search_locations[0]) / "datasets"
    with (folder / "cdnow_customers_summary_with_transactions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {column: np.array([float(row[column]) for row in rows]) for column in rows[0]}


def _relative_errors(fit: object, truth: object, names: tuple[str, ...]) -> dict[str, float]:
    return {name: abs(getattr(fit, name) / getattr(truth, name) - 1) for name in names}


def test_fit_bgnbd_recovers_each_simulated_parameter_within_5_percent(
    simulated: Simulated, bg_fit: BgNbdFit
) -> None:
    errors = _relative_errors(bg_fit, TRUE_BG, ("r", "alpha", "a", "b"))
    assert max(errors.values()) < 0.05, errors
    assert bg_fit.n_customers == CUSTOMERS


@pytest.fixture(scope="module")
def gg_fit(simulated: Simulated) -> GammaGammaFit:
    return fit_gamma_gamma(simulated.frequency, simulated.monetary_value)


def test_fit_gamma_gamma_recovers_each_simulated_parameter_within_5_percent(
    simulated: Simulated, gg_fit: GammaGammaFit
) -> None:
    fit = gg_fit
    errors = _relative_errors(fit, TRUE_GG, ("p", "q", "v"))
    assert max(errors.values()) < 0.05, errors
    assert fit.n_customers == int(np.count_nonzero(simulated.frequency > 0))


def test_fits_reproduce_the_published_cdnow_estimates() -> None:
    cdnow = _cdnow()
    bg = fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    gg = fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    # Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426, LL -9582.4;
    # Gamma-Gamma p 6.25, q 3.74, gamma 15.44 on the 946 repeat buyers.
    assert (round(bg.r, 3), round(bg.alpha, 3), round(bg.a, 3), round(bg.b, 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    assert round(bg.log_likelihood, 1) == -9582.4
    assert (round(gg.p, 2), round(gg.q, 2), round(gg.v, 2)) == (6.25, 3.74, 15.45)
    assert gg.n_customers == 946
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in 39 weeks.
    assert expected_purchases(bg, 39, [2], [30.43], [38.86])[0] == pytest.approx(1.226, abs=5e-4)


def _bgnbd_closed_form(params: tuple[float, ...], x: int, t_x: float, age: float) -> float:
    r, alpha, a, b = params
    head = (
        math.lgamma(r + x)
        - math.lgamma(r)
        + r * math.log(alpha)
        + math.lgamma(a + b)
        + math.lgamma(b + x)
        - math.lgamma(b)
        - math.lgamma(a + b + x)
    )
    tail = (alpha + age) ** -(r + x)
    if x > 0:
        tail += a / (b + x - 1) * (alpha + t_x) ** -(r + x)
    return head + math.log(tail)


def _gamma_gamma_closed_form(params: tuple[float, ...], x: int, m: float) -> float:
    p, q, v = params
    return (
        math.lgamma(p * x + q)
        - math.lgamma(p * x)
        - math.lgamma(q)
        + q * math.log(v)
        + (p * x - 1) * math.log(m)
        + p * x * math.log(x)
        - (p * x + q) * math.log(v + x * m)
    )


CUSTOMERS_BY_HAND = [(0, 0.0, 38.86), (0, 0.0, 3.0), (1, 1.71, 38.86), (2, 30.43, 38.86),
                     (7, 29.43, 38.86), (25, 77.0, 78.0), (1, 0.5, 0.5)]  # fmt: skip


@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (2.5, 0.7, 3.1, 0.4)])
def test_bgnbd_log_likelihood_equals_the_closed_form_evaluated_customer_by_customer(
    params: tuple[float, ...],
) -> None:
    x, t_x, age = map(list, zip(*CUSTOMERS_BY_HAND, strict=True))
    expected = [_bgnbd_closed_form(params, *customer) for customer in CUSTOMERS_BY_HAND]
    np.testing.assert_allclose(bgnbd_log_likelihood(params, x, t_x, age), expected, rtol=1e-9)


@pytest.mark.parametrize("params", [(6.25, 3.74, 15.44), (0.8, 1.3, 120.0)])
def test_gamma_gamma_log_likelihood_equals_the_closed_form_for_repeat_buyers_only(
    params: tuple[float, ...],
) -> None:
    frequency = [0, 1, 2, 0, 6, 40]
    monetary_value = [0.0, 22.35, 11.77, math.nan, 150.0, 3.5]
    expected = [
        _gamma_gamma_closed_form(params, x, m)
        for x, m in zip(frequency, monetary_value, strict=True)
        if x > 0
    ]
    got = gamma_gamma_log_likelihood(params, frequency, monetary_value)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize("whole_weeks", [False, True], ids=["exact times", "whole weeks"])
def test_fit_log_likelihood_is_the_sum_over_customers_and_no_nearby_parameters_do_better(
    simulated: Simulated, bg_fit: BgNbdFit, whole_weeks: bool
) -> None:
    # The fit runs on distinct rows weighted by their counts: the weights must add up to the
    # customers' own sum, and the optimum must be one. Exact times group by sorting; whole weeks,
    # 500,000 customers in 26,426 rows, by counting.
    recency = np.floor(simulated.recency) if whole_weeks else simulated.recency
    data = (simulated.frequency, recency, simulated.T)
    fit = fit_bgnbd(*data) if whole_weeks else bg_fit
    best = (fit.r, fit.alpha, fit.a, fit.b)
    total = bgnbd_log_likelihood(best, *data).sum()
    assert fit.log_likelihood == pytest.approx(total, rel=1e-12)
    for index in range(4):
        for step in (0.999, 1.001):
            nearby = list(best)
            nearby[index] *= step
            assert bgnbd_log_likelihood(nearby, *data).sum() < total


def test_gamma_gamma_fit_log_likelihood_is_the_per_customer_sum_and_a_maximum(
    simulated: Simulated, gg_fit: GammaGammaFit
) -> None:
    # The fit maximises a summed form of the likelihood, not the per-customer one: both must
    # agree on the value and on where the maximum is.
    data = (simulated.frequency, simulated.monetary_value)
    best = (gg_fit.p, gg_fit.q, gg_fit.v)
    total = gamma_gamma_log_likelihood(best, *data).sum()
    assert gg_fit.log_likelihood == pytest.approx(total, rel=1e-12)
    for index in range(3):
        for step in (0.999, 1.001):
            nearby = list(best)
            nearby[index] *= step
            assert gamma_gamma_log_likelihood(nearby, *data).sum() < total


def test_p_alive_is_exactly_1_for_customers_without_repeat_purchases() -> None:
    alive = p_alive(TRUE_BG, [0, 0, 0], [0.0, 0.0, 0.0], [0.0, 10.0, 500.0])
    assert alive.tolist() == [1.0, 1.0, 1.0]


def test_p_alive_falls_as_a_repeat_buyer_stays_silent_longer() -> None:
    ages = np.array([20.0, 30.0, 40.0, 60.0, 100.0])
    alive = p_alive(TRUE_BG, np.full(5, 3.0), np.full(5, 20.0), ages)
    # At T = t_x nothing has gone quiet yet: P(alive) = 1 / (1 + a / (b + x - 1)).
    assert alive[0] == pytest.approx(1 / (1 + 0.79 / (2.43 + 2)), rel=1e-12)
    assert np.all(np.diff(alive) < 0)
    assert alive[-1] < 0.1


def test_expected_purchases_grow_with_the_horizon() -> None:
    horizons = [0.0, 1.0, 4.0, 13.0, 52.0, 520.0]
    customer = ([2.0], [30.43], [38.86])
    expected = [expected_purchases(TRUE_BG, t, *customer)[0] for t in horizons]
    assert expected[0] == 0.0
    assert all(later > earlier for earlier, later in itertools.pairwise(expected))


@pytest.mark.parametrize(
    ("params", "t"),
    [
        ((0.243, 4.414, 0.793, 2.426), 39.0),
        ((0.243, 4.414, 0.793, 2.426), 520.0),
        ((1.7, 30.0, 2.6, 0.9), 365.0),
        # From a = 20 up clv.py sums a series instead of the closed form.
        ((0.8215, 18.59, 25.0, 230.0), 52.0),
        ((0.8215, 18.59, 25.0, 230.0), 1.0),
    ],
)
def test_expected_purchases_equal_the_papers_formula_evaluated_directly(
    params: tuple[float, ...], t: float
) -> None:
    # clv.py evaluates eq. 10 after Euler's transformation of 2F1; this is eq. 10 as printed.
    r, alpha, a, b = params
    fit = BgNbdFit(r=r, alpha=alpha, a=a, b=b, log_likelihood=0.0, n_customers=0)
    for x, t_x, age in CUSTOMERS_BY_HAND:
        z = t / (alpha + age + t)
        head = (a + b + x - 1) / (a - 1)
        rest = 1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1, z
        )
        dead = a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
        direct = head * rest / (1 + dead)
        got = expected_purchases(fit, t, [x], [t_x], [age])[0]
        assert got == pytest.approx(direct, rel=1e-9)


def test_expected_purchases_are_continuous_across_a_equal_to_1() -> None:
    # The closed form divides by a - 1; near it clv.py averages either side.
    customer = ([3.0], [20.0], [40.0])

    def at(a: float) -> float:
        fit = BgNbdFit(r=0.5, alpha=5.0, a=a, b=2.0, log_likelihood=0.0, n_customers=0)
        return float(expected_purchases(fit, 26, *customer)[0])

    assert at(1.0) == pytest.approx((at(0.999) + at(1.001)) / 2, rel=1e-6)
    assert at(1 + 1e-9) == pytest.approx(at(1.0), rel=1e-9)
    assert at(0.999) > at(1.0) > at(1.001)


@pytest.mark.parametrize(
    "group",
    [
        ("every customer", lambda x: x >= 0),
        ("one-time buyers", lambda x: x == 0),
        ("one to four repeat purchases", lambda x: (x >= 1) & (x <= 4)),
        ("five or more repeat purchases", lambda x: x >= 5),
    ],
    ids=lambda group: group[0],
)
def test_expected_purchases_match_the_simulated_future_on_average(
    simulated: Simulated, group: tuple[str, Callable[[np.ndarray], np.ndarray]]
) -> None:
    # E[Y | x, t_x, T] averages to E[Y] over any group picked by (x, t_x, T), so the mean of
    # (simulated future - prediction at the true parameters) over n independent customers is
    # normal around 0 with standard error sd / sqrt(n); 4 standard errors fail by chance 6 times
    # in 100,000.
    chosen = group[1](simulated.frequency)
    predicted = expected_purchases(
        TRUE_BG,
        FUTURE_WEEKS,
        simulated.frequency[chosen],
        simulated.recency[chosen],
        simulated.T[chosen],
    )
    difference = simulated.future_purchases[chosen] - predicted
    standard_error = difference.std() / math.sqrt(difference.size)
    assert standard_error < 0.03 * predicted.mean()
    assert abs(difference.mean()) < 4 * standard_error


# The demo's BG/NBD fit before MAX_DROPOUT_SHAPE: its orders never stop, and a and b ran off
# together with a / (a + b) near 0.098.
RUNAWAY_BG = BgNbdFit(
    r=0.8215, alpha=18.59, a=2.098e5, b=1.929e6, log_likelihood=math.nan, n_customers=0
)
# (x, t_x, T) in weeks as the demo's customers have them: up to 14 repeat weeks in 104.
DEMO_CUSTOMERS = [(0, 0.0, 0.0), (0, 0.0, 12.0), (0, 0.0, 103.86), (1, 3.0, 5.0), (1, 28.1, 51.3),
                  (2, 30.43, 38.86), (4, 60.0, 98.0), (7, 29.43, 38.86), (14, 101.0, 103.86),
                  (25, 77.0, 78.0)]  # fmt: skip


def _expected_purchases_in_decimal(
    fit: BgNbdFit, t: float, x: int, t_x: float, age: float, digits: int = 60
) -> float:
    """Eq. 10 as printed, P(alive) times (a+b+x-1)/(a-1) [1 - (1-z)^(r+x) 2F1(r+x, b+x;
    a+b+x-1; z)], with the 2F1 series summed in `digits`-digit decimals: nothing overflows and
    the cancellation in 1 - ... costs digits the sum has to spare."""
    with decimal.localcontext() as context:
        context.prec = digits
        r, alpha, a, b, t, x, t_x, age = (
            Decimal(repr(float(value)))
            for value in (fit.r, fit.alpha, fit.a, fit.b, t, x, t_x, age)
        )
        c = a + b + x - 1
        z = t / (alpha + age + t)
        term, total, n = Decimal(1), Decimal(0), 0
        while True:
            total += term
            ratio = (r + x + n) * (b + x + n) / ((c + n) * (n + 1)) * z
            term *= ratio
            n += 1
            if ratio < 1 and term < Decimal(10) ** (5 - digits) * total:
                break
        if_alive = c / (a - 1) * (1 - (1 - z) ** (r + x) * total)
        dead = a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x) if x > 0 else 0
        return float(if_alive / (1 + dead))


@pytest.mark.parametrize("t", [1.0, 12.857, 52.0, 520.0])
def test_expected_purchases_stay_finite_and_exact_when_a_and_b_run_off_together(t: float) -> None:
    # The demo's fit (a = 2.1e5, b = 1.9e6) gave NaN for every customer: the closed form's
    # (1-z)^(a-1) underflowed to 0 while its 2F1 overflowed to inf.
    x, t_x, age = map(list, zip(*DEMO_CUSTOMERS, strict=True))
    got = expected_purchases(RUNAWAY_BG, t, x, t_x, age)
    expected = [
        _expected_purchases_in_decimal(RUNAWAY_BG, t, *customer) for customer in DEMO_CUSTOMERS
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_p_alive_and_discounted_clv_stay_finite_when_a_and_b_run_off_together() -> None:
    # Same fit: discounted CLV sums the same expected purchases period by period, so it was NaN
    # too; P(alive) must stay the closed form 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).
    x, t_x, age = map(list, zip(*DEMO_CUSTOMERS, strict=True))
    spend = [0.0, 0.0, 0.0, 40.0, 55.5, 22.35, 80.0, 40.0, 61.0, 12.0]
    alive = p_alive(RUNAWAY_BG, x, t_x, age)
    r, alpha, a, b = RUNAWAY_BG.r, RUNAWAY_BG.alpha, RUNAWAY_BG.a, RUNAWAY_BG.b
    odds = [
        a / (b + xi - 1) * ((alpha + ti) / (alpha + txi)) ** (r + xi) if xi > 0 else 0.0
        for xi, txi, ti in DEMO_CUSTOMERS
    ]
    np.testing.assert_allclose(alive, [1 / (1 + odd) for odd in odds], rtol=1e-12)
    undiscounted = discounted_clv(RUNAWAY_BG, TRUE_GG, x, t_x, age, spend, 52, 0.0, "week")
    value = expected_average_value(TRUE_GG, x, spend)
    np.testing.assert_allclose(
        undiscounted, expected_purchases(RUNAWAY_BG, 52, x, t_x, age) * value, rtol=1e-10
    )
    discounted = discounted_clv(RUNAWAY_BG, TRUE_GG, x, t_x, age, spend, 52, 0.1, "week")
    assert np.all(np.isfinite(discounted))
    assert np.all((discounted > 0) & (discounted < undiscounted))


def simulate_no_dropout(rng: np.random.Generator, customers: int) -> tuple[np.ndarray, ...]:
    """Customers as the demo generates them: a Geometric(0.45) number of orders, the first at a
    uniform time in 104 weeks and the rest uniform between it and the end, so nobody stops
    buying; summarised in whole weeks as customer_features does."""
    first = rng.uniform(0, 104, customers)
    repeats = rng.geometric(0.45, customers) - 1
    person = np.repeat(np.arange(customers), repeats)
    at = first[person] + rng.uniform(0, 1, person.size) * (104 - first[person])
    week = np.floor(at) - np.floor(first[person])
    pairs = np.unique(np.stack([person, week])[:, week > 0], axis=1)
    frequency = np.bincount(pairs[0].astype(int), minlength=customers).astype(float)
    recency = np.zeros(customers)
    np.maximum.at(recency, pairs[0].astype(int), pairs[1])
    return frequency, recency, np.floor(104) - np.floor(first)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_population_that_never_stops_buying_fits_and_predicts_finite_values(seed: int) -> None:
    # On such customers the fit ran a and b off together (a / (a + b) ~ 0.09) until b = 7e10
    # and stopped "not converged" with the gradient at 0.0025, or it ended near a = 2e5 and
    # every prediction was NaN. Now a and b stop at MAX_DROPOUT_SHAPE: the same dropout share.
    frequency, recency, age = simulate_no_dropout(np.random.default_rng(seed), 20_000)
    fit = fit_bgnbd(frequency, recency, age)
    assert max(fit.a, fit.b) <= MAX_DROPOUT_SHAPE
    assert 0.08 < fit.a / (fit.a + fit.b) < 0.11
    assert math.isfinite(fit.log_likelihood)
    expected = expected_purchases(fit, 52, frequency, recency, age)
    alive = p_alive(fit, frequency, recency, age)
    assert np.all(np.isfinite(expected)) and np.all(np.isfinite(alive))
    # Each customer's predicted year is between nothing and what they would buy never dropping
    # out, (r + x) 52 / (alpha + T), the Gamma posterior mean rate.
    ceiling = (fit.r + frequency) * 52 / (fit.alpha + age)
    assert np.all((expected > 0) & (expected < ceiling))


def _week_rate(annual: float) -> float:
    return (1 + annual) ** (7 / 365.25) - 1


@pytest.mark.parametrize("horizon", [52.0, 10.5])
def test_discounted_clv_sums_discounted_weekly_purchases_times_the_expected_value(
    horizon: float,
) -> None:
    customer = ([0.0, 2.0, 7.0], [0.0, 30.43, 29.43], [38.86, 38.86, 38.86])
    spend = [0.0, 22.35, 40.0]
    got = discounted_clv(TRUE_BG, TRUE_GG, *customer, spend, horizon, 0.1, "week")
    ends = [*range(1, math.ceil(horizon)), horizon]
    cumulative = [expected_purchases(TRUE_BG, end, *customer) for end in [0.0, *ends]]
    value = expected_average_value(TRUE_GG, customer[0], spend)
    expected = sum(
        (cumulative[k] - cumulative[k - 1]) * value / (1 + _week_rate(0.1)) ** end
        for k, end in enumerate(ends, start=1)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    undiscounted = discounted_clv(TRUE_BG, TRUE_GG, *customer, spend, horizon, 0.0, "week")
    np.testing.assert_allclose(undiscounted, cumulative[-1] * value, rtol=1e-10)


def test_discounted_clv_strictly_falls_as_the_discount_rate_rises() -> None:
    customer = ([0.0, 2.0, 12.0], [0.0, 30.43, 37.0], [38.86, 38.86, 38.86], [0.0, 22.35, 40.0])
    values = [
        discounted_clv(TRUE_BG, TRUE_GG, *customer, 52, rate, "week")
        for rate in (0.0, 0.05, 0.1, 0.3)
    ]
    assert all(np.all(later < earlier) for earlier, later in itertools.pairwise(values))
    # The same customers and year in days (alpha per day = 7 alpha per week): the same
    # purchases, and discounting by the day instead of the week changes them by under 0.2%.
    days_fit = BgNbdFit(r=0.24, alpha=4.41 * 7, a=0.79, b=2.43, log_likelihood=0, n_customers=0)
    in_days = [
        discounted_clv(
            days_fit,
            TRUE_GG,
            customer[0],
            np.multiply(customer[1], 7),
            np.multiply(customer[2], 7),
            customer[3],
            364,
            rate,
            "day",
        )
        for rate in (0.0, 0.1)
    ]
    np.testing.assert_allclose(in_days[0], values[0], rtol=1e-9)
    np.testing.assert_allclose(in_days[1], values[2], rtol=2e-3)


def test_one_time_buyers_are_worth_the_population_mean_whatever_their_monetary_value() -> None:
    value = expected_average_value(TRUE_GG, [0, 0, 0, 1], [0.0, math.nan, 99.0, 10.0])
    mean = 6.25 * 15.44 / (3.74 - 1)
    np.testing.assert_allclose(value[:3], mean, rtol=1e-12)
    # One purchase of 10 pulls the estimate from the mean towards 10: p (v + m) / (p + q - 1).
    assert value[3] == pytest.approx(6.25 * (15.44 + 10) / (6.25 + 3.74 - 1), rel=1e-12)


_TEN = [1.0, 2.0, 0.0, 3.0, 1.0, 0.0, 4.0, 1.0, 2.0, 5.0]


def _degenerate_cases() -> list[tuple[str, Callable[[], object], str]]:
    ages = [40.0] * 10
    recent = [30.0] * 10
    spend = [10.0] * 10
    return [
        ("empty", lambda: fit_bgnbd([], [], []), "empty"),
        ("empty spend", lambda: fit_gamma_gamma([], []), "empty"),
        ("mismatched", lambda: fit_bgnbd([1, 0], [3.0], [5.0, 5.0]), "mismatched"),
        ("NaN frequency", lambda: fit_bgnbd([*_TEN[:9], math.nan], recent, ages), "NaN"),
        ("NaN recency", lambda: p_alive(TRUE_BG, [1, 2], [1.0, math.nan], [5, 5]), "NaN"),
        ("NaN T", lambda: fit_bgnbd(_TEN, recent, [*ages[:9], math.nan]), "NaN"),
        ("NaN spend", lambda: fit_gamma_gamma(_TEN, [*spend[:9], math.nan]), "NaN"),
        ("negative frequency", lambda: fit_bgnbd([-1, *_TEN[1:]], recent, ages), "negative"),
        ("negative recency", lambda: fit_bgnbd(_TEN, [-1.0, *recent[1:]], ages), "negative"),
        ("negative T", lambda: p_alive(TRUE_BG, [0], [0.0], [-3.0]), "negative"),
        ("recency after T", lambda: fit_bgnbd(_TEN, [41.0, *recent[1:]], ages), "recency > T"),
        ("fractional frequency", lambda: fit_bgnbd([1.5, *_TEN[1:]], recent, ages), "non-integer"),
        ("zero spend", lambda: fit_gamma_gamma(_TEN, [0.0, *spend[1:]]), "zero"),
        ("negative spend", lambda: expected_average_value(TRUE_GG, [1], [-5.0]), "negative"),
        ("text", lambda: fit_bgnbd(["one", "two"], [1, 2], [3, 4]), "not numbers"),
        ("few repeat buyers", lambda: fit_bgnbd(_TEN[:9], recent[:9], ages[:9]), "too few"),
        ("few spenders", lambda: fit_gamma_gamma([0] * 50 + [1] * 9, [10.0] * 59), "too few"),
        ("identical spend", lambda: fit_gamma_gamma([1, 2, 3] * 10, [10.0] * 30), "converge"),
        (
            "unknown unit",
            lambda: discounted_clv(TRUE_BG, TRUE_GG, [1], [1], [2], [5], 52, 0.1, "month"),
            "time_unit",
        ),
        (
            "zero horizon",
            lambda: discounted_clv(TRUE_BG, TRUE_GG, [1], [1], [2], [5], 0, 0.1, "week"),
            "horizon",
        ),
        ("negative t", lambda: expected_purchases(TRUE_BG, -1, [1], [1], [2]), "t must"),
    ]


@pytest.mark.parametrize(
    ("call", "problem"),
    [case[1:] for case in _degenerate_cases()],
    ids=[case[0] for case in _degenerate_cases()],
)
def test_degenerate_input_raises_a_predictive_input_error_naming_the_problem(
    call: Callable[[], object], problem: str
) -> None:
    with pytest.raises(PredictiveInputError, match=re.escape(problem)):
        call()


def test_too_few_repeat_buyers_is_also_a_value_error_for_callers_catching_those() -> None:
    with pytest.raises(ValueError, match="at least 10 needed"):
        fit_bgnbd([0, 0, 1], [0, 0, 2], [5, 5, 5])
