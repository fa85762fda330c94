"""Accounting maths: conversions, calibration, composition and budget splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from synthdata.errors import ConfigError
from synthdata.privacy import accounting as acc


def _rdp_grid_epsilon(rho: float, delta: float) -> float:
    """Independent check: the CKS/ALCKS RDP->DP conversion minimised on a dense α grid."""
    alpha = np.exp(np.linspace(np.log(1.0001), np.log(1e5), 400_000))
    eps = alpha * rho + (np.log(1 / delta) + (alpha - 1) * np.log1p(-1 / alpha)
                         - np.log(alpha)) / (alpha - 1)
    return float(eps.min())


def _analytic_gaussian_delta(eps: float, sigma: float) -> float:
    """Exact δ(ε) of the Gaussian mechanism with sensitivity 1 (Balle & Wang 2018)."""
    return float(norm.cdf(1 / (2 * sigma) - eps * sigma) - math.exp(eps) * norm.cdf(
        -1 / (2 * sigma) - eps * sigma))


def test_gaussian_rho_and_sigma_are_inverse() -> None:
    assert acc.gaussian_rho(sigma=2.0, sensitivity=1.0) == pytest.approx(1 / 8)
    assert acc.calibrate_gaussian_sigma(1 / 8, 1.0) == pytest.approx(2.0)
    assert acc.calibrate_gaussian_sigma(0.02, 3.0) == pytest.approx(3 / math.sqrt(0.04))
    assert acc.pure_to_rho(1.0) == 0.5
    with pytest.raises(ConfigError):
        acc.calibrate_gaussian_sigma(0.0)


@pytest.mark.parametrize(("rho", "delta"), [(0.5, 1e-6), (0.01, 1e-5), (2.0, 1e-9), (1e-4, 1e-6)])
def test_zcdp_conversion_matches_known_values(rho: float, delta: float) -> None:
    eps = acc.zcdp_to_approx_dp(rho, delta)
    classic = rho + 2 * math.sqrt(rho * math.log(1 / delta))
    assert eps <= classic
    assert eps == pytest.approx(_rdp_grid_epsilon(rho, delta), rel=1e-4)
    assert acc.zcdp_delta(rho, eps) <= delta * (1 + 1e-9)


def test_zcdp_conversion_known_number_and_soundness() -> None:
    # CKS 2020: rho=0.5, delta=1e-6 gives eps ~= 5.22 (classic bound: 5.76)
    assert acc.zcdp_to_approx_dp(0.5, 1e-6) == pytest.approx(5.2215, abs=1e-3)
    # sound against the exact Gaussian mechanism: its true delta at our eps is below delta
    for sigma in (0.5, 1.0, 3.0, 10.0):
        rho = acc.gaussian_rho(sigma)
        eps = acc.zcdp_to_approx_dp(rho, 1e-6)
        assert _analytic_gaussian_delta(eps, sigma) <= 1e-6
        assert _analytic_gaussian_delta(0.8 * eps, sigma) > 1e-6  # and not very loose


def test_conversion_edge_cases() -> None:
    assert acc.zcdp_to_approx_dp(0.0, 1e-6) == 0.0
    assert acc.zcdp_to_approx_dp(0.1, 0.0) == math.inf
    assert acc.rho_for_epsilon(0.0, 1e-6) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    rho=st.floats(1e-6, 50.0),
    factor=st.floats(1.01, 10.0),
    delta=st.floats(1e-12, 1e-2),
)
def test_conversion_is_monotone(rho: float, factor: float, delta: float) -> None:
    e = acc.zcdp_to_approx_dp(rho, delta)
    # up to float noise: for rho=1e-6, delta=0.004 the optimiser returns ~1e-22 either way
    assert acc.zcdp_to_approx_dp(rho * factor, delta) >= e - 1e-12
    assert acc.zcdp_to_approx_dp(rho, delta / factor) >= e - 1e-12


@settings(max_examples=60, deadline=None)
@given(eps=st.floats(1e-3, 50.0), delta=st.floats(1e-12, 1e-2))
def test_rho_for_epsilon_is_a_verified_inverse(eps: float, delta: float) -> None:
    rho = acc.rho_for_epsilon(eps, delta)
    assert rho > 0
    got = acc.zcdp_to_approx_dp(rho, delta)
    assert got <= eps
    assert got >= eps * (1 - 1e-3)


def test_threshold_delta_roundtrip() -> None:
    assert acc.threshold_delta(acc.threshold_factor_for_delta(1e-7)) == pytest.approx(1e-7)
    assert acc.threshold_delta(0.0) == pytest.approx(0.5)


def test_calibrate_dpsgd_noise_hits_target() -> None:
    sigma = acc.calibrate_dpsgd_noise(2.0, 1e-6, 0.02, 500, accountant="rdp")
    eps = acc.dpsgd_epsilon([(sigma, 0.02, 500)], 1e-6, "rdp")
    assert 1.9 <= eps <= 2.0
    with pytest.raises(ConfigError):
        acc.calibrate_dpsgd_noise(1.0, 1e-6, 1.5, 10)


def test_dpsgd_epsilon_matches_opacus_and_merges_history() -> None:
    from opacus.accountants import PRVAccountant

    opa = PRVAccountant()
    for _ in range(300):
        opa.step(noise_multiplier=1.2, sample_rate=0.01)
    ours = acc.dpsgd_epsilon([(1.2, 0.01, 100), (1.2, 0.01, 200)], 1e-6, "prv")
    assert ours == pytest.approx(opa.get_epsilon(1e-6), rel=1e-9)


def test_compose_rules() -> None:
    # zCDP only: conversion at the whole delta
    c = acc.compose(delta=1e-6, zcdp_rho=0.1)
    assert c.epsilon == pytest.approx(acc.zcdp_to_approx_dp(0.1, 1e-6))
    assert c.delta == pytest.approx(1e-6)
    # with DP-SGD: half the delta each; epsilons add
    hist = {"rdp": [(1.0, 0.01, 100)]}
    c2 = acc.compose(delta=1e-6, zcdp_rho=0.1, dpsgd=hist)
    assert c2.dpsgd_delta == pytest.approx(5e-7)
    expected = acc.zcdp_to_approx_dp(0.1, 5e-7) + acc.dpsgd_epsilon(hist["rdp"], 5e-7, "rdp")
    assert c2.epsilon == pytest.approx(expected)
    assert c2.delta <= 1e-6
    # delta pieces alone over budget: infeasible
    assert acc.compose(delta=1e-6, explicit=[(0.1, 2e-6)]).epsilon == math.inf


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.1, 20.0),
    log_delta=st.floats(-10, -4),
    share=st.floats(0.0, 0.9),
)
def test_zcdp_plan_fits(eps: float, log_delta: float, share: float) -> None:
    delta = 10**log_delta
    plan = acc.plan_split(eps, delta, share, training="zcdp")
    comp = acc.compose(
        delta=delta,
        zcdp_rho=plan.preprocessing_rho + plan.training_rho,
        zcdp_delta_total=plan.preprocessing_threshold_delta,
    )
    assert comp.epsilon <= eps
    assert comp.delta <= delta
    assert comp.epsilon >= 0.99 * eps  # and the plan does not waste budget


@pytest.mark.parametrize(
    ("eps", "log_delta", "share", "q", "steps"),
    [(0.5, -9, 0.0, 0.001, 50), (3.0, -6, 0.1, 0.02, 300), (10.0, -5, 0.5, 0.1, 1000)],
)
def test_dpsgd_plan_fits(eps: float, log_delta: float, share: float, q: float, steps: int) -> None:
    delta = 10**log_delta
    plan = acc.plan_split(eps, delta, share)
    sigma = acc.calibrate_dpsgd_noise(plan.training_epsilon, plan.training_delta, q, steps, "rdp")
    comp = acc.compose(
        delta=delta,
        zcdp_rho=plan.preprocessing_rho,
        zcdp_delta_total=plan.preprocessing_threshold_delta,
        dpsgd={"rdp": [(sigma, q, steps)]},
    )
    assert comp.dpsgd_delta == plan.training_delta
    assert comp.epsilon <= eps
    assert comp.delta <= delta


def test_plan_split_validates() -> None:
    with pytest.raises(ConfigError):
        acc.plan_split(0.0, 1e-6)
    with pytest.raises(ConfigError):
        acc.plan_split(1.0, 1e-6, 1.0)
    with pytest.raises(ConfigError):
        acc.plan_split(1.0, 1e-6, 0.1, dpsgd_delta_share=1.0)
    plan = acc.plan_split(1.0, 1e-6, 0.0, dpsgd_delta_share=1.0)
    assert plan.training_delta == 1e-6 and plan.preprocessing_rho == 0.0


def test_only_upper_bound_accountants_are_offered() -> None:
    assert acc.ACCOUNTANTS == ("prv", "rdp")
    for call in (lambda: acc.make_accountant("gdp"),
                 lambda: acc.dpsgd_epsilon([(1.0, 0.01, 100)], 1e-6, "gdp"),
                 lambda: acc.calibrate_dpsgd_noise(1.0, 1e-6, 0.01, 100, accountant="gdp")):
        with pytest.raises(ConfigError, match="not an upper bound.*'prv'"):
            call()
    with pytest.raises(ConfigError, match="must be one of"):
        acc.make_accountant("moments")
    fresh = acc.make_accountant("rdp")
    assert type(fresh).__name__ == "RDPAccountant" and fresh.history == []
