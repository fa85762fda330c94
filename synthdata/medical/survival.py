"""Survival helpers: Kaplan-Meier estimates, curve distance, sanity checks on synthetic times."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import DataError


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier curve: ``survival[i]`` is S(t) for ``times[i] <= t < times[i+1]``.

    ``times`` are the distinct event times (S(t) = 1 before the first one); ``at_risk`` and
    ``events`` are the counts at each of them.
    """

    times: np.ndarray
    survival: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    n: int

    def __call__(self, t: Iterable[float] | float) -> np.ndarray:
        """S(t) evaluated at ``t`` (right-continuous step function)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        idx = np.searchsorted(self.times, t, side="right") - 1
        values = np.where(idx >= 0, self.survival[np.maximum(idx, 0)], 1.0)
        return values if len(self.survival) else np.ones_like(t)

    def median(self) -> float:
        """The first time at which S(t) <= 0.5 (``nan`` if never reached)."""
        below = np.flatnonzero(self.survival <= 0.5)
        return float(self.times[below[0]]) if below.size else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"times": self.times.tolist(), "survival": self.survival.tolist(),
                "at_risk": self.at_risk.tolist(), "events": self.events.tolist(), "n": self.n}


def _as_arrays(time: Any, event: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    t = pd.to_numeric(pd.Series(np.asarray(time)), errors="coerce").to_numpy(dtype=float)
    e = pd.Series(np.asarray(event))
    if e.isna().any():
        raise DataError(f"{where}: {int(e.isna().sum())} event indicator(s) are missing")
    e = e.astype(bool).to_numpy() if e.dtype == bool else (pd.to_numeric(e, errors="coerce") != 0).to_numpy()
    if len(t) != len(e):
        raise DataError(f"{where}: time and event have different lengths ({len(t)} vs {len(e)})")
    if np.isnan(t).any():
        raise DataError(f"{where}: {int(np.isnan(t).sum())} survival time(s) are missing or "
                        "not numeric; drop or impute them first")
    if (t < 0).any():
        raise DataError(f"{where}: {int((t < 0).sum())} survival time(s) are negative "
                        f"(smallest {t.min():g}); times count from the start of follow-up")
    return t, e


def kaplan_meier(time: Any, event: Any, *, where: str = "survival data") -> KaplanMeier:
    """Estimate S(t) from follow-up times and event indicators (1/True = event, 0 = censored).

    Ties: events at time t count before censorings at t (the usual convention).

    Examples
    --------
    >>> km = kaplan_meier([5, 8, 8, 12], [1, 1, 0, 1])
    >>> km.survival.round(3).tolist()
    [0.75, 0.5, 0.0]
    """
    t, e = _as_arrays(time, event, where)
    if len(t) == 0:
        raise DataError(f"{where}: no rows; Kaplan-Meier needs at least one")
    order = np.argsort(t, kind="stable")
    t, e = t[order], e[order]
    uniq, first = np.unique(t, return_index=True)
    n_at = len(t) - first                                    # at risk just before each time
    d = np.add.reduceat(e.astype(np.int64), first)           # events at each time
    keep = d > 0
    times, n_risk, n_event = uniq[keep], n_at[keep], d[keep]
    surv = np.cumprod(1.0 - n_event / n_risk)
    return KaplanMeier(times=times, survival=surv, at_risk=n_risk, events=n_event, n=len(t))


def km_distance(real: KaplanMeier, synthetic: KaplanMeier, *, horizon: float | None = None) -> float:
    """Largest vertical gap between two Kaplan-Meier curves (sup-norm), up to ``horizon``.

    ``horizon`` defaults to the smaller of the two last event times: beyond it one curve is
    undefined (or flat by lack of data), and the gap would measure follow-up, not survival.
    """
    if horizon is None:
        ends = [km.times[-1] for km in (real, synthetic) if len(km.times)]
        horizon = min(ends) if len(ends) == 2 else (ends[0] if ends else 0.0)
    grid = np.union1d(real.times, synthetic.times)
    grid = np.concatenate([[0.0], grid[grid <= horizon]])
    return float(np.max(np.abs(real(grid) - synthetic(grid))))


def km_curve_distance(real: pd.DataFrame, synthetic: pd.DataFrame, *, time: str, event: str,
                      event_values: Iterable[Any] = (1,), horizon: float | None = None) -> float:
    """KM sup-distance between two tables, taking the event as ``event`` in ``event_values``."""
    values = list(event_values)
    km_r = kaplan_meier(real[time], real[event].isin(values), where="real data")
    km_s = kaplan_meier(synthetic[time], synthetic[event].isin(values), where="synthetic data")
    return km_distance(km_r, km_s, horizon=horizon)


@dataclass(frozen=True)
class SurvivalCheck:
    """Sanity of synthetic survival times."""

    n_rows: int
    n_missing: int
    n_negative: int
    n_after_end: int

    @property
    def is_ok(self) -> bool:
        return self.n_missing == 0 and self.n_negative == 0 and self.n_after_end == 0

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "n_missing": self.n_missing, "n_negative": self.n_negative,
                "n_after_end": self.n_after_end, "ok": self.is_ok}


def check_survival_times(time: Any, *, end: Any = None) -> SurvivalCheck:
    """Count missing, negative and (when ``end`` is given, per row or one number) after-the-end times."""
    t = pd.to_numeric(pd.Series(np.asarray(time)), errors="coerce").to_numpy(dtype=float)
    missing = np.isnan(t)
    after = 0
    if end is not None:
        bound = np.broadcast_to(np.asarray(end, dtype=float), t.shape)
        after = int((~missing & ~np.isnan(bound) & (t > bound)).sum())
    return SurvivalCheck(n_rows=len(t), n_missing=int(missing.sum()),
                         n_negative=int((~missing & (t < 0)).sum()), n_after_end=after)
