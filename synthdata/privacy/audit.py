"""Empirical privacy audit: a membership test on inserted canaries gives a lower bound on ε.

The audit checks a DP claim from the outside, treating the generator as a black box:

1. **Canaries.** ``K`` outlier rows are built from real rows by moving *one* numeric column
   far outside the data (``max + 5·sd`` or ``min − 5·sd``). Every canary gets its own
   (column, direction) slot, so one canary's presence does not make another look present.
2. **Trials.** In each of ``T`` trials every canary is included in the training table
   independently with probability ½ (as in Steinke, Nasr & Jagielski, "Privacy auditing
   with one training run", 2023): for canary *i*, the two worlds "with *i*" and "without *i*"
   differ in exactly one row whatever the other canaries do, so the ε-DP claim applies
   to each canary's test (inserting all canaries together would test group privacy, Kε).
   The generator is fitted with a fresh seed and samples ``n_synthetic`` rows (default
   :data:`SYNTHETIC_FACTOR` times the data: with twice the data, a non-private GMM
   reproduced only 75 % of its member canaries and passed at ε = 3; with ten times, 97 %).
3. **Membership test.** The score of a canary is the distance from the canary to the
   nearest synthetic row on the canary's column, in units of that column's standard
   deviation in the real data; "member" is guessed when the score is at most a threshold.
4. **Threshold.** Chosen on the first half of the trials (the one maximising the bound
   below on that half), then *evaluated only on the second half*, so choosing it does not
   bias the bound.
5. **Bound.** On the evaluation half, with ``tp`` of ``P`` included canaries and ``fp`` of
   ``N`` excluded canaries guessed "member", one-sided Clopper–Pearson bounds at level
   ``α/2`` each give ``TPR ≥ TPR_lo`` and ``FPR ≤ FPR_hi`` jointly with confidence
   ``1 − α``. Any (ε, δ)-DP mechanism satisfies ``TPR ≤ e^ε·FPR + δ`` and
   ``1 − FPR ≤ e^ε·(1 − TPR) + δ``, hence with confidence ``1 − α``::

       ε ≥ max( log((TPR_lo − δ) / FPR_hi),  log((1 − FPR_hi − δ) / (1 − TPR_lo)),  0 )

6. **Design and verdict.** Even a perfect attack (every included canary found, no excluded
   one) only shows ``ε ≥ ε_max(P, N)``, the bound above at ``tp = P, fp = 0``: the largest
   ε this design can detect. So the audit has three verdicts:

   * **INCONCLUSIVE** -- the claimed ε is not below ``ε_max``: no outcome of these trials
     could contradict the claim, so the audit says nothing (never PASS). The result says
     how many trials would be needed.
   * **FAIL** -- the empirical lower bound exceeds the claimed ε: evidence, at the stated
     confidence, that the generator is less private than claimed.
   * **PASS** -- the claim was detectable and the bound stays at or below it. This is not
     a proof of the claim: the attack (one outlier canary, nearest-synthetic-row distance)
     may be weak against a given generator.

   By default the number of trials is *sized to the claim* (:func:`plan_audit`): the
   fewest trials whose ``ε_max`` reaches ``claim + DETECTION_MARGIN`` when the random
   split of members and non-members is unlucky (5 % quantile), within ``max_trials``; if
   even ``max_trials`` cannot reach the claim, the audit stops before fitting anything
   and reports INCONCLUSIVE with the trials required. ``ε_max`` grows only like
   ``log(number of non-members)``, so ε of 5 or more needs thousands of fits: an empirical
   audit cannot confirm large ε claims.

Caveat, stated in ``details["method"]`` too: the ``K`` canaries of one trial share a model,
so their outcomes are not independent; the Clopper–Pearson intervals treat the ``K·T/2``
evaluation outcomes as independent. For pure ε-DP, Steinke et al. prove the analogous
binomial domination under independent inclusion; for (ε, δ) it is the usual heuristic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.jsonsafe import json_safe
from synthdata.privacy.config import DPConfig
from synthdata.privacy.intervals import clopper_pearson

__all__ = [
    "AuditDesign",
    "AuditResult",
    "audit_generator",
    "clopper_pearson",
    "detectable_epsilon",
    "epsilon_lower_bound",
    "make_canaries",
    "plan_audit",
    "relational_factory",
]

CANARY_SHIFT_SD = 5.0
MIN_DISTINCT_VALUES = 10  # numeric columns with fewer distinct values get no canary
MAX_DEFAULT_CANARIES = 16  # default canaries per trial: every slot, at most this many
DEFAULT_MAX_TRIALS = 200  # budget of fits when the trials are sized to the claim
MIN_TRIALS = 4
DETECTION_MARGIN = 0.5  # size trials so a perfect attack shows claim + this much
PLAN_QUANTILE = 0.05  # plan for this unlucky quantile of the member/non-member split
MAX_PLANNED_TRIALS = 10**9
SYNTHETIC_FACTOR = 10  # default rows sampled per fit, relative to the data

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`audit_generator`.

    ``verdict``: ``PASS``, ``FAIL`` or ``INCONCLUSIVE`` (module docstring, step 6).
    ``epsilon_lower_bound``: ε that the generator provably (at ``confidence``) exceeds (nan
    when nothing was fitted). ``detectable_epsilon``: the largest bound these trials could
    show (a perfect attack on the realised members and non-members; before fitting, the
    planned value). ``details`` holds the design, counts, threshold, Clopper–Pearson
    bounds, canaries and per-trial scores.
    """

    epsilon_lower_bound: float
    claimed_epsilon: float
    verdict: Verdict
    confidence: float
    detectable_epsilon: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True only for PASS (an inconclusive audit does not pass)."""
        return self.verdict == "PASS"

    def summary(self) -> str:
        d = self.details
        design = (f"{d.get('n_trials')} trials x {d.get('n_canaries')} canaries, confidence "
                  f"{self.confidence:.0%}")
        if self.verdict == "INCONCLUSIVE":
            return f"INCONCLUSIVE: {d.get('reason', '')}"
        if self.verdict == "FAIL":
            return (f"FAIL: empirical ε lower bound {self.epsilon_lower_bound:.3f} > claimed "
                    f"ε {self.claimed_epsilon:g} ({design}; the generator is less private "
                    f"than claimed)")
        return (f"PASS: empirical ε lower bound {self.epsilon_lower_bound:.3f} <= claimed ε "
                f"{self.claimed_epsilon:g} ({design}; these trials could detect up to ε = "
                f"{self.detectable_epsilon:.2f}). Not a proof of the claim: this attack found "
                f"no violation")

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"verdict": self.verdict, "passed": self.passed,
                           "epsilon_lower_bound": self.epsilon_lower_bound,
                           "claimed_epsilon": self.claimed_epsilon,
                           "detectable_epsilon": self.detectable_epsilon,
                           "confidence": self.confidence, "details": self.details})


# -- statistics --------------------------------------------------------------------------

def epsilon_lower_bound(tp: int, n_pos: int, fp: int, n_neg: int, *, delta: float,
                        alpha: float = 0.05) -> dict[str, float]:
    """ε lower bound from a membership test's counts, valid with confidence ``1 − alpha``.

    ``tp`` of ``n_pos`` members and ``fp`` of ``n_neg`` non-members were guessed "member".
    Returns the bound and its ingredients (Clopper–Pearson at ``alpha/2`` per rate).
    """
    tpr_lo, _ = clopper_pearson(tp, n_pos, alpha / 2)
    _, fpr_hi = clopper_pearson(fp, n_neg, alpha / 2)
    sides = []
    if tpr_lo - delta > 0 and fpr_hi > 0:
        sides.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0 and 1 - tpr_lo > 0:
        sides.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    eps = max([0.0, *sides])
    return {"epsilon": eps, "tpr_lo": tpr_lo, "fpr_hi": fpr_hi,
            "tpr": tp / n_pos if n_pos else float("nan"),
            "fpr": fp / n_neg if n_neg else float("nan")}


def detectable_epsilon(n_pos: int, n_neg: int, *, delta: float, alpha: float = 0.05) -> float:
    """The largest ε lower bound ``n_pos`` members and ``n_neg`` non-members can ever show:
    :func:`epsilon_lower_bound` of a perfect attack (``tp = n_pos``, ``fp = 0``)."""
    if n_pos <= 0 or n_neg <= 0:
        return 0.0
    return float(epsilon_lower_bound(n_pos, n_pos, 0, n_neg, delta=delta, alpha=alpha)["epsilon"])


def _planned_epsilon(n_canaries: int, n_trials: int, delta: float, alpha: float) -> float:
    """``ε_max`` of a design when the Bernoulli(½) split of its evaluation outcomes is
    unlucky (its :data:`PLAN_QUANTILE` quantile, on either side)."""
    from scipy.stats import binom

    m = n_canaries * (n_trials - n_trials // 2)
    p = int(binom.ppf(PLAN_QUANTILE, m, 0.5))
    return min(detectable_epsilon(p, m - p, delta=delta, alpha=alpha),
               detectable_epsilon(m - p, p, delta=delta, alpha=alpha))


def _best_case_epsilon(n_canaries: int, n_trials: int, delta: float, alpha: float) -> float:
    """``ε_max`` of a design for the most favourable split (nothing can show more)."""
    m = n_canaries * (n_trials - n_trials // 2)
    if m < 2:
        return 0.0

    def at(p: int) -> float:
        return detectable_epsilon(p, m - p, delta=delta, alpha=alpha)

    step = max(1, (m - 1) // 64)  # coarse grid, then every split around its best point
    best = max(range(1, m, step), key=at)
    return max(at(p) for p in range(max(1, best - step), min(m - 1, best + step) + 1))


def _trials_for(target: float, n_canaries: int, delta: float, alpha: float) -> int | None:
    """Fewest (even) trials whose planned ``ε_max`` exceeds ``target``; None if none does
    below :data:`MAX_PLANNED_TRIALS`."""
    def ok(trials: int) -> bool:
        return _planned_epsilon(n_canaries, trials, delta, alpha) > target

    hi = MIN_TRIALS
    while not ok(hi):
        if hi >= MAX_PLANNED_TRIALS:
            return None
        hi = min(hi * 2, MAX_PLANNED_TRIALS)
    lo = hi // 2  # not ok (or below the minimum)
    while hi - lo > 2:
        mid = (lo + hi) // 2
        mid += mid % 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return max(hi, MIN_TRIALS)


@dataclass(frozen=True)
class AuditDesign:
    """How many fits an audit runs, and what they can detect (see :func:`plan_audit`).

    ``detectable_epsilon`` is the planned ``ε_max`` (unlucky split); ``best_case_epsilon``
    the most any outcome of these trials could show. ``trials_needed`` -- trials (with
    ``n_canaries`` canaries each) whose planned ``ε_max`` exceeds the claim plus
    :data:`DETECTION_MARGIN` (None: more than :data:`MAX_PLANNED_TRIALS`). ``feasible`` is
    False when nothing these trials show could exceed the claim (the audit is then
    INCONCLUSIVE without fitting); ``reason`` says why and what to do.
    """

    claimed_epsilon: float
    delta: float
    confidence: float
    n_canaries: int
    n_trials: int
    detectable_epsilon: float
    best_case_epsilon: float
    trials_needed: int | None
    feasible: bool
    reason: str = ""


def plan_audit(claimed_epsilon: float, delta: float, *, n_canaries: int,
               n_trials: int | None = None, max_trials: int = DEFAULT_MAX_TRIALS,
               confidence: float = 0.95) -> AuditDesign:
    """Size an audit of the claim ``(claimed_epsilon, delta)`` with ``n_canaries`` per trial.

    ``n_trials=None`` chooses the fewest trials whose planned ``ε_max`` reaches
    ``claim + DETECTION_MARGIN``, capped at ``max_trials``; a capped design that can still
    exceed the claim is kept (with less margin). A given ``n_trials`` is used as is. Either
    way the design is infeasible when even its most favourable outcome cannot exceed the
    claim.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if n_canaries < 1:
        raise ConfigError(f"n_canaries must be >= 1, got {n_canaries}")
    if max_trials < 2:
        raise ConfigError(f"max_trials must be >= 2, got {max_trials}")
    alpha = 1 - confidence
    claim = float(claimed_epsilon)
    needed = _trials_for(claim + DETECTION_MARGIN, n_canaries, delta, alpha)
    if n_trials is None:
        trials = min(needed or max_trials, max_trials)
    else:
        if n_trials < 2:
            raise ConfigError(f"n_trials must be >= 2 (half choose the threshold, half "
                              f"evaluate); got {n_trials}")
        trials = int(n_trials)
    planned = _planned_epsilon(n_canaries, trials, delta, alpha)
    best = _best_case_epsilon(n_canaries, trials, delta, alpha)
    feasible = best > claim if n_trials is not None else planned > claim
    reason = ""
    if not feasible:
        need = (f"about {needed:,} trials x {n_canaries} canaries" if needed is not None
                else f"more than {MAX_PLANNED_TRIALS:,} trials")
        reason = (f"the claimed ε = {claim:g} is above what {trials} trials x {n_canaries} "
                  f"canaries can detect (a perfect attack would show at most ε = "
                  f"{planned if n_trials is None else best:.2f} at {confidence:.0%} "
                  f"confidence); detecting a violation of ε = {claim:g} needs {need} "
                  + ("(raise max_trials / --max-trials, or audit a smaller claim)"
                     if n_trials is None else "(use more trials, or audit a smaller claim)"))
    return AuditDesign(claimed_epsilon=claim, delta=float(delta), confidence=confidence,
                       n_canaries=int(n_canaries), n_trials=trials,
                       detectable_epsilon=planned, best_case_epsilon=best,
                       trials_needed=needed, feasible=feasible, reason=reason)


