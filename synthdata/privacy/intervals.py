"""Exact binomial confidence bounds (the audit's ε lower bound, the exact-copy baseline)."""

from __future__ import annotations


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided exact binomial bounds: ``(lo, hi)`` with ``P(p < lo) <= alpha`` and
    ``P(p > hi) <= alpha`` each (``lo = 0`` when ``k = 0``, ``hi = 1`` when ``k = n``)."""
    from scipy.stats import beta

    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be in [0, n={n}]")
    lo = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))
    return lo, hi
