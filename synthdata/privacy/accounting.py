"""Privacy accounting maths: pure functions, no state.

Unit of privacy and neighbouring relation
-----------------------------------------
Two datasets are neighbours when one is the other plus one unit (one row; in multi-table
data one patient with all their rows) -- the *add/remove* relation that opacus's
accountants use for Poisson-sampled DP-SGD. A histogram over one column therefore has
L2 sensitivity 1 (a unit falls in exactly one bin).

Two kinds of spend
------------------
* **zCDP** (Bun & Steinke 2016). The Gaussian mechanism with L2 sensitivity ``Δ`` and noise
  ``σ`` is ``ρ = Δ² / (2σ²)``-zCDP; a pure ``ε``-DP mechanism (Laplace) is ``ε²/2``-zCDP;
  the exponential mechanism with parameter ``ε`` (a selection) is ε-bounded range and so
  ``ε²/8``-zCDP (Cesar & Rogers 2021), a quarter of the generic bound. zCDP composes by
  adding ``ρ``. A mechanism that is ρ-zCDP except on an event of probability ``δ₀`` (e.g. the threshold of a DP category set) is
  ``δ₀``-approximately ρ-zCDP; those compose by adding ``ρ`` and ``δ₀``.
* **DP-SGD** (Poisson-subsampled Gaussian). Composed with an opacus accountant
  (PRV by default, RDP on request) to an ``(ε, δ)`` pair at a fixed ``δ``. Both are upper
  bounds on the true ε; opacus's ``gdp`` accountant (a central-limit approximation, which
  can fall below the true ε) is not offered. ``tests/privacy/test_accounting_crosscheck.py``
  checks both against Google's ``dp-accounting`` PLD accountant.

How the ledger composes them (:func:`compose`)
----------------------------------------------
Given the budget ``δ`` and the DP-SGD share ``s`` (``dpsgd_delta_share``, default 1/2):

1. DP-SGD: all DP-SGD entries that use the same accountant are composed *together* by that
   accountant (its history holds every ``(noise_multiplier, sample_rate, steps)``) at
   ``δ_sgd = s·δ / (number of accountants used)``. If no DP-SGD is planned, ``δ_sgd = 0``.
2. zCDP: ``ρ = Σρᵢ`` and ``δ₀ = Σδ₀ᵢ`` are converted at whatever δ is left,
   ``δ_conv = δ − δ_sgd_total − δ₀ − Σδ(explicit (ε, δ) entries)``, with the
   conversion of Canonne, Kamath & Steinke 2020 (:func:`zcdp_to_approx_dp`).
3. Total: basic composition of the pieces, ``ε = ε_zCDP + Σ ε_sgd + Σ ε_explicit`` and
   ``δ = (sum of the δs actually used) ≤ δ``.

The split is fixed by the rule above (not chosen after seeing data) and only depends on
which kinds of entries exist, so the DP-SGD noise can be calibrated up front at
``δ_sgd`` and the ledger will recompute exactly the same ε.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy.special import ndtr, ndtri

from synthdata.errors import ConfigError

Accountant = Literal["prv", "rdp"]
ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")
REMOVED_ACCOUNTANTS: dict[str, str] = {
    "gdp": ("the 'gdp' accountant was removed: it is a central-limit approximation of "
            "DP-SGD's privacy loss, not an upper bound, so noise calibrated to it can spend "
            "more than the claimed ε; use accountant 'prv' (the default, tightest) or 'rdp'"),
}

# Plans leave this relative slack so that float rounding never pushes a planned total
# over the budget.
_SAFETY = 1e-6

__all__ = [
    "ACCOUNTANTS",
    "BudgetPlan",
    "Composition",
    "calibrate_dpsgd_noise",
    "calibrate_gaussian_sigma",
    "check_accountant",
    "compose",
    "dpsgd_epsilon",
    "exponential_rho",
    "gaussian_rho",
    "make_accountant",
    "plan_split",
    "pure_to_rho",
    "rho_for_epsilon",
    "threshold_delta",
    "threshold_factor_for_delta",
    "zcdp_delta",
    "zcdp_to_approx_dp",
]


# --------------------------------------------------------------------------- Gaussian / zCDP


def gaussian_rho(sigma: float, sensitivity: float = 1.0) -> float:
    """zCDP ``ρ = Δ²/(2σ²)`` of the Gaussian mechanism (L2 sensitivity ``Δ``, noise ``σ``)."""
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0 for the Gaussian mechanism, got {sigma!r}")
    if not sensitivity >= 0:
        raise ConfigError(f"sensitivity must be >= 0, got {sensitivity!r}")
    return float(sensitivity) ** 2 / (2.0 * float(sigma) ** 2)


def calibrate_gaussian_sigma(rho: float, sensitivity: float = 1.0) -> float:
    """Noise ``σ = Δ/√(2ρ)`` that makes the Gaussian mechanism exactly ``ρ``-zCDP."""
    if not (rho > 0 and math.isfinite(rho)):
        raise ConfigError(f"rho must be a finite number > 0, got {rho!r}")
    if not sensitivity >= 0:
        raise ConfigError(f"sensitivity must be >= 0, got {sensitivity!r}")
    return float(sensitivity) / math.sqrt(2.0 * float(rho))


def pure_to_rho(epsilon: float) -> float:
    """A pure ``ε``-DP mechanism is ``ε²/2``-zCDP (Bun & Steinke 2016, Prop. 1.4)."""
    if not epsilon >= 0:
        raise ConfigError(f"epsilon must be >= 0, got {epsilon!r}")
    return float(epsilon) ** 2 / 2.0


def exponential_rho(epsilon: float) -> float:
    """zCDP ``ρ = ε²/8`` of the exponential mechanism with parameter ``ε`` (it picks ``i``
    with probability ∝ ``exp(ε·u_i / (2Δ))``; equivalently report-noisy-max with Gumbel noise
    of scale ``2Δ/ε``): it is ε-bounded range, and ε-bounded range implies ε²/8-zCDP
    (Cesar & Rogers 2021, "Bounding, Concentrating, and Truncating", Lemma 3.2). The same
    map as OpenDP's ``make_noisy_max`` under ``zero_concentrated_divergence``."""
    if epsilon < 0 or not math.isfinite(epsilon):
        raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    return float(epsilon) ** 2 / 8.0


