"""Customer lifetime value: BG/NBD for purchase counts, Gamma-Gamma for spend, discounted CLV.

BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way". Gamma-Gamma: Fader,
Hardie & Lee (2005), "RFM and CLV: Using iso-value curves". Both are fitted by maximum likelihood
with analytic gradients, in log-parameter space (L-BFGS-B). BG/NBD runs on the distinct
(frequency, recency, T) rows weighted by how often they occur: summaries in whole days or weeks
repeat a lot, and a million customers collapse to some ten thousand rows. Gamma-Gamma sums its
likelihood with the special functions evaluated once per distinct frequency.

Inputs are one value per customer, in one time unit (day or week):

- frequency: repeat purchase periods (periods with a purchase, minus the first one);
- recency: first to last purchase;
- T: first purchase to the calibration end;
- monetary_value: mean value of the repeat purchases. Gamma-Gamma reads it only where
  frequency > 0, so for one-time buyers it may be anything, NaN included.

Parameters depend on the time unit (alpha scales with it), so whoever stores a fit stores its unit
too. Degenerate input raises PredictiveInputError, which says what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

# Below this many repeat buyers the dropout (BG/NBD a, b) and spend (Gamma-Gamma) parameters are
# noise; Fader and Hardie's examples fit on hundreds.
MIN_REPEAT_BUYERS_BGNBD = 10
MIN_REPEAT_BUYERS_GAMMA_GAMMA = 10
DAYS_PER_YEAR = 365.25
DAYS_PER_TIME_UNIT = {"day": 1.0, "week": 7.0}
# Log-parameters live in [-LOG_BOUND, LOG_BOUND]; a fit that ends on the bound has a parameter
# the data do not pin down (say no visible dropout, or identical order values).
LOG_BOUND = 25.0
# The BG/NBD dropout Beta(a, b) may not exceed this in a or in b. Where nobody visibly stops buying
# except at a steady rate, the likelihood keeps rising as a and b grow with a / (a + b) fixed: the
# limit is one dropout probability for every customer. Measured on the demo's customers (a / (a +
# b) = 0.098) and on 20,000 simulated like them (0.09): from a + b = 1e6 to 1e12 the log-likelihood
# rises by 2.5e-5 and 3e-5 in all and expected purchases over 52 weeks change by 1.3e-6 relative;
# uncapped, the fit ran to b = 7e10, where ln B(a, b) is too large for the last digits the
# optimiser needs, and stopped with the gradient at 0.0025, "did not converge".
MAX_DROPOUT_SHAPE = 1e6
# Where |a - 1| is below this, expected purchases average a - h and a + h: the closed form divides
# by a - 1, and it is smooth in a, so the average is exact to O(h^2).
_A_NEAR_ONE = 1e-4
# From this a up, expected purchases come from a series instead of the closed form, whose terms
# are (1-z)^(a-1), which underflows, times a 2F1 that overflows. Measured against eq. 10 summed
# with 60 digits, the closed form's largest relative error is 3e-13 at a = 20, 2e-12 at 200 and
# 2e-11 at 2,000, where for t = 52 weeks it is already 0 * inf; the series' is 3e-13 throughout.
_SERIES_FROM_A = 20.0


class PredictiveInputError(ValueError):
    """Input a predictive model cannot use; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class BgNbdFit:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int


