"""Independent cross-check of our accountants against Google's ``dp-accounting`` PLD accountant.

Privacy-loss-distribution (PLD) accounting is numerically near-exact: its *optimistic*
estimate is a lower bound on the true ε and its *pessimistic* estimate (connect-the-dots)
an upper bound that is within 0.1 % of the truth here. Our ε is an upper bound, so it
must be at least PLD's optimistic ε, and at least PLD's pessimistic ε minus a 0.5 %
tolerance; to be useful it must not be far above PLD's pessimistic ε. Measured
ratios ours/PLD (pessimistic), on this machine:

* DP-SGD, PRV accountant: 1.001-1.021; RDP accountant: 1.08-1.14.
* zCDP -> (ε, δ) conversion of a Gaussian mechanism (Canonne-Kamath-Steinke): 1.05-1.11.
* The whole ledger of a DP gmm fit on flchain at ε = 3 (every entry re-composed by PLD from
  its recorded σ and sensitivity): about 1.08.

Add/remove-one neighbours throughout, as in the ledger and opacus.
"""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest

import synthdata as sd
from synthdata.privacy import DPConfig
from synthdata.privacy import accounting as acc

pldm = pytest.importorskip("dp_accounting.pld.privacy_loss_distribution")

ABS_TOL = 1e-3  # float slack when comparing an upper bound with PLD's lower bound
REL_TOL = 5e-3  # ours >= PLD pessimistic · (1 − REL_TOL): PLD's own discretisation error
PRV_MAX_RATIO = 1.05
RDP_MAX_RATIO = 1.20
ZCDP_MAX_RATIO = 1.15


@pytest.fixture(autouse=True)
def _quiet_dp_accounting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)  # its "connect the dots" notice for optimistic PLDs


def _gaussian_pld(noise_multiplier: float, *, sampling_prob: float = 1.0, pessimistic: bool,
                  interval: float = 1e-4):  # noqa: ANN202 - a dp_accounting object
    """PLD of one (optionally Poisson-subsampled) Gaussian step, sensitivity 1."""
    return pldm.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=sampling_prob, pessimistic_estimate=pessimistic,
        value_discretization_interval=interval, use_connect_dots=pessimistic)


def _pld_bracket(plds_lo: list, plds_hi: list, delta: float) -> tuple[float, float]:
    lo, hi = plds_lo[0], plds_hi[0]
    for p in plds_lo[1:]:
        lo = lo.compose(p)
    for p in plds_hi[1:]:
        hi = hi.compose(p)
    return float(lo.get_epsilon_for_delta(delta)), float(hi.get_epsilon_for_delta(delta))


def _dpsgd_bracket(sigma: float, q: float, steps: int, delta: float) -> tuple[float, float]:
    lo = _gaussian_pld(sigma, sampling_prob=q, pessimistic=False)
    hi = _gaussian_pld(sigma, sampling_prob=q, pessimistic=True)
    return (float(lo.self_compose(steps).get_epsilon_for_delta(delta)),
            float(hi.self_compose(steps).get_epsilon_for_delta(delta)))


# (sample rate, steps, target ε, δ): the first two are the vae and ctgan defaults on flchain
# (n = 7874; batch 1000 x 300 epochs; batch 500 x 300 epochs; ε = 0.9·3 at δ_sgd = 5e-6).
DPSGD_CASES = [
    (1000 / 7874, 300 * 8, 2.7, 5e-6),
    (500 / 7874, 300 * 15, 2.7, 5e-6),
    (0.01, 1000, 1.0, 1e-6),
    (0.05, 200, 8.0, 1e-5),
    (0.2, 50, 0.5, 1e-5),
]


@pytest.mark.parametrize(("q", "steps", "target", "delta"), DPSGD_CASES)
def test_dpsgd_accountants_are_tight_upper_bounds(q: float, steps: int, target: float,
                                                  delta: float) -> None:
    sigma = acc.calibrate_dpsgd_noise(target, delta, q, steps, accountant="prv")
    pld_lo, pld_hi = _dpsgd_bracket(sigma, q, steps, delta)
    assert 0 < pld_lo <= pld_hi
    prv = acc.dpsgd_epsilon([(sigma, q, steps)], delta, "prv")
    rdp = acc.dpsgd_epsilon([(sigma, q, steps)], delta, "rdp")
    assert prv <= target  # calibration holds
    for name, ours, max_ratio in (("prv", prv, PRV_MAX_RATIO), ("rdp", rdp, RDP_MAX_RATIO)):
        assert ours >= pld_lo - ABS_TOL, f"{name} ε={ours:.4f} is below PLD's {pld_lo:.4f}"
        assert ours >= pld_hi * (1 - REL_TOL), f"{name} ε={ours:.4f} vs PLD {pld_hi:.4f}"
        assert ours <= pld_hi * max_ratio, f"{name} ε={ours:.4f} vs PLD {pld_hi:.4f}"
    assert rdp >= prv  # RDP is the looser of the two upper bounds


