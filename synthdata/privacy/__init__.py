"""Differential privacy: configuration, the privacy ledger, accounting and DP primitives.

``DPConfig`` and ``PrivacyLedger`` are the objects other stages use; accounting maths are
pure functions in :mod:`.accounting`; DP statistics (histograms, categories, quantiles,
bounds, means, missing rates) live in :mod:`.mechanisms` and charge the ledger themselves.
"""

from synthdata.privacy.accounting import (
    BudgetPlan,
    Composition,
    calibrate_dpsgd_noise,
    calibrate_gaussian_sigma,
    compose,
    dpsgd_epsilon,
    gaussian_rho,
    plan_split,
    pure_to_rho,
    rho_for_epsilon,
    zcdp_to_approx_dp,
)
from synthdata.privacy.config import DPConfig, default_delta
from synthdata.privacy.ledger import LedgerEntry, PrivacyLedger, Reservation

__all__ = [
    "BudgetPlan",
    "Composition",
    "DPConfig",
    "LedgerEntry",
    "PrivacyLedger",
    "Reservation",
    "calibrate_dpsgd_noise",
    "calibrate_gaussian_sigma",
    "compose",
    "default_delta",
    "dpsgd_epsilon",
    "gaussian_rho",
    "plan_split",
    "pure_to_rho",
    "rho_for_epsilon",
    "zcdp_to_approx_dp",
]