def _best_threshold(scores: np.ndarray, member: np.ndarray, delta: float,
                    alpha: float) -> float:
    """The threshold (guess "member" when score <= t) maximising the bound on this half;
    ties and the no-signal case fall back to the largest TPR − FPR."""
    finite = np.unique(scores[np.isfinite(scores)])
    if finite.size == 0:
        return -math.inf
    cands = np.concatenate([[finite[0] - 1.0], (finite[:-1] + finite[1:]) / 2, [finite[-1]]])
    n_pos, n_neg = int(member.sum()), int((~member).sum())
    best = (-math.inf, -math.inf, -math.inf)
    best_t = float(cands[0])
    for t in cands:
        guess = scores <= t
        tp, fp = int((guess & member).sum()), int((guess & ~member).sum())
        eps = epsilon_lower_bound(tp, n_pos, fp, n_neg, delta=delta, alpha=alpha)["epsilon"]
        gap = (tp / n_pos if n_pos else 0.0) - (fp / n_neg if n_neg else 0.0)
        key = (eps, gap, -float(t))
        if key > best:
            best, best_t = key, float(t)
    return best_t


# -- canaries ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Canary:
    column: str
    direction: int  # +1: above the data, -1: below
    value: float
    scale: float


def _numeric_columns(data: pd.DataFrame, schema: Any) -> list[str]:
    from synthdata.schema.model import ColumnKind

    cols = []
    for col in schema:
        if col.kind not in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER):
            continue
        values = pd.to_numeric(data[col.name], errors="coerce")
        if values.nunique(dropna=True) >= MIN_DISTINCT_VALUES:
            cols.append(col.name)
    return cols