@functools.lru_cache(maxsize=4096)
def zcdp_delta(rho: float, epsilon: float) -> float:
    """Smallest δ such that ``ρ``-zCDP implies ``(ε, δ)``-DP.

    Canonne, Kamath & Steinke 2020 ("The discrete Gaussian for differential privacy"),
    Prop. 12/Cor. 13: ``δ = min_{α>1} exp((α−1)(αρ−ε)) / (α−1) · (1 − 1/α)^α``;
    the minimising α is found by bisection on the derivative (the objective is convex in α).
    """
    rho, epsilon = float(rho), float(epsilon)
    if rho < 0 or epsilon < 0:
        raise ConfigError(f"rho and epsilon must be >= 0, got rho={rho!r}, epsilon={epsilon!r}")
    if rho == 0:
        return 0.0
    a_min, a_max = 1.01, (epsilon + 1.0) / (2.0 * rho) + 2.0
    alpha = a_min
    for _ in range(200):
        alpha = 0.5 * (a_min + a_max)
        derivative = (2.0 * alpha - 1.0) * rho - epsilon + math.log1p(-1.0 / alpha)
        if derivative < 0:
            a_min = alpha
        else:
            a_max = alpha
        if a_max - a_min < 1e-12 * a_max:
            break
    log_delta = (alpha - 1.0) * (alpha * rho - epsilon) + alpha * math.log1p(-1.0 / alpha)
    log_delta -= math.log(alpha - 1.0)
    return min(1.0, math.exp(min(log_delta, 0.0)))


@functools.lru_cache(maxsize=4096)
def zcdp_to_approx_dp(rho: float, delta: float) -> float:
    """ε such that ``ρ``-zCDP implies ``(ε, δ)``-DP (an upper bound, never below the truth).

    Bisection on ε over :func:`zcdp_delta` (Canonne–Kamath–Steinke 2020), started from the
    classic bound ``ε = ρ + 2√(ρ ln(1/δ))`` (Bun–Steinke 2016), which it always improves on.
    Returns ``inf`` when ``δ <= 0`` and ``ρ > 0``; 0 when ``ρ == 0``.
    """
    rho, delta = float(rho), float(delta)
    if rho < 0:
        raise ConfigError(f"rho must be >= 0, got {rho!r}")
    if rho == 0:
        return 0.0
    if not math.isfinite(rho):
        return math.inf
    if delta <= 0:
        return math.inf
    if delta >= 1:
        return 0.0
    eps_hi = rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))
    eps_lo = 0.0
    for _ in range(200):
        mid = 0.5 * (eps_lo + eps_hi)
        if zcdp_delta(rho, mid) <= delta:
            eps_hi = mid
        else:
            eps_lo = mid
        if eps_hi - eps_lo < 1e-10 * max(eps_hi, 1e-12):
            break
    return eps_hi