@dataclass(frozen=True)
class GammaGammaFit:
    """Gamma-Gamma parameters: order value ~ Gamma(p, nu), nu ~ Gamma(q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n_customers: int


def _column(name: str, values: ArrayLike) -> np.ndarray:
    try:
        column = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError) as exc:
        raise PredictiveInputError(
            f"{name} holds values that are not numbers ({exc}); pass numeric values, with "
            "missing values as NaN"
        ) from exc
    if column.ndim != 1:
        raise PredictiveInputError(
            f"{name} has shape {column.shape}; pass one value per customer (a 1-d array)"
        )
    return column


def _columns(**named: ArrayLike) -> list[np.ndarray]:
    columns = {name: _column(name, values) for name, values in named.items()}
    lengths = {name: column.size for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        spelled = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise PredictiveInputError(
            f"mismatched lengths: {spelled}; pass one value per customer in each"
        )
    if next(iter(lengths.values())) == 0:
        raise PredictiveInputError(
            f"empty input: no customers in {', '.join(columns)}; "
            "there is nothing to fit or score until some customers have orders"
        )
    return list(columns.values())


def _count(mask: np.ndarray) -> str:
    count = int(np.count_nonzero(mask))
    return f"{count} customer{'s' if count != 1 else ''}"


def _check_frequency(frequency: np.ndarray) -> None:
    if np.isnan(frequency).any():
        raise PredictiveInputError(
            f"frequency is NaN for {_count(np.isnan(frequency))}; "
            "every customer needs a repeat purchase count"
        )
    if np.isinf(frequency).any():
        raise PredictiveInputError(f"frequency is infinite for {_count(np.isinf(frequency))}")
    if (frequency < 0).any():
        raise PredictiveInputError(
            f"negative frequency for {_count(frequency < 0)}; frequency counts repeat purchase "
            "periods and is 0 or more"
        )
    if (frequency != np.round(frequency)).any():
        raise PredictiveInputError(
            f"non-integer frequency for {_count(frequency != np.round(frequency))}; frequency "
            "counts repeat purchase periods, a whole number"
        )


def _customers(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (x, t_x, T) as float arrays."""
    x, t_x, age = _columns(frequency=frequency, recency=recency, T=T)
    _check_frequency(x)
    for name, column in (("recency", t_x), ("T", age)):
        if np.isnan(column).any():
            raise PredictiveInputError(
                f"{name} is NaN for {_count(np.isnan(column))}; every customer needs a first "
                "and a last purchase"
            )
        if np.isinf(column).any():
            raise PredictiveInputError(f"{name} is infinite for {_count(np.isinf(column))}")
        if (column < 0).any():
            raise PredictiveInputError(
                f"negative {name} for {_count(column < 0)}; it is a duration from the first "
                "purchase, 0 or more (is the calibration end before some first purchases?)"
            )
    # A relative slack absorbs rounding in durations computed as fractions of a unit.
    late = t_x > age * (1 + 1e-12) + 1e-12
    if late.any():
        raise PredictiveInputError(
            f"recency > T for {_count(late)}: the last purchase is after the calibration end; "
            "drop orders after the calibration end or move it"
        )
    return x, t_x, age