def make_canaries(data: pd.DataFrame, n_canaries: int, *, columns: list[str],
                  rng: np.random.Generator) -> tuple[pd.DataFrame, list[_Canary]]:
    """``n_canaries`` outlier rows: real rows with one numeric column moved far outside the
    data, each on its own (column, direction) slot (high side of every column first)."""
    slots = [(c, +1) for c in columns] + [(c, -1) for c in columns]
    if not slots:
        raise DataError("the audit needs at least one numeric column with "
                        f"{MIN_DISTINCT_VALUES}+ distinct values to place canaries on")
    if n_canaries < 1:
        raise ConfigError(f"n_canaries must be >= 1, got {n_canaries}")
    if n_canaries > len(slots):
        raise ConfigError(f"at most {len(slots)} canaries fit this table (one per numeric "
                          f"column and direction: {columns}); got n_canaries={n_canaries}")
    base = data.iloc[rng.choice(len(data), size=n_canaries, replace=True)].reset_index(drop=True)
    rows, canaries = base.copy(), []
    for i, (col, direction) in enumerate(slots[:n_canaries]):
        values = pd.to_numeric(data[col], errors="coerce").dropna().to_numpy(dtype=float)
        scale = float(values.std()) or 1.0
        edge = values.max() if direction > 0 else values.min()
        value = float(edge + direction * CANARY_SHIFT_SD * scale)
        if pd.api.types.is_integer_dtype(data[col].dtype):
            value = float(math.ceil(value) if direction > 0 else math.floor(value))
        rows.loc[i, col] = value if not pd.api.types.is_integer_dtype(data[col].dtype) \
            else int(value)
        canaries.append(_Canary(col, direction, value, scale))
    return rows, canaries


