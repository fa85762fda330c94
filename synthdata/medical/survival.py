"""Survival helpers: Kaplan-Meier estimates, curve distance, sanity checks on synthetic times."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.schema.model import ColumnKind, Schema


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
        if not len(self.survival):  # no event: S(t) = 1 everywhere
            return np.ones_like(t)
        idx = np.searchsorted(self.times, t, side="right") - 1
        return np.where(idx >= 0, self.survival[np.maximum(idx, 0)], 1.0)

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


# -- report: curves, sanity and a survival model's concordance ----------------------------

MAX_CURVE_POINTS = 400
DEFAULT_PENALIZER = 0.1
SKSURV_HINT = "pip install 'synthdata[survival]' (scikit-survival)"


def km_steps(km: KaplanMeier, *, end: float | None = None,
             max_points: int = MAX_CURVE_POINTS) -> dict[str, list[float]]:
    """A KM curve as plottable steps (``where="post"``): S=1 at t=0, at most ``max_points`` steps,
    flat to ``end`` (the last follow-up time) when given."""
    times, surv = km.times, km.survival
    if len(times) > max_points:  # keep the first, the last and evenly spaced steps between
        idx = np.unique(np.linspace(0, len(times) - 1, max_points).round().astype(int))
        times, surv = times[idx], surv[idx]
    t = [0.0, *times.tolist()]
    s = [1.0, *surv.tolist()]
    if end is not None and end > t[-1]:
        t.append(float(end))
        s.append(s[-1])
    return {"times": t, "survival": s}


def _import_sksurv() -> Any:
    try:
        from sksurv import linear_model, metrics
    except ImportError as err:
        raise ConfigError(f"the survival concordance check needs scikit-survival: "
                          f"{SKSURV_HINT}") from err
    return linear_model, metrics


class _CoxDesign:
    """Covariates as a numeric matrix: numbers with missing values set to the training median,
    discrete columns one-hot over the training levels; standardised by the training frame."""

    def __init__(self, train: pd.DataFrame, covariates: list[str], schema: Schema | None) -> None:
        self.numeric, self.levels = [], {}
        for name in covariates:
            kind = schema[name].kind if schema is not None and name in schema else None
            is_number = (kind.is_numeric if kind is not None else
                         pd.api.types.is_numeric_dtype(train[name])
                         and train[name].nunique(dropna=True) > 2)
            if is_number:
                self.numeric.append(name)
            else:
                self.levels[name] = sorted(pd.unique(train[name].dropna()).tolist(), key=str)
        self.medians = {c: _median(train[c]) for c in self.numeric}
        raw = self._encode(train)
        self.keep = raw.std(axis=0) > 0
        self.mean = raw[:, self.keep].mean(axis=0)
        self.scale = raw[:, self.keep].std(axis=0)

    def _encode(self, df: pd.DataFrame) -> np.ndarray:
        parts = [pd.to_numeric(df[c], errors="coerce").astype(float).fillna(self.medians[c])
                 .to_numpy()[:, None] for c in self.numeric]
        for c, levels in self.levels.items():
            values = df[c].to_numpy(dtype=object)
            parts.append(np.column_stack([values == v for v in levels]).astype(float)
                         if levels else np.zeros((len(df), 0)))
        return np.hstack(parts) if parts else np.zeros((len(df), 0))

    @property
    def width(self) -> int:
        return int(self.keep.sum())

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        return (self._encode(df)[:, self.keep] - self.mean) / self.scale


def _median(series: pd.Series) -> float:
    value = pd.to_numeric(series, errors="coerce").median()
    return 0.0 if pd.isna(value) else float(value)


def _outcome(df: pd.DataFrame, time: str, event: str, values: list[Any], where: str
             ) -> tuple[np.ndarray, np.ndarray]:
    return _as_arrays(df[time], df[event].isin(values), where)


def cox_concordance(train: pd.DataFrame, test: pd.DataFrame, *, time: str, event: str,
                    event_values: Iterable[Any] = (1,), covariates: Iterable[str],
                    schema: Schema | None = None, penalizer: float = DEFAULT_PENALIZER,
                    where: str = "training data") -> float:
    """Harrell's C on ``test`` of a ridge-penalised Cox PH model fitted on ``train``.

    ``penalizer`` scales with the training rows (ridge ``alpha = penalizer * n``, on
    standardised covariates). Needs scikit-survival (the ``survival`` extra).
    """
    linear_model, metrics = _import_sksurv()
    values, covariates = list(event_values), list(covariates)
    t_train, e_train = _outcome(train, time, event, values, where)
    t_test, e_test = _outcome(test, time, event, values, "test data")
    if not e_train.any():
        raise DataError(f"{where}: no event ({event} in {values}) to fit a Cox model on")
    design = _CoxDesign(train, covariates, schema)
    if design.width == 0:
        raise DataError(f"{where}: no covariate varies ({covariates}); a Cox model needs one")
    y = np.empty(len(t_train), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = e_train, t_train
    model = linear_model.CoxPHSurvivalAnalysis(alpha=penalizer * len(t_train), ties="breslow")
    with warnings.catch_warnings():  # a ridge Cox fit that stops early is still a fine ranker
        warnings.simplefilter("ignore")
        model.fit(design(train), y)
    risk = model.predict(design(test))
    return float(metrics.concordance_index_censored(e_test, t_test, risk)[0])


def concordance_tstr(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None,
                     *, time: str, event: str, event_values: Iterable[Any] = (1,),
                     covariates: Iterable[str], schema: Schema | None = None,
                     penalizer: float = DEFAULT_PENALIZER) -> dict[str, Any]:
    """Train-on-synthetic / test-on-real concordance of a Cox model, against train-on-real.

    Returns ``c_index_tstr``, ``c_index_trtr`` (Harrell's C on the real holdout) and their
    ``ratio``, or ``{"skipped": reason}`` without scikit-survival, a holdout or events.
    """
    values, covariates = list(event_values), list(covariates)
    if holdout is None or len(holdout) == 0:
        return {"skipped": "no holdout split (split.holdout: 0): concordance is measured on "
                           "held-out real patients"}
    try:
        _import_sksurv()
    except ConfigError as err:
        return {"skipped": str(err)}
    if not holdout[event].isin(values).any():
        return {"skipped": f"the holdout has no event ({event} in {values})"}
    out: dict[str, Any] = {"model": "Cox proportional hazards (ridge, scikit-survival)",
                           "penalizer": penalizer, "covariates": covariates,
                           "n_train": len(train), "n_synthetic": len(synthetic),
                           "n_holdout": len(holdout)}
    for key, frame, where in (("c_index_trtr", train, "real training data"),
                              ("c_index_tstr", synthetic, "synthetic data")):
        try:
            out[key] = cox_concordance(frame, holdout, time=time, event=event,
                                       event_values=values, covariates=covariates,
                                       schema=schema, penalizer=penalizer, where=where)
        except (DataError, ArithmeticError, np.linalg.LinAlgError) as err:
            out[key] = None
            out.setdefault("notes", []).append(f"{key}: {err}")
    trtr, tstr = out.get("c_index_trtr"), out.get("c_index_tstr")
    out["ratio"] = None if not trtr or tstr is None else tstr / trtr
    return out


def survival_summary(real: pd.DataFrame, synthetic: pd.DataFrame,
                     holdout: pd.DataFrame | None, *, time: str, event: str,
                     event_values: Iterable[Any] = (1,), schema: Schema | None = None,
                     exclude: Iterable[str] = (), unit: str | None = None) -> dict[str, Any]:
    """One survival endpoint for the report: KM curves real vs synthetic and their distance,
    sanity of the synthetic times and the Cox concordance (train on synthetic, test on real).

    The end of follow-up is the last real time: no synthetic time (event or censoring) may
    lie after it, nor before 0. Covariates are the table's other columns but ``exclude``
    (keys), ids, free text and dates. ``unit`` (days/months/years) is the time unit: the
    report draws the curves in years.
    """
    values = list(event_values)
    km_r = kaplan_meier(real[time], real[event].isin(values), where="real data")
    end = float(pd.to_numeric(real[time], errors="coerce").max())
    check = check_survival_times(synthetic[time], end=end)
    times = pd.to_numeric(synthetic[time], errors="coerce")
    valid = (times >= 0).to_numpy()  # the check counts the others; the curve cannot use them
    km_s = kaplan_meier(times[valid], synthetic[event].isin(values)[valid], where="synthetic data")
    skip = {time, event, *exclude}
    covariates = [c for c in real.columns if c not in skip and c in synthetic.columns
                  and (holdout is None or c in holdout.columns)
                  and (schema is None or c not in schema or schema[c].kind not in
                       (ColumnKind.ID, ColumnKind.TEXT, ColumnKind.DATETIME))]
    return {"time": time, "event": event, "event_values": values, "time_unit": unit,
            "km_max_distance": km_distance(km_r, km_s),
            "median_survival": {"real": km_r.median(), "synthetic": km_s.median()},
            "km": {"real": km_steps(km_r, end=end),
                   "synthetic": km_steps(km_s, end=float(times[valid].max()))},
            "check": check.to_dict() | {"end_of_follow_up": end},
            "concordance": concordance_tstr(real, synthetic, holdout, time=time, event=event,
                                            event_values=values, covariates=covariates,
                                            schema=schema)}


def survival_metrics(table: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Flat gate metrics of one endpoint: ``km_max_distance[t]``, ``c_index_tstr[t]``, ..."""
    conc = summary.get("concordance") or {}
    check = summary.get("check") or {}
    return {f"km_max_distance[{table}]": summary.get("km_max_distance"),
            f"survival_time_violations[{table}]": sum(
                int(check.get(k) or 0) for k in ("n_missing", "n_negative", "n_after_end")),
            f"c_index_tstr[{table}]": conc.get("c_index_tstr"),
            f"c_index_trtr[{table}]": conc.get("c_index_trtr"),
            f"survival_concordance_ratio[{table}]": conc.get("ratio")}