def test_dpsgd_with_two_noise_levels_composes_like_pld() -> None:
    history = [(1.2, 0.02, 400), (2.0, 0.05, 300)]
    delta = 1e-6
    lo = [_gaussian_pld(s, sampling_prob=q, pessimistic=False).self_compose(k)
          for s, q, k in history]
    hi = [_gaussian_pld(s, sampling_prob=q, pessimistic=True).self_compose(k)
          for s, q, k in history]
    pld_lo, pld_hi = _pld_bracket(lo, hi, delta)
    prv = acc.dpsgd_epsilon(history, delta, "prv")
    assert max(pld_lo - ABS_TOL, pld_hi * (1 - REL_TOL)) <= prv <= pld_hi * PRV_MAX_RATIO


@pytest.mark.parametrize(("rho", "delta"), [(0.21, 5e-6), (0.01, 1e-6), (0.5, 1e-5),
                                            (2.0, 1e-9), (1e-3, 1e-5)])
def test_zcdp_conversion_of_a_gaussian_is_a_tight_upper_bound(rho: float, delta: float) -> None:
    sigma = 1.0 / math.sqrt(2.0 * rho)  # the Gaussian mechanism that is exactly ρ-zCDP
    assert acc.gaussian_rho(sigma) == pytest.approx(rho)
    pld_lo, pld_hi = _pld_bracket([_gaussian_pld(sigma, pessimistic=False)],
                                  [_gaussian_pld(sigma, pessimistic=True)], delta)
    ours = acc.zcdp_to_approx_dp(rho, delta)
    assert ours >= max(pld_lo - ABS_TOL, pld_hi * (1 - REL_TOL))
    assert ours <= pld_hi * ZCDP_MAX_RATIO, f"ratio {ours / pld_hi:.3f}"


def test_ledger_of_a_dp_gmm_run_is_an_upper_bound_close_to_pld(flchain: pd.DataFrame) -> None:
    """Re-compose every entry of a real DP gmm ledger from its recorded σ and sensitivity."""
    gen = sd.make_generator("gmm", sd.Schema.infer(flchain), privacy=DPConfig(epsilon=3.0),
                            seed=0)
    gen.fit(flchain)
    ledger = gen.ledger_.to_dict()
    comp = ledger["composition"]
    lo, hi, delta0 = [], [], 0.0
    for e in ledger["entries"]:
        if e["mechanism"] == "public":
            continue
        assert e["mechanism"] == "gaussian", f"cross-check does not cover {e['mechanism']!r}"
        p = e["params"]
        multiplier = p["sigma"] / p["sensitivity"]
        # the sampler inflates σ a little (OpenDP's grid): the charged ρ bounds the noise's
        actual = acc.gaussian_rho(p["sigma"], p["sensitivity"])
        assert 0.99 * e["rho"] <= actual <= e["rho"] * (1 + 1e-9)
        lo.append(_gaussian_pld(multiplier, pessimistic=False))
        hi.append(_gaussian_pld(multiplier, pessimistic=True))
        delta0 += e["delta"] or 0.0  # thresholded histograms: δ₀ of the threshold event
    assert len(lo) > 20 and delta0 > 0
    budget_delta = ledger["budget"]["delta"]
    # the δ the ledger leaves to the Gaussian part once the threshold events are paid
    conv_delta = budget_delta - delta0
    assert comp["conversion_delta"] == pytest.approx(conv_delta, rel=1e-6)
    pld_lo, pld_hi = _pld_bracket(lo, hi, conv_delta)
    ours = comp["epsilon"]
    assert ours <= 3.0
    assert ours >= max(pld_lo - ABS_TOL, pld_hi * (1 - REL_TOL))
    assert ours <= pld_hi * ZCDP_MAX_RATIO, f"ratio {ours / pld_hi:.3f}"
