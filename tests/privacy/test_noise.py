"""Vetted DP samplers: OpenDP noise on its grid, calibrated so OpenDP's own map fits the charge,
fresh OS entropy every call, and clear errors for input a DP release cannot take."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.errors import ConfigError, DataError
from synthdata.privacy import noise as nz


def _on_grid(values: np.ndarray, k: int) -> bool:
    scaled = np.asarray(values, dtype=float) / 2.0 ** k
    return bool(np.all(scaled == np.round(scaled)))


@settings(max_examples=25, deadline=None)
@given(rho=st.floats(1e-5, 1e3), sensitivity=st.floats(1e-3, 1e3),
       size=st.one_of(st.none(), st.integers(1, 100_000)))
def test_calibration_fits_the_charged_rho(rho: float, sensitivity: float, size: int | None) -> None:
    cal = nz.calibrate_gaussian(rho, sensitivity, size=size)
    textbook = sensitivity / math.sqrt(2 * rho)
    assert cal.loss <= rho  # OpenDP's own map (rounding included) fits the ledger's ρ
    assert textbook <= cal.scale <= textbook * 1.002  # inflated by at most ~0.1 %
    if size is None:
        assert cal.k is None
    else:
        assert 2.0 ** cal.k <= cal.scale / 1024
        assert 2.0 ** cal.k * math.sqrt(size) <= sensitivity / 1024


def test_laplace_calibration_fits_epsilon() -> None:
    for size in (None, 1, 1000):
        cal = nz.calibrate_laplace(0.7, 2.0, size=size)
        assert cal.loss <= 0.7 and 2.0 / 0.7 <= cal.scale <= 2.0 / 0.7 * 1.002
    assert nz.calibrate_laplace(0.7, 2.0).ledger_params()["opendp_epsilon"] <= 0.7


def test_real_releases_lie_on_the_grid_and_integers_stay_integers() -> None:
    x = np.random.default_rng(0).normal(size=(40, 3)) * 1e3
    cal = nz.calibrate_gaussian(0.1, 5.0, size=x.size)
    out = cal.release(x)
    assert out.shape == x.shape and out.dtype == float
    assert _on_grid(out, cal.k) and not np.allclose(out, x)
    counts = np.array([3, 0, 12])
    noisy = nz.calibrate_gaussian(0.1, 1.0).release(counts)
    assert noisy.dtype == np.int64 and noisy.shape == (3,)
    lap = nz.laplace_release(np.array([0.25, 7.0]), 1.5, k=-6)
    assert _on_grid(lap, -6)
    assert isinstance(nz.laplace_release(4, 1.0), int)
    assert _on_grid([nz.gaussian_release(1 / 3, 2.0)], nz.grid_exponent(2.0))


def test_scalars_and_empty_arrays() -> None:
    assert isinstance(nz.gaussian_release(2.5, 1.0), float)
    assert isinstance(nz.gaussian_release(7, 1.0), int)
    assert isinstance(nz.gaussian_release(True, 1.0), int)
    empty = nz.gaussian_release(np.zeros((0, 4)), 1.0)
    assert empty.shape == (0, 4)
    assert nz.calibrate_gaussian(1.0, 1.0, size=0).release(np.zeros(0)).shape == (0,)


def test_noise_has_the_calibrated_scale() -> None:
    cal = nz.calibrate_gaussian(0.02, 1.0)  # σ = 5
    draws = cal.release(np.zeros(20_000, dtype=np.int64)).astype(float)
    assert abs(draws.mean()) < 0.2
    assert draws.std() == pytest.approx(cal.scale, rel=0.03)
    lap = nz.laplace_release(np.zeros(20_000), 2.0)
    assert lap.std() == pytest.approx(2.0 * math.sqrt(2), rel=0.04)


def test_every_call_draws_fresh_noise() -> None:
    a = nz.gaussian_release(np.zeros(50), 1.0)
    b = nz.gaussian_release(np.zeros(50), 1.0)
    assert not np.array_equal(a, b)
    assert not np.array_equal(nz.secure_rng().random(4), nz.secure_rng().random(4))
    pytest.importorskip("torch")
    import torch

    g1, g2 = nz.secure_torch_generator(), nz.secure_torch_generator()
    assert not torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_non_finite_and_non_numeric_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="2 of 3 value.*NaN or infinite.*clip or impute"):
        nz.gaussian_release(np.array([1.0, np.nan, np.inf]), 1.0, what="em.sums")
    with pytest.raises(DataError, match="em.sums"):
        nz.calibrate_gaussian(1.0, 1.0, size=1).release(math.inf, what="em.sums")
    with pytest.raises(DataError, match="needs numbers"):
        nz.laplace_release(np.array(["a", "b"]), 1.0)


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="rho must be a finite number > 0"):
        nz.calibrate_gaussian(0.0, 1.0)
    with pytest.raises(ConfigError, match="sensitivity must be"):
        nz.calibrate_gaussian(1.0, -1.0)
    with pytest.raises(ConfigError, match="noise scale"):
        nz.gaussian_release(1.0, 0.0)
    with pytest.raises(ConfigError, match="integer statistic is released on the integers"):
        nz.gaussian_release(np.arange(3), 1.0, k=-5)
    real = nz.calibrate_gaussian(1.0, 1.0, size=2)
    with pytest.raises(ConfigError, match="3 values, calibrated for 2"):
        real.release(np.zeros(3))
    with pytest.raises(ConfigError, match="integer statistic does not match"):
        real.release(np.arange(2))
    with pytest.raises(ConfigError, match="real-valued statistic does not match"):
        nz.calibrate_gaussian(1.0, 1.0).release(np.zeros(2))


def test_import_is_lazy() -> None:
    code = ("import sys, synthdata.privacy.noise, synthdata.privacy.mechanisms; "
            "print('opendp' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