@functools.lru_cache(maxsize=1024)
def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """Largest ``ρ`` whose conversion satisfies ``zcdp_to_approx_dp(ρ, δ) <= ε`` (verified)."""
    epsilon, delta = float(epsilon), float(delta)
    if epsilon <= 0 or delta <= 0:
        return 0.0
    if delta >= 1 or not math.isfinite(epsilon):
        return math.inf
    lo, hi = 0.0, epsilon  # ρ <= ε always, since ε(ρ, δ) >= ρ
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if zcdp_delta(mid, epsilon) <= delta:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(hi, 1e-300):
            break
    rho = lo
    while rho > 0 and zcdp_to_approx_dp(rho, delta) > epsilon:
        rho *= 1.0 - 1e-9
    return rho


# --------------------------------------------------------------------------- thresholds


def threshold_delta(threshold_factor: float) -> float:
    """δ paid by releasing only counts above ``1 + threshold_factor·σ`` (one new category).

    Under add/remove-one-row, a category that exists only because of the added row has true
    count 1; it is released with probability ``P(1 + N(0, σ²) > 1 + kσ) = Φ̄(k)``.
    """
    return float(ndtr(-float(threshold_factor)))


def threshold_factor_for_delta(delta: float) -> float:
    """Inverse of :func:`threshold_delta`: ``k = Φ̄⁻¹(δ)``."""
    if not 0 < delta < 1:
        raise ConfigError(f"threshold delta must be in (0, 1), got {delta!r}")
    return float(-ndtri(float(delta)))


# --------------------------------------------------------------------------- DP-SGD


def check_accountant(name: str) -> str:
    """``name`` if it is one of :data:`ACCOUNTANTS`, else a ConfigError saying what to use."""
    if name in REMOVED_ACCOUNTANTS:
        raise ConfigError(REMOVED_ACCOUNTANTS[name])
    if name not in ACCOUNTANTS:
        raise ConfigError(f"accountant must be one of {ACCOUNTANTS}, got {name!r}")
    return name


def make_accountant(name: str):  # noqa: ANN201 - opacus type, imported lazily
    """A fresh opacus accountant (``prv`` or ``rdp``) with an empty history."""
    check_accountant(name)
    try:
        from opacus.accountants import PRVAccountant, RDPAccountant
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "DP-SGD accounting needs opacus: pip install 'synthdata[dp]'"
        ) from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"prv": PRVAccountant, "rdp": RDPAccountant}[name]()


def _normalise_history(
    history: Iterable[tuple[float, float, int]],
) -> tuple[tuple[float, float, int], ...]:
    """Merge identical ``(noise_multiplier, sample_rate)`` pairs (composition commutes)."""
    merged: dict[tuple[float, float], int] = {}
    for sigma, q, steps in history:
        key = (float(sigma), float(q))
        merged[key] = merged.get(key, 0) + int(steps)
    return tuple((s, q, n) for (s, q), n in merged.items() if n > 0)


def dpsgd_epsilon(
    history: Iterable[tuple[float, float, int]], delta: float, accountant: str = "prv"
) -> float:
    """ε of Poisson-subsampled Gaussian steps ``(noise_multiplier, sample_rate, steps)``.

    Composed by the opacus accountant ``accountant`` at ``delta``; cached, so repeated
    ledger queries cost nothing.
    """
    return _dpsgd_epsilon_cached(_normalise_history(history), float(delta), accountant)


@functools.lru_cache(maxsize=256)
def _dpsgd_epsilon_cached(
    history: tuple[tuple[float, float, int], ...], delta: float, accountant: str
) -> float:
    if not history:
        return 0.0
    if delta <= 0:
        return math.inf
    acc = make_accountant(accountant)
    acc.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps = float(acc.get_epsilon(delta=delta))
    return eps if math.isfinite(eps) else math.inf