def _scores(synth: pd.DataFrame, canaries: list[_Canary]) -> np.ndarray:
    """Distance from each canary to the nearest synthetic row on its column (in sd units)."""
    out = np.empty(len(canaries))
    for i, c in enumerate(canaries):
        values = pd.to_numeric(synth[c.column], errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        out[i] = np.min(np.abs(values - c.value)) / c.scale if values.size else math.inf
    return out


# -- the audit ---------------------------------------------------------------------------

GeneratorFactory = Callable[..., Any]


class _RelationalTarget:
    """One trial's relational synthesizer, seen by the audit as a generator of the root table.

    ``fit(root_rows)`` fits the synthesizer on the real linked tables with the root table
    replaced by ``root_rows`` (the real patients plus this trial's canaries); a canary is a
    copy of a real patient's root row with a new key and no linked rows, so adding it is
    exactly the patient-level neighbour relation. ``sample`` returns the synthetic root
    table.
    """

    def __init__(self, ms: Any, tables: Mapping[str, pd.DataFrame], root: str, *,
                 privacy: DPConfig, seed: int, **params: Any) -> None:
        self.ms, self.tables, self.root = ms, tables, root
        self.privacy, self.seed, self.params = privacy, seed, params

    def fit(self, data: pd.DataFrame) -> _RelationalTarget:
        from synthdata.relational.synthesizer import RelationalSynthesizer

        (key,) = self.ms.primary_keys[self.root]
        data = data.reset_index(drop=True)
        dup = data[key].duplicated(keep="first")
        if dup.any():  # canaries are copies of real patients: give them keys of their own
            keys = pd.to_numeric(data[key], errors="coerce")
            start = int(keys.max()) + 1 if keys.notna().all() else None
            new = (list(range(start, start + int(dup.sum()))) if start is not None else
                   [f"audit-canary-{i}" for i in range(int(dup.sum()))])
            data.loc[dup, key] = new
        tables = {**self.tables, self.root: data}
        self.synth_ = RelationalSynthesizer(self.ms, privacy=self.privacy, seed=self.seed,
                                            **self.params).fit(tables)
        return self

    def sample(self, n: int, *, seed: int | None = None) -> pd.DataFrame:
        return self.synth_.sample(n, seed=seed)[self.root]


def relational_factory(ms: Any, tables: Mapping[str, pd.DataFrame], *,
                       root: str | None = None) -> GeneratorFactory:
    """A factory for :func:`audit_generator` that audits the relational synthesizer's
    patient-level claim: audit ``tables[root]`` with ``schema=ms.tables[root]``.

    Canaries are extra patients (outlier root rows without linked rows); the membership
    test reads the synthetic root table. Extra keyword ``params`` of the audit go to
    :class:`~synthdata.relational.synthesizer.RelationalSynthesizer`.
    """
    roots = [t for t in ms.order() if ms.parent_link(t) is None]
    root = root or (roots[0] if len(roots) == 1 else None)
    if root is None or root not in roots:
        raise ConfigError(f"relational_factory needs root= one of the root tables {roots}")

    def relational(schema: Any, *, privacy: DPConfig, seed: int,
                   **params: Any) -> _RelationalTarget:
        return _RelationalTarget(ms, tables, root, privacy=privacy, seed=seed, **params)

    return relational


def audit_generator(kind: str | GeneratorFactory, schema: Any, data: pd.DataFrame, *,
                    privacy: DPConfig, n_canaries: int | None = None,
                    n_trials: int | None = None, max_trials: int = DEFAULT_MAX_TRIALS,
                    params: Mapping[str, Any] | None = None, seed: int = 0,
                    n_synthetic: int | None = None, confidence: float = 0.95,
                    progress: Callable[[str, int, int], None] | None = None) -> AuditResult:
    """Audit the DP claim ``privacy`` of generator ``kind`` on ``data`` (see module docs).

    Parameters
    ----------
    kind:
        A registered generator name (built with ``make_generator(kind, schema,
        privacy=privacy, seed=s, **params)``), or a factory called the same way
        (``factory(schema, privacy=..., seed=..., **params)``) -- e.g. to audit a custom
        or deliberately broken generator.
    schema:
        The schema, or ``None`` to infer it from the data plus all canaries (recommended:
        a given schema must admit the canaries' out-of-range values).
    data:
        The real table (canaries are added to it; its rows are always included).
    privacy:
        The claim under audit. An unset ``delta`` is resolved once from the largest
        training table (data plus every canary) and fixed for all trials.
    n_canaries:
        Canaries per trial (at most two per numeric column); default every slot, at most
        :data:`MAX_DEFAULT_CANARIES`.
    n_trials, max_trials:
        Trials (fits). ``None`` sizes them to the claim (:func:`plan_audit`) within
        ``max_trials``. The threshold is chosen on the first ``n_trials // 2`` trials and
        the bound computed on the rest. A design that cannot detect the claim returns
        INCONCLUSIVE without fitting anything.
    seed:
        Seeds the audit's own choices (canaries, memberships, the seed handed to each fit).
        The fits' DP noise is whatever the generator draws (OS entropy), so two audits with
        one seed test the same canaries and memberships but not the same fits.
    n_synthetic:
        Rows sampled per fit (default: ``SYNTHETIC_FACTOR`` times the data).
    confidence:
        ``1 − α`` of the Clopper–Pearson bound.
    """
    from synthdata.models.registry import make_generator
    from synthdata.schema.model import Schema

    if not isinstance(privacy, DPConfig):
        raise ConfigError("audit_generator needs privacy=DPConfig(epsilon=...): the claim to audit")
    if not isinstance(data, pd.DataFrame) or len(data) < 10:
        raise DataError("audit_generator needs a DataFrame with at least 10 rows")
    if n_trials is not None and n_trials < 2:
        raise ConfigError(f"n_trials must be >= 2 (half choose the threshold, half evaluate); "
                          f"got {n_trials}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1 - confidence
    params = dict(params or {})
    rng = np.random.default_rng(seed)
    data = data.reset_index(drop=True)
    probe_schema = schema if schema is not None else Schema.infer(data)
    columns = _numeric_columns(data, probe_schema)
    if n_canaries is None:
        n_canaries = max(1, min(2 * len(columns), MAX_DEFAULT_CANARIES))
    canary_rows, canaries = make_canaries(data, n_canaries, columns=columns, rng=rng)
    full = pd.concat([data, canary_rows], ignore_index=True)
    if schema is None:
        schema = Schema.infer(full, name="audit")
    schema.validate(full, where="audit data with canaries")
    delta = privacy.resolve_delta(len(full))
    claim = privacy.model_copy(update={"delta": delta})
    claimed = float(privacy.epsilon)
    design = plan_audit(claimed, delta, n_canaries=len(canaries), n_trials=n_trials,
                        max_trials=max_trials, confidence=confidence)
    sized_to_claim, n_trials = n_trials is None, design.n_trials
    n_synth = int(n_synthetic or SYNTHETIC_FACTOR * len(data))
    details: dict[str, Any] = {
        "generator": kind if isinstance(kind, str) else getattr(kind, "__name__", "factory"),
        "params": params,
        "delta": delta,
        "n_rows": len(data),
        "n_synthetic": n_synth,
        "n_trials": n_trials,
        "n_canaries": len(canaries),
        "trials_sized_to_claim": sized_to_claim,
        "planned_detectable_epsilon": design.detectable_epsilon,
        "best_case_detectable_epsilon": design.best_case_epsilon,
        "trials_needed": design.trials_needed,
        "canaries": [{"column": c.column, "direction": "high" if c.direction > 0 else "low",
                      "value": c.value, "sd": c.scale} for c in canaries],
    }
    if not design.feasible:
        details.update(reason=design.reason, fitted=False)
        return AuditResult(epsilon_lower_bound=math.nan, claimed_epsilon=claimed,
                           verdict="INCONCLUSIVE", confidence=confidence,
                           detectable_epsilon=design.detectable_epsilon, details=details)

    scores = np.empty((n_trials, len(canaries)))
    member = np.zeros((n_trials, len(canaries)), dtype=bool)
    started = time.perf_counter()
    for t in range(n_trials):
        member[t] = rng.random(len(canaries)) < 0.5
        train = pd.concat([data, canary_rows[member[t]]], ignore_index=True)
        train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
        fit_seed = int(rng.integers(0, 2**31 - 1))
        if callable(kind):
            gen = kind(schema, privacy=claim, seed=fit_seed, **params)
        else:
            gen = make_generator(kind, schema, privacy=claim, seed=fit_seed, **params)
        gen.fit(train)
        synth = gen.sample(n_synth, seed=fit_seed)
        scores[t] = _scores(synth, canaries)
        if progress is not None:
            progress("audit", t + 1, n_trials)

    half = n_trials // 2
    cal_s, cal_m = scores[:half].ravel(), member[:half].ravel()
    ev_s, ev_m = scores[half:].ravel(), member[half:].ravel()
    threshold = _best_threshold(cal_s, cal_m, delta, alpha)
    guess = ev_s <= threshold
    tp, fp = int((guess & ev_m).sum()), int((guess & ~ev_m).sum())
    n_pos, n_neg = int(ev_m.sum()), int((~ev_m).sum())
    bound = epsilon_lower_bound(tp, n_pos, fp, n_neg, delta=delta, alpha=alpha)
    detectable = detectable_epsilon(n_pos, n_neg, delta=delta, alpha=alpha)
    lb = float(bound["epsilon"])
    if lb > claimed:
        verdict: Verdict = "FAIL"
    elif detectable <= claimed:
        verdict = "INCONCLUSIVE"
        details["reason"] = (
            f"the claimed ε = {claimed:g} is above what this audit could detect: its "
            f"{n_pos} members and {n_neg} non-members in the evaluation half allow at most "
            f"ε = {detectable:.2f} even for a perfect attack (an unlucky split of the "
            f"random memberships); rerun with another --seed or more trials "
            f"(about {design.trials_needed or MAX_PLANNED_TRIALS:,})")
    else:
        verdict = "PASS"
    details.update({
        "fitted": True,
        "calibration_trials": half,
        "threshold_sd": threshold,
        "evaluation": {"tp": tp, "positives": n_pos, "fp": fp, "negatives": n_neg, **bound},
        "max_detectable_epsilon": detectable,
        "scores_sd": scores.round(4).tolist(),
        "member": member.tolist(),
        "seconds": round(time.perf_counter() - started, 2),
        "method": ("canaries included independently (Bernoulli 1/2) per trial; score = "
                   "distance to the nearest synthetic row on the canary's column; threshold "
                   "chosen on the first half of the trials, one-sided Clopper-Pearson bounds "
                   "at alpha/2 on TPR and FPR on the second half; "
                   "eps_lb = max(log((TPR_lo - delta)/FPR_hi), "
                   "log((1 - FPR_hi - delta)/(1 - TPR_lo)), 0); detectable eps = eps_lb of a "
                   "perfect attack on the same members and non-members; outcomes of the "
                   "canaries of one trial are treated as independent"),
    })
    return AuditResult(epsilon_lower_bound=lb, claimed_epsilon=claimed, verdict=verdict,
                       confidence=confidence, detectable_epsilon=detectable, details=details)
