"""DP primitives for private preprocessing and DP-EM.

Each mechanism validates its arguments, **charges the ledger first** (so a refused charge
means no work and no noise drawn), then computes on the real data and adds noise through
:mod:`synthdata.privacy.noise`: OpenDP's discrete Gaussian sampler fed by the operating
system's cryptographic source, never a generator derived from the (public) seed, and no
mechanism takes an ``rng``. Counts and histograms get exact integer noise; real-valued
statistics are snapped to OpenDP's grid, with σ inflated so that OpenDP's own privacy map
fits the ρ charged. Missing values (NaN/None/NA) are never counted as data unless a
function says so.

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
from synthdata.privacy import noise as nz
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
]


def _calibrate(rho: float, sensitivity: float, step: str, size: int | None = None
               ) -> nz.NoiseCalibration:
    try:
        return nz.calibrate_gaussian(rho, sensitivity, size=size)
    except ConfigError as err:
        raise ConfigError(f"step '{step}': {err}") from err


def gaussian_mechanism(
    value: Any,
    sensitivity: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    **params: Any,
) -> np.ndarray | float:
    """Release ``value`` (a statistic with L2 ``sensitivity``) with Gaussian noise at ``ρ``.

    The building block for DP-EM sufficient statistics: compute the (clipped) statistic,
    pass it here, get the noisy copy back. Integer statistics get exact integer noise,
    real ones noise on OpenDP's grid (calibrated to the number of values, which must not
    depend on the data). Scalars in, float out; arrays keep their shape (as floats).
    Non-finite values raise ``DataError`` before anything is charged.
    """
    arr, integer = nz.as_statistic(value, f"step '{step}'")
    cal = _calibrate(rho, sensitivity, step, None if integer else int(arr.size))
    ledger.charge(step, "gaussian", rho=rho, sigma=cal.scale, sensitivity=float(sensitivity),
                  size=int(arr.size), **cal.ledger_params(), **params)
    noisy = np.asarray(cal.release(arr, what=f"step '{step}'"), dtype=float)
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
    *,
    sensitivity: float = 1.0,
) -> float:
    """Noisy number of units (``len(values)``, or ``values`` itself if an int), ``>= 0``.

    Exact discrete Gaussian noise, so the release is an integer (as a float)."""
    cal = _calibrate(rho, sensitivity, step)
    ledger.charge(step, "gaussian", rho=rho, sigma=cal.scale, sensitivity=float(sensitivity),
                  statistic="count", **cal.ledger_params())
    n = int(values) if isinstance(values, int | np.integer) else len(_as_series(values, step))
    return max(0.0, float(cal.release(n, what=f"step '{step}'")))


def dp_histogram(
    values: Any,
    categories: Sequence[Any],
    rho: float,
    ledger: PrivacyLedger,
    step: str,
    *,
    sensitivity: float = 1.0,
) -> np.ndarray:
    """Noisy counts of ``values`` over the given (public or DP-chosen) ``categories``.

    Values outside ``categories`` and missing values are not counted. Counts are clipped
    at 0 (post-processing). Returns a float array (of integers) aligned with ``categories``.
    """
    cats = list(categories)
    if not cats:
        raise ConfigError(f"step '{step}': dp_histogram needs at least one category")
    if not pd.Index(cats).is_unique:
        raise ConfigError(f"step '{step}': categories contain duplicates")
    cal = _calibrate(rho, sensitivity, step)
    ledger.charge(step, "gaussian", rho=rho, sigma=cal.scale, sensitivity=float(sensitivity),
                  statistic="histogram", bins=len(cats), **cal.ledger_params())
    codes = pd.Index(cats).get_indexer(_as_series(values, step))
    counts = np.bincount(codes[codes >= 0], minlength=len(cats))
    return np.maximum(cal.release(counts, what=f"step '{step}'"), 0).astype(float)


def _canonical_order(labels: Sequence[Any]) -> list[int]:
    """Positions of ``labels`` in an order that depends only on the set (never on their
    counts): the natural order when they are comparable, else by type name and ``str``."""
    pos = list(range(len(labels)))
    try:
        return sorted(pos, key=lambda i: labels[i])
    except TypeError:  # mixed, unorderable labels
        return sorted(pos, key=lambda i: (type(labels[i]).__name__, str(labels[i])))


def dp_categories(
    values: Any,
    rho: float,
    threshold_factor: float | None,
    ledger: PrivacyLedger,
    step: str,
    *,
    delta: float | None = None,
) -> tuple[list[Any], np.ndarray]:
    """Discover the category set of a column privately (noisy counts + threshold).

    Every observed category gets a count with discrete Gaussian noise (``σ = 1/√(2ρ)``);
    only those with noisy count ``>= 2 + ⌈threshold_factor·σ⌉`` are kept, so a category
    that only one unit has is released with probability at most
    ``δ₀ = Φ̄(threshold_factor)`` (the extra 1 covers the discrete tail). The mechanism is
    therefore δ₀-approximately ρ-zCDP and is charged as such: ``δ₀`` comes out of the δ
    budget (give ``delta`` instead of ``threshold_factor`` to pick δ₀ directly; split the
    plan's ``preprocessing_threshold_delta`` across columns). Rare real categories are
    dropped -- the caller maps them to an "other" value or to missing; an empty result is
    possible on small data. The released categories are in a canonical order (sorted, or
    by ``str`` for mixed labels) that does not depend on their counts.

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
    cal = _calibrate(rho, 1.0, step)
    # The noise is a discrete Gaussian Z on the integers, whose tail at an integer can exceed
    # the continuous one (σ=1: P(Z >= 2) = 0.059 > Φ̄(1.645) = 0.05). Since its normaliser is
    # >= √(2π)σ, P(Z >= m) <= Φ̄((m-1)/σ); a singleton (1 + Z) clears 2 + ⌈t·σ⌉ only if
    # Z >= 1 + ⌈t·σ⌉, with probability <= Φ̄(t) = δ₀ (σ: the one actually drawn).
    threshold = 2.0 + math.ceil(threshold_factor * cal.scale)
    ledger.charge(step, "gaussian", rho=rho, sigma=cal.scale, sensitivity=1.0, delta=d0,
                  statistic="thresholded histogram", threshold=threshold,
                  threshold_factor=float(threshold_factor), **cal.ledger_params())
    counts = _as_series(values, step).value_counts(dropna=True)
    labels = [c.item() if hasattr(c, "item") else c for c in counts.index]
    order = _canonical_order(labels)
    true = counts.to_numpy(dtype=np.int64)[order]
    noisy = np.asarray(cal.release(true, what=f"step '{step}'"), dtype=float)
    keep = noisy >= threshold
    return [labels[i] for i, k in zip(order, keep, strict=True) if k], noisy[keep]


def _noisy_cdf(
    x: np.ndarray, lo: float, hi: float, bins: int, cal: nz.NoiseCalibration
) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(np.clip(x, lo, hi), bins=edges)
    noisy = np.asarray(cal.release(counts.astype(np.int64), what="quantile histogram"),
                       dtype=float)
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
    quantiles: Sequence[float] | np.ndarray,
    lower: float,
    upper: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
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
    cal = _calibrate(rho, 1.0, step)
    ledger.charge(step, "gaussian", rho=rho, sigma=cal.scale, sensitivity=1.0,
                  statistic="quantiles", quantiles=[float(q) for q in qs], bins=int(bins),
                  range=[lo, hi], **cal.ledger_params())
    edges, cdf = _noisy_cdf(_numeric(values, step), lo, hi, int(bins), cal)
    return _invert_cdf(edges, cdf, qs)


def dp_bounds(
    values: Any,
    lower: float,
    upper: float,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
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
    est = dp_quantiles(values, [q_lo, q_hi], lo_r, hi_r, rho, ledger, step, bins=bins)
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
) -> float:
    """DP mean of values clipped to ``[lower, upper]`` (NaN dropped).

    Noisy count and noisy centred sum, ``ρ/2`` each (sum sensitivity ``(upper−lower)/2``);
    the ratio is clipped back into the range.
    """
    lo, hi = _check_range(lower, upper, step)
    center, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    cal_n = _calibrate(rho / 2.0, 1.0, step)
    cal_s = _calibrate(rho / 2.0, half, step, size=1)
    ledger.charge(step, "gaussian", rho=rho, statistic="mean", sigma_count=cal_n.scale,
                  sigma_sum=cal_s.scale, range=[lo, hi], sampler="opendp discrete gaussian",
                  grid_sum=2.0 ** (cal_s.k or 0), opendp_rho=cal_n.loss + cal_s.loss)
    x = np.clip(_numeric(values, step), lo, hi)
    n = float(cal_n.release(int(x.size), what=f"step '{step}'"))
    s = float(cal_s.release(float(np.sum(x - center)), what=f"step '{step}'"))
    return float(np.clip(center + s / max(n, 1.0), lo, hi))


def dp_missing_rate(
    values: Any,
    rho: float,
    ledger: PrivacyLedger,
    step: str,
) -> float:
    """DP fraction of missing values: a noisy two-bin histogram (missing, present)."""
    cal = _calibrate(rho, 1.0, step)
    ledger.charge(step, "gaussian", rho=rho, sigma=cal.scale, sensitivity=1.0,
                  statistic="missing rate", **cal.ledger_params())
    s = _as_series(values, step)
    missing = int(s.isna().sum())
    true = np.array([missing, len(s) - missing], dtype=np.int64)
    noisy = np.maximum(cal.release(true, what=f"step '{step}'"), 0).astype(float)
    total = noisy.sum()
    return float(noisy[0] / total) if total > 0 else 0.0
