"""DP primitives for private preprocessing and DP-EM.

Each mechanism validates its arguments, **charges the ledger first** (so a refused charge
means no work and no noise drawn), then computes on the real data and adds noise from the
given ``rng``. All are vectorised numpy; missing values (NaN/None/NA) are never counted
as data unless a function says so.

Sensitivities assume the add/remove-one-unit relation of :mod:`.accounting` with *one value
per unit*: a histogram over one column has L2 sensitivity 1. For multi-table data, pass one
value per patient (or bound each patient's contribution and pass ``sensitivity``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.privacy import accounting as acc
from synthdata.privacy.ledger import PrivacyLedger

__all__ = [
    "dp_bounds",
    "dp_categories",
    "dp_count",
    "dp_histogram",
    "dp_mean",
    "dp_missing_rate",
    "dp_quantiles",
    "gaussian_mechanism",
    "gaussian_noise",
]


def gaussian_noise(
    shape: int | tuple[int, ...], sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``N(0, sigma²)`` noise of ``shape`` from ``rng``."""
    if not sigma >= 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma!r}")
    return rng.normal(0.0, float(sigma), size=shape)


def gaussian_mechanism(
    value: Any,
    sensitivity: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
    **params: Any,
) -> np.ndarray | float:
    """Release ``value`` (a statistic with L2 ``sensitivity``) with Gaussian noise at ``ρ``.

    The building block for DP-EM sufficient statistics: compute the (clipped) statistic,
    pass it here, get the noisy copy back. Scalars in, float out; arrays keep their shape.
    """
    sigma = acc.calibrate_gaussian_sigma(rho, sensitivity)
    arr = np.asarray(value, dtype=float)
    ledger.charge(step, "gaussian", rho=rho, sigma=sigma, sensitivity=sensitivity,
                  size=int(arr.size), **params)
    noisy = arr + gaussian_noise(arr.shape, sigma, rng)
    return float(noisy) if noisy.ndim == 0 else noisy