def _spend(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Checked (x, m) as float arrays; m is only checked where x > 0."""
    x, m = _columns(frequency=frequency, monetary_value=monetary_value)
    _check_frequency(x)
    repeat = x > 0
    if np.isnan(m[repeat]).any():
        raise PredictiveInputError(
            f"monetary_value is NaN for {_count(np.isnan(m) & repeat)} with repeat purchases; "
            "every repeat buyer needs a mean repeat-purchase value"
        )
    if np.isinf(m[repeat]).any():
        raise PredictiveInputError(f"monetary_value is infinite for {_count(np.isinf(m) & repeat)}")
    if (m[repeat] <= 0).any():
        raise PredictiveInputError(
            f"negative or zero monetary_value for {_count((m <= 0) & repeat)} with repeat "
            "purchases; Gamma-Gamma models positive order values: leave out refunds and free "
            "orders, or these customers"
        )
    return x, m


def _positive_params(names: str, params: Sequence[float]) -> list[float]:
    values = [float(value) for value in params]
    if len(values) != len(names.split(", ")):
        raise PredictiveInputError(f"expected {len(names.split(', '))} parameters ({names})")
    if not all(math.isfinite(value) and value > 0 for value in values):
        raise PredictiveInputError(f"parameters ({names}) must be positive and finite: {values}")
    return values


def _codes(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's position among the column's distinct values, and those values (sorted).

    Whole numbers in a modest range (periods, counts) go through a lookup table, in linear time;
    anything else through a sort.
    """
    top = column.max()
    if column.min() >= 0 and top <= 4 * column.size + 1024 and np.all(column == np.floor(column)):
        whole = column.astype(np.intp)
        present = np.zeros(int(top) + 1, dtype=bool)
        present[whole] = True
        return (np.cumsum(present) - 1)[whole], np.flatnonzero(present).astype(float)
    values, codes = np.unique(column, return_inverse=True)
    return codes.reshape(-1), values


def _distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The distinct rows of the columns, how often each occurs, and each input row's index.

    The columns' codes make one integer key per row; keys are counted with bincount when their
    range is modest (whole periods: a million customers in milliseconds), sorted otherwise.
    """
    key = np.zeros(columns[0].size, dtype=np.int64)
    span = 1
    for column in columns:
        codes, values = _codes(column)
        if span * values.size >= 2**62:
            # Renumber the keys so far densely, so that the key stays within int64.
            _, key = np.unique(key, return_inverse=True)
            key = key.reshape(-1)
            span = int(key.max()) + 1
        key = key * values.size + codes
        span *= values.size
    if span <= max(4 * key.size, 1 << 20):
        per_key = np.bincount(key, minlength=span)
        keys = np.flatnonzero(per_key)
        counts = per_key[keys]
        inverse = (np.cumsum(per_key > 0) - 1)[key]
        row_of_key = np.empty(span, dtype=np.intp)
        row_of_key[key] = np.arange(key.size)
        rows = row_of_key[keys]
    else:
        _, rows, inverse, counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
    return [column[rows] for column in columns], counts.astype(float), inverse.reshape(-1)


@dataclass(frozen=True)
class _Counts:
    """Purchase counts per row with their distinct values: functions of x run once per value."""

    rows: np.ndarray
    values: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> _Counts:
        index, values = _codes(x)
        return cls(x, values, index)

    def per_value(self, weights: np.ndarray) -> np.ndarray:
        return np.bincount(self.index, weights=weights, minlength=self.values.size)


def _bgnbd(
    r: float,
    alpha: float,
    a: float,
    b: float,
    counts: _Counts,
    t_x: np.ndarray,
    age: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row log-likelihood and, given row weights, the weighted sum of its derivatives in
    (r, alpha, a, b).

    ll = ln G(r+x) - ln G(r) + r ln alpha + ln B(a, b+x) - ln B(a, b)
         + ln[ (alpha+T)^-(r+x) + 1{x>0} a/(b+x-1) (alpha+t_x)^-(r+x) ]
    """
    x, values, index = counts.rows, counts.values, counts.index
    repeat_value = values > 0
    # b + x - 1 >= b > 0 where x > 0; for x = 0 the term is absent and b - 1 is never used.
    b_x_1 = np.where(repeat_value, b + values - 1, 1.0)
    head = gammaln(r + values) + betaln(a, b + values)
    lead = np.where(repeat_value, math.log(a) - np.log(b_x_1), -np.inf)
    log_alpha_t = np.log(alpha + age)
    log_alpha_tx = np.log(alpha + t_x)
    stays = -(r + x) * log_alpha_t
    leaves = lead[index] - (r + x) * log_alpha_tx
    total = np.logaddexp(stays, leaves)
    ll = head[index] + (r * math.log(alpha) - math.lgamma(r) - betaln(a, b)) + total
    if weights is None:
        return ll, None
    weight = weights.sum()
    per_value = counts.per_value(weights)
    w_stays = weights * np.exp(stays - total)
    w_leaves = weights * np.exp(leaves - total)
    leaves_per_value = counts.per_value(w_leaves)
    psi_abx = per_value @ digamma(a + b + values)
    d_r = (
        per_value @ digamma(r + values)
        + weight * (math.log(alpha) - digamma(r))
        - w_stays @ log_alpha_t
        - w_leaves @ log_alpha_tx
    )
    d_alpha = weight * r / alpha - (r + x) @ (w_stays / (alpha + age) + w_leaves / (alpha + t_x))
    d_a = weight * digamma(a + b) - psi_abx + leaves_per_value.sum() / a
    d_b = (
        weight * (digamma(a + b) - digamma(b))
        + per_value @ digamma(b + values)
        - psi_abx
        - leaves_per_value[repeat_value] @ (1 / b_x_1[repeat_value])
    )
    return ll, np.array([d_r, d_alpha, d_a, d_b])


def bgnbd_log_likelihood(
    params: Sequence[float], frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """BG/NBD log-likelihood of each customer at params = (r, alpha, a, b)."""
    r, alpha, a, b = _positive_params("r, alpha, a, b", params)
    x, t_x, age = _customers(frequency, recency, T)
    return _bgnbd(r, alpha, a, b, _Counts.of(x), t_x, age)[0]


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _fit(
    name: str,
    names: tuple[str, ...],
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    caps: dict[str, float] | None = None,
) -> np.ndarray:
    """Minimise a mean negative log-likelihood in log-parameters; the parameters, or an error.

    caps lowers some parameters' upper bound from exp(LOG_BOUND): a fit that ends on a cap is the
    limit the cap stands for, not a failure.
    """
    upper = np.array([math.log((caps or {}).get(label, math.exp(LOG_BOUND))) for label in names])
    bounds = [(-LOG_BOUND, float(high)) for high in upper]
    # The optimiser's vectors are 3 or 4 long and the objective's dot products short: BLAS
    # threads only wait on each other, and on a busy machine they made the fits 3x slower.
    with _one_blas_thread(), np.errstate(all="ignore"):
        result = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 20},
        )
    # L-BFGS-B stops with "ABNORMAL" when the line search cannot improve the last digits, which
    # at a tiny gradient is the optimum; judge by the gradient rather than by the flag. On a cap
    # the gradient may point past it: only the part along the cap counts.
    if result.jac is None:
        gradient = np.array([np.inf])
    else:
        on_cap = (result.x >= upper - 1e-9) & (result.jac < 0) & (upper < LOG_BOUND)
        gradient = np.abs(np.where(on_cap, 0.0, result.jac))
    if not (np.isfinite(result.fun) and np.all(np.isfinite(result.x))) or gradient.max() > 1e-4:
        raise PredictiveInputError(
            f"{name} fit did not converge ({result.message}; largest gradient "
            f"{gradient.max():.3g}); check the input for too little history, outliers or values "
            "that do not vary"
        )
    stuck = [names[i] for i, value in enumerate(result.x) if abs(value) >= LOG_BOUND - 1e-6]
    if stuck:
        raise PredictiveInputError(
            f"{name} fit did not converge: {', '.join(stuck)} ran to "
            f"exp(+-{LOG_BOUND:g}), the data do not pin it down (no visible dropout, or "
            "identical values?); fit on more customers or a longer history"
        )
    return np.exp(result.x)


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BgNbdFit:
    """Maximum-likelihood BG/NBD fit; needs MIN_REPEAT_BUYERS_BGNBD customers with frequency > 0.

    Identical (frequency, recency, T) rows are fitted once with their count as weight; recency is
    irrelevant to a customer without repeat purchases and is set to 0 for them first.
    """
    x, t_x, age = _customers(frequency, recency, T)
    repeat_buyers = int(np.count_nonzero(x > 0))
    if repeat_buyers < MIN_REPEAT_BUYERS_BGNBD:
        raise PredictiveInputError(
            f"too few repeat buyers to fit BG/NBD: {repeat_buyers} of {x.size} customers have "
            f"frequency > 0, at least {MIN_REPEAT_BUYERS_BGNBD} needed; use a longer history or "
            "a later calibration end"
        )
    (x_rows, t_x_rows, age_rows), weights, _ = _distinct_rows(x, np.where(x > 0, t_x, 0.0), age)
    counts = _Counts.of(x_rows)
    share = weights / weights.sum()

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, derivatives = _bgnbd(*params, counts, t_x_rows, age_rows, share)
        return -float(share @ ll), -derivatives * params

    # Start from a purchase rate of one per customer lifetime and dropout a ~ b ~ 1.
    start = np.log([1.0, max(float(age.mean()), 1e-6), 1.0, 1.0])
    caps = {"a": MAX_DROPOUT_SHAPE, "b": MAX_DROPOUT_SHAPE}
    r, alpha, a, b = _fit("BG/NBD", ("r", "alpha", "a", "b"), objective, start, caps)
    ll = _bgnbd(r, alpha, a, b, counts, t_x_rows, age_rows)[0]
    return BgNbdFit(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=float(weights @ ll),
        n_customers=int(x.size),
    )