def calibrate_dpsgd_noise(
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "prv",
    *,
    epsilon_tolerance: float = 0.01,
) -> float:
    """Noise multiplier so that ``steps`` DP-SGD steps spend at most ``target_epsilon``.

    Uses opacus's ``get_noise_multiplier`` (binary search; the returned σ spends
    ``<= target_epsilon`` at ``target_delta`` under the same accountant), then checks the
    result with :func:`dpsgd_epsilon` so the ledger will agree.
    """
    if not (target_epsilon > 0 and 0 < target_delta < 1):
        raise ConfigError(
            f"target_epsilon must be > 0 and target_delta in (0, 1), got "
            f"{target_epsilon!r}, {target_delta!r}"
        )
    if not 0 < sample_rate <= 1 or steps < 1:
        raise ConfigError(
            f"sample_rate must be in (0, 1] and steps >= 1, got {sample_rate!r}, {steps!r}"
        )
    check_accountant(accountant)
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sigma = float(
                get_noise_multiplier(
                    target_epsilon=float(target_epsilon),
                    target_delta=float(target_delta),
                    sample_rate=float(sample_rate),
                    steps=int(steps),
                    accountant=accountant,
                    epsilon_tolerance=epsilon_tolerance,
                )
            )
        except ValueError as err:
            raise ConfigError(
                f"no noise multiplier reaches ε={target_epsilon} at δ={target_delta} with "
                f"sample_rate={sample_rate} over {steps} steps; raise ε or use fewer steps"
            ) from err
    while dpsgd_epsilon([(sigma, sample_rate, steps)], target_delta, accountant) > target_epsilon:
        sigma *= 1.01
    return sigma


# --------------------------------------------------------------------------- composition


@dataclass(frozen=True)
class Composition:
    """The result of :func:`compose`: the total and the pieces it was built from."""

    epsilon: float
    delta: float
    zcdp_rho: float
    zcdp_epsilon: float
    conversion_delta: float
    dpsgd_epsilon: Mapping[str, float] = field(default_factory=dict)
    dpsgd_delta: float = 0.0
    explicit_epsilon: float = 0.0


def dpsgd_delta_for(delta: float, n_accountants: int, dpsgd_delta_share: float) -> float:
    """δ at which each DP-SGD accountant is evaluated (see the module docstring, rule 1)."""
    if n_accountants <= 0:
        return 0.0
    return float(delta) * float(dpsgd_delta_share) / n_accountants


