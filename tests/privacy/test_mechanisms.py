"""DP primitives: accurate at large ρ, noisy at small ρ, charged before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import PrivacyBudgetError
from synthdata.privacy import PrivacyLedger
from synthdata.privacy import mechanisms as m

BIG = 1e7  # ρ large enough that the noise is negligible


@pytest.fixture
def data() -> dict:
    rng = np.random.default_rng(123)
    age = rng.normal(50, 10, 5000)
    age[rng.random(5000) < 0.1] = np.nan
    sex = rng.choice(["f", "m", "x"], 5000, p=[0.5, 0.49, 0.01])
    sex = np.concatenate([sex, ["rare-singleton"]])
    return {"age": age, "sex": sex}


def _open() -> PrivacyLedger:
    return PrivacyLedger()  # records everything, refuses nothing


def test_large_rho_is_accurate(data: dict) -> None:
    rng = np.random.default_rng(0)
    ledger = _open()
    age, sex = data["age"], data["sex"]
    clean = age[~np.isnan(age)]
    cats = ["f", "m", "x"]
    hist = m.dp_histogram(sex, cats, BIG, ledger, "h", rng)
    np.testing.assert_allclose(hist, [np.sum(sex == c) for c in cats], atol=0.01)
    assert m.dp_count(sex, BIG, ledger, "n", rng) == pytest.approx(len(sex), abs=0.01)
    qs = m.dp_quantiles(age, [0.1, 0.5, 0.9], 0, 120, BIG, ledger, "q", rng, bins=1200)
    np.testing.assert_allclose(qs, np.quantile(clean, [0.1, 0.5, 0.9]), atol=0.2)
    lo, hi = m.dp_bounds(age, 0, 120, BIG, ledger, "b", rng)
    true_lo, true_hi = np.quantile(clean, [0.01, 0.99])
    assert true_lo - 120 / 64 - 0.1 <= lo <= true_lo + 0.1
    assert true_hi - 0.1 <= hi <= true_hi + 120 / 64 + 0.1
    assert m.dp_mean(age, 0, 120, BIG, ledger, "mu", rng) == pytest.approx(clean.mean(), abs=0.01)
    assert m.dp_missing_rate(age, BIG, ledger, "miss", rng) == pytest.approx(
        np.isnan(age).mean(), abs=1e-3)
    found, counts = m.dp_categories(sex, BIG, 5.0, ledger, "cats", rng)
    assert found == ["f", "m", "x"]  # the singleton (count 1) stays below 1 + 5σ
    np.testing.assert_allclose(counts, [np.sum(sex == c) for c in found], atol=0.01)
    noisy = m.gaussian_mechanism(np.array([1.0, 2.0]), 1.0, BIG, ledger, "em.sum", rng)
    np.testing.assert_allclose(noisy, [1.0, 2.0], atol=0.01)
    steps = [e.step for e in ledger.entries]
    assert steps == ["h", "n", "q", "b", "mu", "miss", "cats", "em.sum"]


def test_small_rho_is_noisy(data: dict) -> None:
    ledger = _open()
    age = data["age"]
    means = [m.dp_mean(age, 0, 120, 1e-4, ledger, "mu", np.random.default_rng(s))
             for s in range(20)]
    assert np.std(means) > 0.5
    hists = np.array([m.dp_histogram(data["sex"], ["f", "m", "x"], 1e-4, ledger, "h",
                                     np.random.default_rng(s)) for s in range(20)])
    assert hists.std(axis=0).min() > 10
    assert (hists >= 0).all()


def test_thresholding_hides_rare_categories(data: dict) -> None:
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-5)
    found, counts = m.dp_categories(data["sex"], 0.05, None, ledger, "transform.categories[sex]",
                                    np.random.default_rng(1), delta=1e-6)
    assert "rare-singleton" not in found and {"f", "m"} <= set(found)
    entry = ledger.entries[-1]
    assert entry.delta == pytest.approx(1e-6) and entry.rho == 0.05
    assert entry.params["threshold"] > 1 + 4 * entry.params["sigma"]
    assert (counts >= entry.params["threshold"]).all()


def test_refused_charge_does_no_work(data: dict) -> None:
    ledger = PrivacyLedger(epsilon=0.1, delta=1e-6)
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    with pytest.raises(PrivacyBudgetError):
        m.dp_quantiles(data["age"], [0.5], 0, 120, 1.0, ledger, "transform.bounds[age]", rng)
    assert rng.bit_generator.state == state  # no noise drawn
    assert ledger.entries == []


def test_reproducible_and_pandas_input(data: dict) -> None:
    s = pd.Series(data["age"])
    a = m.dp_bounds(s, 0, 120, 0.1, _open(), "b", np.random.default_rng(3))
    b = m.dp_bounds(data["age"], 0, 120, 0.1, _open(), "b", np.random.default_rng(3))
    assert a == b and 0 <= a[0] < a[1] <= 120
    q = m.dp_quantiles(s, [0.9, 0.1, 0.5], 0, 120, 0.01, _open(), "q", np.random.default_rng(3))
    assert q[1] <= q[2] <= q[0]
    assert m.gaussian_noise((3, 2), 1.0, np.random.default_rng(0)).shape == (3, 2)