def p_alive(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)).

    Exactly 1 for customers without repeat purchases: BG/NBD lets a customer drop out only right
    after a repeat purchase.
    """
    x, t_x, age = _customers(frequency, recency, T)
    return _p_alive(fit, x, t_x, age)


def _p_alive(fit: BgNbdFit, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    repeat = x > 0
    b_x_1 = np.where(repeat, fit.b + x - 1, 1.0)
    log_odds_dead = (
        math.log(fit.a)
        - np.log(b_x_1)
        + (fit.r + x) * (np.log(fit.alpha + age) - np.log(fit.alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def _expected_purchases_if_alive(
    fit: BgNbdFit, t: float, x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T, x, T]; it does not depend on t_x.

    Fader, Hardie & Lee (2005), eq. 10, times P(alive)^-1:
        (a+b+x-1)/(a-1) [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)],  z = t/(alpha+T+t).
    Written with Euler's transformation, (1-z)^(r+x) 2F1(r+x, b+x; c; z) =
    (1-z)^(a-1) 2F1(c-r-x, a-1; c; z), so that no factor overflows for large x. From
    a = _SERIES_FROM_A up, (1-z)^(a-1) underflows instead; a series of positive terms takes over.
    """
    if t == 0:
        return np.zeros_like(x)
    a = fit.a
    if a >= _SERIES_FROM_A:
        return _expected_if_alive_series(fit.r, fit.alpha, a, fit.b, t, x, age)
    if abs(a - 1) < _A_NEAR_ONE:
        below = _expected_if_alive_at(fit.r, fit.alpha, 1 - _A_NEAR_ONE, fit.b, t, x, age)
        above = _expected_if_alive_at(fit.r, fit.alpha, 1 + _A_NEAR_ONE, fit.b, t, x, age)
        return (below + above) / 2
    return _expected_if_alive_at(fit.r, fit.alpha, a, fit.b, t, x, age)


