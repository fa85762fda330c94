"""The one DP count of a run: n (rows or patients) is not public, so it is released once.

At the start of a DP run the number of training units is counted with the Gaussian
mechanism (ledger step ``data.count``). Its ρ is a small share (:data:`COUNT_SHARE`) of
the preprocessing ρ; generators subtract what the count spent from their preprocessing
budget, so the plan's total is unchanged. The noisy count (rounded, at least 1) then
drives everything that used the exact n: the default δ, the DP-SGD sampling rate and
steps, the default synthetic size, and every count in a release artefact. Poisson
sampling at a rate fixed from the noisy n is valid under add/remove whatever the true n.

The released value is stored in the ledger entry (``params["released"]``): it is a DP
release like any other noisy statistic.
"""

from __future__ import annotations

from typing import Any

from synthdata.errors import ConfigError
from synthdata.privacy.accounting import plan_split
from synthdata.privacy.config import DPConfig
from synthdata.privacy.ledger import PrivacyLedger

COUNT_STEP = "data.count"
COUNT_SHARE = 0.05  # of the preprocessing ρ
_DELTA_CEILING = 1e-5  # the default δ is never above this (see config.default_delta)

__all__ = ["COUNT_SHARE", "COUNT_STEP", "count_rho", "dp_unit_count", "released_count"]


def _planning_delta(cfg: DPConfig) -> float:
    return float(cfg.delta) if cfg.delta is not None else _DELTA_CEILING


def count_rho(cfg: DPConfig) -> float:
    """ρ of the unit count: ``COUNT_SHARE`` of the smallest preprocessing ρ any generator's
    plan could give (DP-SGD or DP-EM) at the largest δ the run could resolve.

    The generator's plan may resolve a smaller δ (hence a smaller preprocessing ρ); the
    count then takes a little more than 5% of it, never more than ~7% (δ from 1e-5 down
    to 1e-8).
    """
    if cfg.preprocessing_share <= 0:
        raise ConfigError("privacy.preprocessing_share is 0, but a DP run spends a little of "
                          "the preprocessing share on one DP count of the training units (n is "
                          "not public); set privacy.preprocessing_share above 0 (e.g. 0.05)")
    delta = _planning_delta(cfg)
    rho = min(plan_split(cfg.epsilon, delta, cfg.preprocessing_share, training=kind,
                         dpsgd_delta_share=cfg.dpsgd_delta_share,
                         threshold_delta_share=cfg.threshold_delta_share).preprocessing_rho
              for kind in ("dpsgd", "zcdp"))
    return COUNT_SHARE * rho


def _dp_count(n_units: int, rho: float, ledger: PrivacyLedger, step: str) -> float:
    """The noisy count (``mechanisms.dp_count``: OpenDP's discrete Gaussian, OS entropy)."""
    from synthdata.privacy.mechanisms import dp_count

    return float(dp_count(n_units, rho, ledger, step))


def dp_unit_count(n_units: int, cfg: DPConfig, *, what: str = "training units"
                  ) -> tuple[PrivacyLedger, int]:
    """Count ``n_units`` with DP and return (the run's ledger, the noisy count).

    The ledger's δ is resolved from the noisy count (``cfg.resolve_delta``), and the count
    is its first entry (``data.count``).
    """
    rho = count_rho(cfg)
    probe = PrivacyLedger(epsilon=cfg.epsilon, delta=_planning_delta(cfg),
                          accountant=cfg.accountant, dpsgd_delta_share=cfg.dpsgd_delta_share,
                          unit=cfg.unit)
    noisy = _dp_count(int(n_units), rho, probe, COUNT_STEP)
    n_hat = max(int(round(noisy)), 1)
    ledger = PrivacyLedger.from_config(cfg, n_rows=n_hat)
    (entry,) = [e for e in probe.entries if e.step == COUNT_STEP]
    params = {k: v for k, v in entry.params.items() if k not in ("sigma", "sensitivity")}
    ledger.charge(COUNT_STEP, "gaussian", rho=entry.rho, sigma=entry.params.get("sigma"),
                  sensitivity=entry.params.get("sensitivity"), released=n_hat,
                  note=f"one DP count of the {what}; the noisy n drives the default δ, "
                       "sampling rates, the default synthetic size and reported counts",
                  **params)
    return ledger, n_hat


def released_count(ledger: Any) -> int | None:
    """The noisy unit count recorded on ``ledger`` (``None`` if the run made none)."""
    if not isinstance(ledger, PrivacyLedger):
        return None
    for entry in ledger.entries:
        if entry.step == COUNT_STEP and entry.params.get("released") is not None:
            return int(entry.params["released"])
    return None


def count_spent_rho(ledger: Any) -> float:
    """ρ already spent on the unit count (generators take it out of preprocessing)."""
    if not isinstance(ledger, PrivacyLedger):
        return 0.0
    return sum(e.rho or 0.0 for e in ledger.entries if e.step == COUNT_STEP)