def compose(
    *,
    delta: float,
    zcdp_rho: float = 0.0,
    zcdp_delta_total: float = 0.0,
    dpsgd: Mapping[str, Sequence[tuple[float, float, int]]] | None = None,
    dpsgd_planned: bool = False,
    explicit: Sequence[tuple[float, float]] = (),
    dpsgd_delta_share: float = 0.5,
) -> Composition:
    """Compose the ledger's pieces into one ``(ε, δ)`` (rules 1-3 of the module docstring).

    ``dpsgd`` maps accountant name to its history; ``dpsgd_planned`` reserves the DP-SGD δ
    share even before any DP-SGD entry exists (a reservation). ``explicit`` holds ``(ε, δ)``
    pieces that are added as they are. Returns ``ε = inf`` (infeasible) when the δ pieces
    alone exceed ``delta``, or when no δ is left for the zCDP conversion but ``ρ > 0``.
    """
    dpsgd = {k: v for k, v in (dpsgd or {}).items() if v}
    n_acc = len(dpsgd) if dpsgd else (1 if dpsgd_planned else 0)
    d_sgd = dpsgd_delta_for(delta, n_acc, dpsgd_delta_share)
    sgd_eps = {name: dpsgd_epsilon(hist, d_sgd, name) for name, hist in dpsgd.items()}
    explicit_eps = float(sum(e for e, _ in explicit))
    explicit_delta = float(sum(d for _, d in explicit))
    d_conv = float(delta) - d_sgd * n_acc - zcdp_delta_total - explicit_delta
    over_delta = d_conv < -1e-12 * float(delta)  # the δ pieces alone exceed the budget
    if zcdp_rho > 0:
        z_eps = zcdp_to_approx_dp(float(zcdp_rho), d_conv) if d_conv > 0 else math.inf
        used_conv = max(d_conv, 0.0)
    else:
        z_eps, used_conv = 0.0, 0.0
    eps = math.inf if over_delta else z_eps + sum(sgd_eps.values()) + explicit_eps
    used_delta = used_conv + zcdp_delta_total + explicit_delta + d_sgd * n_acc
    return Composition(
        epsilon=float(eps),
        delta=float(min(used_delta, delta) if math.isfinite(eps) else used_delta),
        zcdp_rho=float(zcdp_rho),
        zcdp_epsilon=float(z_eps),
        conversion_delta=float(max(d_conv, 0.0)),
        dpsgd_epsilon=sgd_eps,
        dpsgd_delta=d_sgd,
        explicit_epsilon=explicit_eps,
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class BudgetPlan:
    """How a budget ``(epsilon, delta)`` is split before any data is read.

    * ``preprocessing_rho`` -- zCDP budget for DP preprocessing (bounds, categories,
      missing rates, marginals); ``preprocessing_threshold_delta`` -- the δ those steps may
      spend on category thresholds (split it across columns).
    * ``training_epsilon``/``training_delta`` -- for DP-SGD: calibrate the noise with
      :func:`calibrate_dpsgd_noise` at exactly these values (``training_delta`` is the
      ledger's DP-SGD δ). For ``training="zcdp"`` (DP-EM), ``training_rho`` is the budget,
      ``training_delta`` is 0, and the two ``*_epsilon`` fields are each part's ε *alone*
      (zCDP parts compose in ρ, not in ε).
    """

    epsilon: float
    delta: float
    preprocessing_rho: float
    preprocessing_threshold_delta: float
    preprocessing_epsilon: float
    training_epsilon: float
    training_delta: float
    training_rho: float | None
    conversion_delta: float
    training: str


def plan_split(
    epsilon: float,
    delta: float,
    preprocessing_share: float = 0.1,
    *,
    training: Literal["dpsgd", "zcdp"] = "dpsgd",
    dpsgd_delta_share: float = 0.5,
    threshold_delta_share: float = 0.5,
) -> BudgetPlan:
    """Split ``(epsilon, delta)`` between DP preprocessing and training.

    ``training="dpsgd"``: DP-SGD gets ``δ_sgd = dpsgd_delta_share·δ`` and
    ``ε_train = (1 − preprocessing_share)·ε``; the rest of δ is split between category
    thresholds (``threshold_delta_share``) and the zCDP conversion, and the preprocessing ρ
    is the largest whose conversion costs at most ``preprocessing_share·ε``.

    ``training="zcdp"`` (DP-EM): everything is zCDP; the whole ρ that fits in ε at the
    conversion δ is split ``preprocessing_share : 1 − preprocessing_share``.

    Composing the plan with :func:`compose` never exceeds ``(epsilon, delta)`` (tested).
    """
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ConfigError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
    if not 0 <= preprocessing_share < 1:
        raise ConfigError(f"preprocessing_share must be in [0, 1), got {preprocessing_share!r}")
    if not 0 <= threshold_delta_share < 1:
        raise ConfigError(
            f"threshold_delta_share must be in [0, 1), got {threshold_delta_share!r}"
        )
    if training == "dpsgd":
        if not 0 < dpsgd_delta_share <= 1 or (dpsgd_delta_share == 1 and preprocessing_share):
            raise ConfigError(
                f"dpsgd_delta_share must be in (0, 1) (1 only without preprocessing), got "
                f"{dpsgd_delta_share!r}"
            )
        d_sgd = delta * dpsgd_delta_share
        d_zshare = delta - d_sgd
        d_thr = d_zshare * threshold_delta_share
        d_conv = d_zshare - d_thr
        eps_pre = epsilon * preprocessing_share
        rho_pre = rho_for_epsilon(eps_pre, d_conv) if eps_pre > 0 else 0.0
        eps_train = (epsilon - eps_pre) * (1.0 - _SAFETY)
        return BudgetPlan(
            epsilon=float(epsilon),
            delta=float(delta),
            preprocessing_rho=rho_pre,
            preprocessing_threshold_delta=d_thr,
            preprocessing_epsilon=eps_pre,
            training_epsilon=eps_train,
            training_delta=d_sgd,
            training_rho=None,
            conversion_delta=d_conv,
            training=training,
        )
    if training == "zcdp":
        d_thr = delta * threshold_delta_share
        d_conv = delta - d_thr
        rho_all = rho_for_epsilon(epsilon * (1.0 - _SAFETY), d_conv)
        rho_pre = rho_all * preprocessing_share
        rho_train = rho_all - rho_pre
        return BudgetPlan(
            epsilon=float(epsilon),
            delta=float(delta),
            preprocessing_rho=rho_pre,
            preprocessing_threshold_delta=d_thr,
            preprocessing_epsilon=zcdp_to_approx_dp(rho_pre, d_conv) if rho_pre else 0.0,
            training_epsilon=zcdp_to_approx_dp(rho_train, d_conv) if rho_train else 0.0,
            training_delta=0.0,
            training_rho=rho_train,
            conversion_delta=d_conv,
            training=training,
        )
    raise ConfigError(f"training must be 'dpsgd' or 'zcdp', got {training!r}")