def _as_series(values: Any, step: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    try:
        return pd.Series(values if np.ndim(values) else [values])
    except (TypeError, ValueError) as err:
        raise DataError(f"step '{step}': values must be one-dimensional") from err


def _numeric(values: Any, step: str) -> np.ndarray:
    s = _as_series(values, step)
    try:
        arr = pd.to_numeric(s, errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"step '{step}': expected numeric values; declare the column categorical or "
            f"clean it"
        ) from err
    return arr[~np.isnan(arr)]


def _check_range(lower: float, upper: float, step: str) -> tuple[float, float]:
    lo, hi = float(lower), float(upper)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(
            f"step '{step}': needs a finite public range lower < upper, got [{lower}, {upper}]"
        )
    return lo, hi


def dp_count(
    values: Any,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
    *,
    sensitivity: float = 1.0,
) -> float:
    """Noisy number of units (``len(values)``, or ``values`` itself if an int), ``>= 0``."""
    sigma = acc.calibrate_gaussian_sigma(rho, sensitivity)
    ledger.charge(step, "gaussian", rho=rho, sigma=sigma, sensitivity=sensitivity,
                  statistic="count")
    n = int(values) if isinstance(values, int | np.integer) else len(_as_series(values, step))
    return max(0.0, n + float(gaussian_noise((), sigma, rng)))


def dp_histogram(
    values: Any,
    categories: Sequence[Any],
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
    *,
    sensitivity: float = 1.0,
) -> np.ndarray:
    """Noisy counts of ``values`` over the given (public or DP-chosen) ``categories``.

    Values outside ``categories`` and missing values are not counted. Counts are clipped
    at 0 (post-processing). Returns a float array aligned with ``categories``.
    """
    cats = list(categories)
    if not cats:
        raise ConfigError(f"step '{step}': dp_histogram needs at least one category")
    if not pd.Index(cats).is_unique:
        raise ConfigError(f"step '{step}': categories contain duplicates")
    sigma = acc.calibrate_gaussian_sigma(rho, sensitivity)
    ledger.charge(step, "gaussian", rho=rho, sigma=sigma, sensitivity=sensitivity,
                  statistic="histogram", bins=len(cats))
    codes = pd.Index(cats).get_indexer(_as_series(values, step))
    counts = np.bincount(codes[codes >= 0], minlength=len(cats)).astype(float)
    return np.maximum(counts + gaussian_noise(len(cats), sigma, rng), 0.0)


def dp_categories(
    values: Any,
    rho: float,
    threshold_factor: float | None,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
    *,
    delta: float | None = None,
) -> tuple[list[Any], np.ndarray]:
    """Discover the category set of a column privately (noisy counts + threshold).

    Every observed category gets a Gaussian-noised count (``σ = 1/√(2ρ)``); only those with
    noisy count ``>= 1 + threshold_factor·σ`` are kept, so a category that only one unit
    has is released with probability at most ``δ₀ = Φ̄(threshold_factor)``. The mechanism is
    therefore δ₀-approximately ρ-zCDP and is charged as such: ``δ₀`` comes out of the δ
    budget (give ``delta`` instead of ``threshold_factor`` to pick δ₀ directly; split the
    plan's ``preprocessing_threshold_delta`` across columns). Rare real categories are
    dropped -- the caller maps them to an "other" value or to missing; an empty result is
    possible on small data.

    Returns ``(categories, noisy_counts)``: the counts are DP too and may be reused for
    marginals (e.g. condition vectors) at no further cost.
    """
    if (threshold_factor is None) == (delta is None):
        raise ConfigError(f"step '{step}': give exactly one of threshold_factor or delta")
    if threshold_factor is None:
        threshold_factor = acc.threshold_factor_for_delta(float(delta))  # type: ignore[arg-type]
    if not threshold_factor > 0:
        raise ConfigError(f"step '{step}': threshold_factor must be > 0, got {threshold_factor!r}")
    d0 = acc.threshold_delta(threshold_factor)
    sigma = acc.calibrate_gaussian_sigma(rho, 1.0)
    threshold = 1.0 + threshold_factor * sigma
    ledger.charge(step, "gaussian", rho=rho, sigma=sigma, sensitivity=1.0, delta=d0,
                  statistic="thresholded histogram", threshold=threshold,
                  threshold_factor=float(threshold_factor))
    counts = _as_series(values, step).value_counts(dropna=True)
    try:
        counts = counts.sort_index()
    except TypeError:  # mixed, unorderable labels: keep the value_counts order
        pass
    noisy = counts.to_numpy(dtype=float) + gaussian_noise(len(counts), sigma, rng)
    keep = noisy >= threshold
    return [c.item() if hasattr(c, "item") else c for c in counts.index[keep]], noisy[keep]


def _noisy_cdf(
    x: np.ndarray, lo: float, hi: float, bins: int, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(x, lo, hi), bins=edges)
    noisy = counts + gaussian_noise(bins, sigma, rng)
    # unclipped cumulative sum is unbiased; make it monotone and non-negative afterwards
    cdf = np.maximum.accumulate(np.maximum(np.cumsum(noisy), 0.0))
    return edges, cdf


def _invert_cdf(edges: np.ndarray, cdf: np.ndarray, qs: np.ndarray) -> np.ndarray:
    total = cdf[-1]
    if total <= 0:
        return edges[0] + qs * (edges[-1] - edges[0])
    target = qs * total
    idx = np.clip(np.searchsorted(cdf, target, side="left"), 0, len(cdf) - 1)
    prev = np.where(idx > 0, cdf[np.maximum(idx - 1, 0)], 0.0)
    mass = cdf[idx] - prev
    frac = np.where(mass > 0, (target - prev) / np.where(mass > 0, mass, 1.0), 0.5)
    width = edges[1] - edges[0]
    return edges[idx] + np.clip(frac, 0.0, 1.0) * width


def dp_quantiles(
    values: Any,
    quantiles: Sequence[float],
    lower: float,
    upper: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
    *,
    bins: int = 128,
) -> np.ndarray:
    """DP quantiles from one noisy histogram on the public range ``[lower, upper]``.

    Values are clipped into the range (NaN dropped), counted in ``bins`` equal bins, the
    counts get Gaussian noise (``ρ`` once for all quantiles, sensitivity 1), and the
    quantiles are read off the monotonised noisy CDF with linear interpolation inside a bin.
    Accuracy: about ``σ·√k`` units of rank error after ``k`` bins; fewer bins trade
    resolution for less noise. Returns an array aligned with ``quantiles``.
    """
    qs = np.asarray(quantiles, dtype=float)
    if qs.ndim != 1 or qs.size == 0 or np.any((qs < 0) | (qs > 1)):
        raise ConfigError(f"step '{step}': quantiles must be numbers in [0, 1], got {quantiles!r}")
    lo, hi = _check_range(lower, upper, step)
    if int(bins) != bins or bins < 1:
        raise ConfigError(f"step '{step}': bins must be a positive integer, got {bins!r}")
    sigma = acc.calibrate_gaussian_sigma(rho, 1.0)
    ledger.charge(step, "gaussian", rho=rho, sigma=sigma, sensitivity=1.0,
                  statistic="quantiles", quantiles=[float(q) for q in qs], bins=int(bins),
                  range=[lo, hi])
    edges, cdf = _noisy_cdf(_numeric(values, step), lo, hi, int(bins), sigma, rng)
    return _invert_cdf(edges, cdf, qs)


def dp_bounds(
    values: Any,
    lower: float,
    upper: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
    *,
    quantiles: tuple[float, float] = (0.01, 0.99),
    bins: int = 64,
) -> tuple[float, float]:
    """DP (min, max) of a numeric column inside a coarse public range ``[lower, upper]``.

    The ``quantiles`` (default 1 % / 99 %) of :func:`dp_quantiles`, rounded *outwards* to
    bin edges, so ``lower <= lo < hi <= upper``. Data outside the result should be clipped.
    """
    q_lo, q_hi = float(quantiles[0]), float(quantiles[1])
    if not 0 <= q_lo < q_hi <= 1:
        raise ConfigError(f"step '{step}': quantiles must satisfy 0 <= low < high <= 1, "
                          f"got {quantiles!r}")
    lo_r, hi_r = _check_range(lower, upper, step)
    est = dp_quantiles(values, [q_lo, q_hi], lo_r, hi_r, rho, ledger, step, rng, bins=bins)
    width = (hi_r - lo_r) / bins
    lo = lo_r + math.floor((est[0] - lo_r) / width + 1e-9) * width
    hi = lo_r + math.ceil((est[1] - lo_r) / width - 1e-9) * width
    lo, hi = max(lo_r, min(lo, hi_r - width)), min(hi_r, hi)
    if hi <= lo:
        hi = min(hi_r, lo + width)
    return float(lo), float(hi)


def dp_mean(
    values: Any,
    lower: float,
    upper: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
) -> float:
    """DP mean of values clipped to ``[lower, upper]`` (NaN dropped).

    Noisy count and noisy centred sum, ``ρ/2`` each (sum sensitivity ``(upper−lower)/2``);
    the ratio is clipped back into the range.
    """
    lo, hi = _check_range(lower, upper, step)
    center, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    sigma_n = acc.calibrate_gaussian_sigma(rho / 2.0, 1.0)
    sigma_s = acc.calibrate_gaussian_sigma(rho / 2.0, half)
    ledger.charge(step, "gaussian", rho=rho, statistic="mean", sigma_count=sigma_n,
                  sigma_sum=sigma_s, range=[lo, hi])
    x = np.clip(_numeric(values, step), lo, hi)
    n = x.size + float(gaussian_noise((), sigma_n, rng))
    s = float(np.sum(x - center)) + float(gaussian_noise((), sigma_s, rng))
    return float(np.clip(center + s / max(n, 1.0), lo, hi))


def dp_missing_rate(
    values: Any,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    rng: np.random.Generator,
) -> float:
    """DP fraction of missing values: a noisy two-bin histogram (missing, present)."""
    sigma = acc.calibrate_gaussian_sigma(rho, 1.0)
    ledger.charge(step, "gaussian", rho=rho, sigma=sigma, sensitivity=1.0,
                  statistic="missing rate")
    s = _as_series(values, step)
    missing = int(s.isna().sum())
    noisy = np.maximum(np.array([missing, len(s) - missing], dtype=float)
                       + gaussian_noise(2, sigma, rng), 0.0)
    total = noisy.sum()
    return float(noisy[0] / total) if total > 0 else 0.0