def _expected_if_alive_at(
    r: float, alpha: float, a: float, b: float, t: float, x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    c = a + b + x - 1
    log_one_minus_z = np.log(alpha + age) - np.log(alpha + age + t)
    z = -np.expm1(log_one_minus_z)
    tail = np.exp((a - 1) * log_one_minus_z) * hyp2f1(c - r - x, a - 1, c, z)
    return c / (a - 1) * (1 - tail)


def _expected_if_alive_series(
    r: float, alpha: float, a: float, b: float, t: float, x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T, x, T] as a sum of positive terms, for any a and b.

    Given alive at T, the purchase rate is Gamma(r+x, alpha+T) and the dropout probability
    Beta(a, b+x). Without dropout the purchases in (T, T+t] would be N ~ NegBin(r+x, z),
    z = t/(alpha+T+t); with it the customer makes the n-th of them only if still there after
    the n-1 before, probability S_{n-1}, S_j = (b+x)_j / (a+b+x)_j (rising factorials). So
        E = sum_{n>=1} P(N = n) C_n,  C_n = S_0 + ... + S_{n-1},
    which is eq. 10 expanded term by term. Every factor is a probability or a count in [0, n], so
    nothing overflows or cancels; P(N = n) is summed in logs from P(N = 0) = (1-z)^(r+x). Terms
    run in blocks, for each row until past the mode of N and the rest is below 1e-17 of the sum:
    for m > n, P(N = m) <= P(N = n) q^(m-n), q the larger of P(N = n+1) / P(N = n) and z, and
    C_m <= C_n + (m-n) S_n.
    """
    k = r + x
    log_z = math.log(t) - np.log(alpha + age + t)
    z = np.exp(log_z)
    total = np.zeros_like(x)
    # Per row, at the end of the last block n: ln P(N = n), C_n and ln S_n.
    log_pmf = k * (np.log(alpha + age) - np.log(alpha + age + t))
    cumulative = np.zeros_like(x)
    log_survive = np.zeros_like(x)
    rows = np.arange(x.size)
    first, size = 1, 8
    while rows.size:
        n = np.arange(first, first + size, dtype=float)
        k_rows, x_rows, z_rows = k[rows], x[rows], z[rows]
        block_log_pmf = log_pmf[rows, None] + np.cumsum(
            np.log((k_rows[:, None] + n - 1) / n) + log_z[rows, None], axis=1
        )
        # ln S_n - ln S_{n-1}, and ln S_{n-1} for each n of the block.
        log_step = np.log1p(-a / (a + b + x_rows[:, None] + n - 1))
        log_before = log_survive[rows, None] + np.cumsum(log_step, axis=1) - log_step
        block_cumulative = cumulative[rows, None] + np.cumsum(np.exp(log_before), axis=1)
        total[rows] += np.einsum("ij,ij->i", np.exp(block_log_pmf), block_cumulative)
        last = n[-1]
        log_pmf[rows] = block_log_pmf[:, -1]
        cumulative[rows] = block_cumulative[:, -1]
        log_survive[rows] = log_before[:, -1] + log_step[:, -1]
        ratio = (k_rows + last) * z_rows / (last + 1)
        q = np.maximum(ratio, z_rows)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rest = (
                np.exp(log_pmf[rows])
                * q
                / (1 - q)
                * (cumulative[rows] + np.exp(log_survive[rows]) / (1 - q))
            )
        rows = rows[~((ratio < 1) & (rest <= 1e-17 * total[rows]))]
        first += size
        size = min(2 * size, 256)
    return total


def expected_purchases(
    fit: BgNbdFit, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected purchases in the t periods after the calibration end, given x, t_x and T."""
    if not (math.isfinite(t) and t >= 0):
        raise PredictiveInputError(f"t must be a finite number of periods, 0 or more, not {t}")
    x, t_x, age = _customers(frequency, recency, T)
    (x_rows, age_rows), _, inverse = _distinct_rows(x, age)
    if_alive = _expected_purchases_if_alive(fit, float(t), x_rows, age_rows)
    return _p_alive(fit, x, t_x, age) * if_alive[inverse]


def _gamma_gamma(p: float, q: float, v: float, counts: _Counts, m: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood of the mean value m of x > 0 purchases.

    ll = -ln B(px, q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(v + x m)
       = -ln B(px, q) + px ln(xm / (v+xm)) + q ln(v / (v+xm)) - ln m
    """
    x, values, index = counts.rows, counts.values, counts.index
    spent = x * m
    # ln(xm / (v + xm)) and ln(v / (v + xm)), without cancellation.
    log_share_spent = -np.log1p(v / spent)
    log_share_v = -np.log1p(spent / v)
    return -betaln(p * values, q)[index] + p * x * log_share_spent + q * log_share_v - np.log(m)


class _GammaGammaSums:
    """The summed Gamma-Gamma log-likelihood and its gradient, for the fit.

    Summed over customers, ll and its derivatives need per customer only ln(v + xm) and
    1 / (v + xm); the special functions depend on x alone and run once per distinct x.
    """

    def __init__(self, x: np.ndarray, m: np.ndarray) -> None:
        self.counts = _Counts.of(x)
        self.per_value = self.counts.per_value(np.ones(x.size))
        self.customers = float(x.size)
        self.x = x
        self.spent = x * m
        self.x_log_spent = float(x @ np.log(self.spent))
        self.log_m = float(np.log(m).sum())

    def __call__(self, p: float, q: float, v: float) -> tuple[float, np.ndarray]:
        values, n = self.counts.values, self.customers
        log_v_spent = np.log(v + self.spent)
        x_log_v_spent = float(self.x @ log_v_spent)
        log_v_spent_sum = float(log_v_spent.sum())
        total = (
            -self.per_value @ betaln(p * values, q)
            + p * (self.x_log_spent - x_log_v_spent)
            + q * (n * math.log(v) - log_v_spent_sum)
            - self.log_m
        )
        inverse = 1 / (v + self.spent)
        psi_all = digamma(p * values + q)
        d_p = (
            self.per_value @ (values * (psi_all - digamma(p * values)))
            + self.x_log_spent
            - x_log_v_spent
        )
        d_q = self.per_value @ psi_all - n * digamma(q) + n * math.log(v) - log_v_spent_sum
        d_v = n * q / v - p * float(self.x @ inverse) - q * float(inverse.sum())
        return float(total), np.array([d_p, d_q, d_v])


def gamma_gamma_log_likelihood(
    params: Sequence[float], frequency: ArrayLike, monetary_value: ArrayLike
) -> np.ndarray:
    """Gamma-Gamma log-likelihood of each customer with frequency > 0, at params = (p, q, v)."""
    p, q, v = _positive_params("p, q, v", params)
    x, m = _spend(frequency, monetary_value)
    repeat = x > 0
    return _gamma_gamma(p, q, v, _Counts.of(x[repeat]), m[repeat])


def fit_gamma_gamma(frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit on the customers with frequency > 0.

    Needs MIN_REPEAT_BUYERS_GAMMA_GAMMA of them; n_customers counts them only.
    """
    x, m = _spend(frequency, monetary_value)
    repeat = x > 0
    repeat_buyers = int(np.count_nonzero(repeat))
    if repeat_buyers < MIN_REPEAT_BUYERS_GAMMA_GAMMA:
        raise PredictiveInputError(
            f"too few repeat buyers to fit Gamma-Gamma: {repeat_buyers} of {x.size} customers "
            f"have frequency > 0, at least {MIN_REPEAT_BUYERS_GAMMA_GAMMA} needed; use a longer "
            "history or a later calibration end"
        )
    # No grouping of identical rows here: mean order values rarely repeat exactly, and the summed
    # likelihood costs two passes over the customers per evaluation.
    sums = _GammaGammaSums(x[repeat], m[repeat])

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        total, derivatives = sums(*params)
        return -total / sums.customers, -derivatives * params / sums.customers

    # Start at p = 1, q = 2 and v at the mean value, where E[M] = p v / (q - 1) is that mean.
    start = np.log([1.0, 2.0, float(m[repeat].mean())])
    p, q, v = _fit("Gamma-Gamma", ("p", "q", "v"), objective, start)
    return GammaGammaFit(
        p=float(p),
        q=float(q),
        v=float(v),
        log_likelihood=float(_gamma_gamma(p, q, v, sums.counts, m[repeat]).sum()),
        n_customers=repeat_buyers,
    )


def expected_average_value(
    fit: GammaGammaFit, frequency: ArrayLike, monetary_value: ArrayLike
) -> np.ndarray:
    """E[M | x, m] = p (v + x m) / (p x + q - 1): the expected value of a future purchase.

    For x = 0 it is the population mean p v / (q - 1), whatever monetary_value holds; that mean
    exists only for q > 1.
    """
    x, m = _spend(frequency, monetary_value)
    if fit.q <= 1 and (x == 0).any():
        raise PredictiveInputError(
            f"Gamma-Gamma q = {fit.q:.4g} <= 1: the population mean order value is infinite, "
            "so one-time buyers have no expected value; refit on more repeat buyers"
        )
    spent = np.where(x > 0, x * m, 0.0)
    return fit.p * (fit.v + spent) / (fit.p * x + fit.q - 1)


def per_period_discount_rate(discount_rate: float, time_unit: str) -> float:
    """The per-day or per-week rate equal to an annual one, compounded: (1+d)^(days/365.25) - 1."""
    if time_unit not in DAYS_PER_TIME_UNIT:
        raise PredictiveInputError(
            f"unknown time_unit {time_unit!r}; use one of {', '.join(DAYS_PER_TIME_UNIT)}"
        )
    if not (math.isfinite(discount_rate) and discount_rate > -1):
        raise PredictiveInputError(
            f"discount_rate must be an annual rate above -1 (0.1 for 10%), not {discount_rate}"
        )
    return (1 + discount_rate) ** (DAYS_PER_TIME_UNIT[time_unit] / DAYS_PER_YEAR) - 1


def discounted_clv(
    bg: BgNbdFit,
    gg: GammaGammaFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    horizon: float,
    discount_rate: float,
    time_unit: str,
) -> np.ndarray:
    """Discounted value of each customer's purchases over the horizon after the calibration end.

    horizon is in time units ("day" or "week"); discount_rate is ANNUAL (0.1 for 10%), turned
    into the per-period rate d = (1 + discount_rate)^(days per unit / 365.25) - 1. Period k = 1,
    2, ... ends at min(k, horizon); its expected purchases E[Y(end_k)] - E[Y(end_k-1)], times the
    expected average value, are discounted by (1 + d)^end_k, and the periods are summed. Exact,
    not stepped: the sum runs over every period, once per distinct (frequency, T), because the
    expected purchases of a customer alive at T do not depend on recency; P(alive) and the
    average value are per customer factors.
    """
    if not (math.isfinite(horizon) and horizon > 0):
        raise PredictiveInputError(
            f"horizon must be a positive number of {time_unit} periods, not {horizon}"
        )
    rate = per_period_discount_rate(discount_rate, time_unit)
    x, t_x, age = _customers(frequency, recency, T)
    _, m = _columns(frequency=frequency, monetary_value=monetary_value)
    value = expected_average_value(gg, x, m)
    (x_rows, age_rows), _, inverse = _distinct_rows(x, age)
    ends = np.minimum(np.arange(1, math.ceil(horizon) + 1, dtype=float), horizon)
    discounted = np.zeros_like(x_rows)
    before = np.zeros_like(x_rows)
    for end in ends:
        after = _expected_purchases_if_alive(bg, float(end), x_rows, age_rows)
        discounted += (after - before) / (1 + rate) ** end
        before = after
    return _p_alive(bg, x, t_x, age) * discounted[inverse] * value
