"""DP primitives: accurate at large ρ, noisy at small ρ, charged before any work, noise on
OpenDP's grid from OS entropy, and -- attacked statistically on neighbouring datasets -- no
more distinguishable than the ε they are charged for (with a σ/10 negative control)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from synthdata.errors import ConfigError, DataError, PrivacyBudgetError
from synthdata.privacy import PrivacyLedger
from synthdata.privacy import accounting as acc
from synthdata.privacy import mechanisms as m
from synthdata.privacy import noise as nz

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
    ledger = _open()
    age, sex = data["age"], data["sex"]
    clean = age[~np.isnan(age)]
    cats = ["f", "m", "x"]
    hist = m.dp_histogram(sex, cats, BIG, ledger, "h")
    np.testing.assert_allclose(hist, [np.sum(sex == c) for c in cats], atol=0.01)
    assert m.dp_count(sex, BIG, ledger, "n") == pytest.approx(len(sex), abs=0.01)
    qs = m.dp_quantiles(age, [0.1, 0.5, 0.9], 0, 120, BIG, ledger, "q", bins=1200)
    np.testing.assert_allclose(qs, np.quantile(clean, [0.1, 0.5, 0.9]), atol=0.2)
    lo, hi = m.dp_bounds(age, 0, 120, BIG, ledger, "b")
    true_lo, true_hi = np.quantile(clean, [0.01, 0.99])
    assert true_lo - 120 / 64 - 0.1 <= lo <= true_lo + 0.1
    assert true_hi - 0.1 <= hi <= true_hi + 120 / 64 + 0.1
    assert m.dp_mean(age, 0, 120, BIG, ledger, "mu") == pytest.approx(clean.mean(), abs=0.01)
    assert m.dp_missing_rate(age, BIG, ledger, "miss") == pytest.approx(
        np.isnan(age).mean(), abs=1e-3)
    found, counts = m.dp_categories(sex, BIG, 5.0, ledger, "cats")
    assert found == ["f", "m", "x"]  # the singleton (count 1) stays below 1 + 5σ
    np.testing.assert_allclose(counts, [np.sum(sex == c) for c in found], atol=0.01)
    assert counts.dtype == np.float64   # float like dp_histogram's counts (one type for marginals)
    noisy = m.gaussian_mechanism(np.array([1.0, 2.0]), 1.0, BIG, ledger, "em.sum")
    np.testing.assert_allclose(noisy, [1.0, 2.0], atol=0.01)
    steps = [e.step for e in ledger.entries]
    assert steps == ["h", "n", "q", "b", "mu", "miss", "cats", "em.sum"]
    for entry in ledger.entries:  # every charge names the vetted sampler and fits its map
        assert entry.params["sampler"] == "opendp discrete gaussian"
        assert entry.params["opendp_rho"] <= entry.rho


def test_small_rho_is_noisy_and_not_seeded(data: dict) -> None:
    ledger = _open()
    age = data["age"]
    means = [m.dp_mean(age, 0, 120, 1e-4, ledger, "mu") for _ in range(20)]
    assert np.std(means) > 0.5
    hists = np.array([m.dp_histogram(data["sex"], ["f", "m", "x"], 1e-4, ledger, "h")
                      for _ in range(20)])
    assert hists.std(axis=0).min() > 10
    assert (hists >= 0).all()
    # no rng parameter any more: the global numpy stream is not what the noise comes from
    np.random.seed(0)
    a = m.dp_count(1000, 1e-2, ledger, "n")
    np.random.seed(0)
    b = [m.dp_count(1000, 1e-2, ledger, "n") for _ in range(5)]
    assert len({a, *b}) > 1


def test_outputs_lie_on_the_opendp_grid(data: dict) -> None:
    ledger = _open()
    sex = data["sex"]
    counts = [m.dp_count(sex, 0.01, ledger, "n"),
              *m.dp_histogram(sex, ["f", "m", "x"], 0.01, ledger, "h"),
              *m.dp_categories(sex, 0.01, 3.0, ledger, "c")[1]]
    assert all(float(c).is_integer() for c in counts)  # exact discrete Gaussian on integers
    stat = np.random.default_rng(1).normal(size=(3, 4))
    noisy = m.gaussian_mechanism(stat, 2.0, 0.05, ledger, "em.sums")
    grid = ledger.entries[-1].params["grid"]
    assert grid <= ledger.entries[-1].params["sigma"] / 1024
    assert np.all(noisy / grid == np.round(noisy / grid)) and not np.allclose(noisy, stat)
    assert isinstance(m.gaussian_mechanism(3.0, 1.0, 0.05, ledger, "scalar"), float)


def test_released_category_order_does_not_follow_counts() -> None:
    ledger = _open()
    common_b = ["b"] * 900 + ["a"] * 300 + ["c"] * 600
    common_a = ["a"] * 900 + ["b"] * 300 + ["c"] * 600
    for values in (common_a, common_b):
        found, _ = m.dp_categories(values, BIG, 3.0, ledger, "c")
        assert found == ["a", "b", "c"]
    mixed = [1] * 50 + ["z"] * 400 + [2.5] * 200
    found, _ = m.dp_categories(mixed, BIG, 3.0, ledger, "c")
    assert found == [2.5, 1, "z"]  # by type name, then str: float < int < str


def test_thresholding_hides_rare_categories(data: dict) -> None:
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-5)
    found, counts = m.dp_categories(data["sex"], 0.05, None, ledger, "transform.categories[sex]",
                                    delta=1e-6)
    assert "rare-singleton" not in found and {"f", "m"} <= set(found)
    entry = ledger.entries[-1]
    assert entry.delta == pytest.approx(1e-6) and entry.rho == 0.05
    assert entry.params["threshold"] > 1 + 4 * entry.params["sigma"]
    assert (counts >= entry.params["threshold"]).all()


def test_refused_charge_does_no_work(data: dict, monkeypatch) -> None:
    ledger = PrivacyLedger(epsilon=0.1, delta=1e-6)

    def no_draw(*args, **kwargs):
        raise AssertionError("noise drawn before the charge")

    monkeypatch.setattr(nz, "_release", no_draw)
    with pytest.raises(PrivacyBudgetError):
        m.dp_quantiles(data["age"], [0.5], 0, 120, 1.0, ledger, "transform.bounds[age]")
    assert ledger.entries == []


def test_bad_statistics_are_refused_before_the_charge() -> None:
    ledger = _open()
    with pytest.raises(DataError, match="step 'em.sums'.*NaN or infinite"):
        m.gaussian_mechanism(np.array([1.0, np.nan]), 1.0, 0.1, ledger, "em.sums")
    with pytest.raises(ConfigError, match="step 'em.sums'.*sensitivity"):
        m.gaussian_mechanism(np.array([1.0]), 0.0, 0.1, ledger, "em.sums")
    assert ledger.entries == []
    assert m.gaussian_mechanism(np.zeros((0, 3)), 1.0, 0.1, ledger, "empty").shape == (0, 3)


def test_pandas_input(data: dict) -> None:
    s = pd.Series(data["age"])
    lo, hi = m.dp_bounds(s, 0, 120, 0.1, _open(), "b")
    assert 0 <= lo < hi <= 120
    q = m.dp_quantiles(s, [0.9, 0.1, 0.5], 0, 120, 0.01, _open(), "q")
    assert q[1] <= q[2] <= q[0]


# -- distinguishing attacks on neighbouring datasets ---------------------------------------

ALPHA = 1e-3  # chance that a correct mechanism fails an attack (Clopper-Pearson, Bonferroni)
RHO, DELTA, N_DRAWS = 0.125, 1e-3, 600  # σ = 2 at sensitivity 1


def _empirical_epsilon(on_d: np.ndarray, on_d2: np.ndarray, delta: float) -> float:
    """A (1 - ALPHA)-confidence lower bound on the ε of a mechanism at δ, from releases on
    two neighbouring datasets: every threshold test ``release >= t`` (both directions)
    must satisfy TPR <= e^ε FPR + δ, so ε >= log((TPR - δ) / FPR) with TPR bounded below
    and FPR above (Clopper-Pearson)."""
    thresholds = np.unique(np.quantile(np.concatenate([on_d, on_d2]), np.linspace(0.02, 0.98, 25)))
    level = ALPHA / (4 * len(thresholds))
    best = 0.0
    for a, b in ((on_d, on_d2), (on_d2, on_d)):
        n_a, n_b = len(a), len(b)
        for t in thresholds:
            for hit_a, hit_b in ((np.sum(a >= t), np.sum(b >= t)), (np.sum(a < t), np.sum(b < t))):
                tpr_lo = beta.ppf(level, hit_a, n_a - hit_a + 1) if hit_a else 0.0
                fpr_hi = beta.ppf(1 - level, hit_b + 1, n_b - hit_b) if hit_b < n_b else 1.0
                if tpr_lo > delta:
                    best = max(best, math.log((tpr_lo - delta) / fpr_hi))
    return best


def _attack(release, broken: bool, monkeypatch) -> tuple[float, float]:
    """(empirical ε lower bound, claimed ε at DELTA) of ``release(on_d: bool)``."""
    if broken:  # a mechanism that charges ρ (and records σ) but draws σ/10
        real = nz._release

        def tenth(kind, value, scale, k, what):
            return real(kind, value, scale / 10, k, what)

        monkeypatch.setattr(nz, "_release", tenth)
    on_d = np.array([release(True) for _ in range(N_DRAWS)], dtype=float)
    on_d2 = np.array([release(False) for _ in range(N_DRAWS)], dtype=float)
    return _empirical_epsilon(on_d, on_d2, DELTA), acc.zcdp_to_approx_dp(RHO, DELTA)


_HIST = {on_d: pd.Series(["a"] * 30 + ["b"] * (20 if on_d else 19) + ["c"] * 5)
         for on_d in (True, False)}
ATTACKS = {
    # D: 40 units, D': one removed
    "dp_count": lambda on_d: m.dp_count(np.arange(40 if on_d else 39), RHO, _open(), "n"),
    # one row of category "b" removed; the attacker looks at bin "b"
    "dp_histogram": lambda on_d: m.dp_histogram(_HIST[on_d], ["a", "b", "c"], RHO, _open(),
                                                "h")[1],
    # a clipped sum, sensitivity 1: one unit's value 1.0 removed
    "gaussian_mechanism": lambda on_d: m.gaussian_mechanism(
        12.375 + (1.0 if on_d else 0.0), 1.0, RHO, _open(), "s"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_distinguishing_attack_stays_within_epsilon(name: str, monkeypatch) -> None:
    measured, claimed = _attack(ATTACKS[name], False, monkeypatch)
    assert measured <= claimed, (name, measured, claimed)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_distinguishing_attack_catches_a_sigma_over_ten_mechanism(name: str, monkeypatch) -> None:
    measured, claimed = _attack(ATTACKS[name], True, monkeypatch)
    assert measured > claimed, (name, measured, claimed)


@pytest.mark.parametrize("broken", [False, True])
def test_a_singleton_category_is_released_at_most_delta0_of_the_time(broken, monkeypatch) -> None:
    """dp_categories on D with one unit of "rare": the category leaks with probability at
    most δ₀; a threshold at a quarter of the needed factor (negative control) is caught."""
    delta0 = 0.05
    if broken:
        real = acc.threshold_factor_for_delta
        monkeypatch.setattr(acc, "threshold_factor_for_delta", lambda d: real(d) / 4)
    values = pd.Series(["common"] * 50 + ["rare"])
    hits = sum("rare" in m.dp_categories(values, 0.02, None, _open(), "c", delta=delta0)[0]
               for _ in range(N_DRAWS))
    rate_lo = beta.ppf(ALPHA, hits, N_DRAWS - hits + 1) if hits else 0.0
    assert (rate_lo > delta0) == broken, (hits, rate_lo)


@pytest.mark.parametrize("rho", [0.5, 0.125, 0.02, 1e-3])
@pytest.mark.parametrize("delta0", [0.05, 1e-3, 1e-6])
def test_category_threshold_bounds_the_exact_discrete_gaussian_tail(rho, delta0) -> None:
    """Exact check (no sampling): with the threshold dp_categories records, a singleton's
    noisy count 1 + Z (Z discrete Gaussian at the recorded σ) clears it with probability
    <= δ₀. The continuous-Gaussian threshold 1 + t·σ fails this at σ = 1."""
    ledger = _open()
    m.dp_categories(["a"] * 5, rho, None, ledger, "c", delta=delta0)
    sigma, threshold = ledger.entries[-1].params["sigma"], ledger.entries[-1].params["threshold"]
    z = np.arange(-int(60 * sigma) - 60, int(60 * sigma) + 61)
    logw = -(z.astype(float) ** 2) / (2 * sigma**2)
    w = np.exp(logw - logw.max())
    tail = w[1 + z >= threshold].sum() / w.sum()
    assert tail <= delta0
    if rho == 0.5 and delta0 == 0.05:
        naive = 1 + acc.threshold_factor_for_delta(delta0) * sigma
        assert w[1 + z >= naive].sum() / w.sum() > delta0


# -- mutation-testing survivors (benchmarks/results/mutation.md): dp_missing_rate ----------

def test_missing_rate_charges_one_gaussian_step_with_sensitivity_one() -> None:
    ledger = _open()
    rate = m.dp_missing_rate(pd.Series([1.0, None, 3.0, None]), BIG, ledger, "transform.miss")
    assert rate == pytest.approx(0.5, abs=1e-3)
    (entry,) = ledger.entries
    assert (entry.step, entry.mechanism, entry.rho) == ("transform.miss", "gaussian", BIG)
    assert entry.params["statistic"] == "missing rate"
    assert entry.params["sensitivity"] == 1.0
    assert entry.params["sigma"] > 0


@pytest.mark.parametrize(("values", "expected"), [
    ([None, None, None], 1.0), ([1.0, 2.0, 3.0], 0.0), ([1.0] * 9 + [None], 0.1)])
def test_missing_rate_is_the_missing_share(values: list, expected: float) -> None:
    assert m.dp_missing_rate(pd.Series(values, dtype=float), BIG, _open(), "miss") == \
        pytest.approx(expected, abs=1e-3)


def test_missing_rate_is_a_rate_at_small_rho() -> None:
    rates = [m.dp_missing_rate(pd.Series([1.0, None] * 50), 0.05, _open(), "miss")
             for _ in range(20)]
    assert all(0.0 <= r <= 1.0 for r in rates)
    assert len(set(rates)) > 1  # noisy: not the exact 0.5 every time


# -- quantiles and bounds at negligible noise: the exact read-off of the histogram ----------

def test_quantiles_interpolate_linearly_inside_a_bin() -> None:
    """100 values evenly spread in each of 10 bins of [0, 10]: the CDF is the identity, so
    every quantile q reads off as 10·q (bin edge + share of the bin's mass), ends included."""
    x = np.linspace(0.005, 9.995, 1000)
    qs = [0.0, 0.05, 0.25, 0.5, 0.73, 0.999, 1.0]
    got = m.dp_quantiles(x, qs, 0, 10, BIG, _open(), "q", bins=10)
    np.testing.assert_allclose(got, [10 * q for q in qs], atol=1e-9)


def test_quantiles_of_one_full_bin_among_empty_ones() -> None:
    """All values in [3, 4): the median is the middle of that bin, the maximum its top edge,
    whatever the empty bins around it hold (nothing)."""
    x = np.linspace(3.05, 3.95, 10)
    got = m.dp_quantiles(x, [0.5, 0.1, 1.0], 0, 10, BIG, _open(), "q", bins=10)
    np.testing.assert_allclose(got, [3.5, 3.1, 4.0], atol=1e-9)


def test_quantiles_clip_values_into_the_public_range() -> None:
    """Values beyond the range count in its end bins (clipped, never dropped)."""
    x = np.array([-50.0] * 10 + [150.0] * 10)
    got = m.dp_quantiles(x, [0.25, 0.75], 0, 100, BIG, _open(), "q", bins=4)
    np.testing.assert_allclose(got, [12.5, 87.5], atol=1e-9)  # half of each end bin


def test_quantiles_of_no_values_spread_evenly_over_the_range() -> None:
    got = m.dp_quantiles(np.array([np.nan, np.nan]), [0.0, 0.5, 1.0], 2, 6, BIG, _open(), "q")
    np.testing.assert_allclose(got, [2.0, 4.0, 6.0], atol=1e-9)


def test_quantiles_charge_names_what_was_released() -> None:
    ledger = _open()
    m.dp_quantiles(np.arange(10.0), [0.9, 0.1], 0, 10, 0.5, ledger, "transform.q[x]", bins=16)
    (entry,) = ledger.entries
    assert entry.step == "transform.q[x]" and entry.mechanism == "gaussian"
    assert entry.rho == 0.5
    assert entry.params["quantiles"] == [0.9, 0.1] and entry.params["bins"] == 16
    assert entry.params["range"] == [0.0, 10.0] and entry.params["sensitivity"] == 1.0


@pytest.mark.parametrize("quantiles, bins", [([1.5], 8), ([-0.1], 8), ([], 8), ([0.5], 0),
                                             ([0.5], 2.5)])
def test_bad_quantile_requests_are_refused_before_the_charge(quantiles, bins) -> None:
    ledger = _open()
    with pytest.raises(ConfigError, match="step 'q': (quantiles|bins)"):
        m.dp_quantiles(np.arange(10.0), quantiles, 0, 10, 1.0, ledger, "q", bins=bins)
    assert ledger.entries == []


def test_bounds_round_outwards_to_bin_edges() -> None:
    """Values spread over [20, 30] in the range [0, 100] with 64 bins (width 1.5625): the
    1 % / 99 % quantiles (20.1, 29.9) round down and up to the edges 18.75 and 31.25."""
    x = np.linspace(20.0, 30.0, 2001)
    lo, hi = m.dp_bounds(x, 0, 100, BIG, _open(), "b")
    assert (lo, hi) == pytest.approx((18.75, 31.25), abs=1e-9)
    lo, hi = m.dp_bounds(x, 0, 100, BIG, _open(), "b", quantiles=(0.5, 0.6))
    assert (lo, hi) == pytest.approx((25.0, 26.5625), abs=1e-9)  # 25 is an edge; 26 rounds up


def test_bounds_at_the_ends_of_the_range_keep_one_bin() -> None:
    width = 100 / 64
    assert m.dp_bounds(np.full(500, 100.0), 0, 100, BIG, _open(), "b") == pytest.approx(
        (100 - width, 100.0))
    assert m.dp_bounds(np.full(500, 0.0), 0, 100, BIG, _open(), "b") == pytest.approx(
        (0.0, width))
    assert m.dp_bounds(np.full(500, 0.0), 0, 100, BIG, _open(), "b", bins=4) == pytest.approx(
        (0.0, 25.0))


@pytest.mark.parametrize("quantiles", [(0.5, 0.5), (0.6, 0.4), (-0.1, 0.5), (0.2, 1.1)])
def test_bad_bound_quantiles_are_refused_before_the_charge(quantiles) -> None:
    ledger = _open()
    with pytest.raises(ConfigError, match=r"step 'b': quantiles must satisfy 0 <= low < high"):
        m.dp_bounds(np.arange(10.0), 0, 10, 1.0, ledger, "b", quantiles=quantiles)
    assert ledger.entries == []


def test_bounds_read_off_a_range_that_does_not_start_at_zero() -> None:
    """Range [10, 110], values in [30, 40]: edges are counted from the range's start (10 +
    k·1.5625), and the charge records the bins the read-off used."""
    ledger = _open()
    lo, hi = m.dp_bounds(np.linspace(30.0, 40.0, 2001), 10, 110, BIG, ledger, "b")
    assert (lo, hi) == pytest.approx((28.75, 41.25), abs=1e-9)
    m.dp_bounds(np.linspace(30.0, 40.0, 2001), 10, 110, BIG, ledger, "b4", bins=4)
    assert [e.params["bins"] for e in ledger.entries] == [64, 4]


def test_bounds_name_the_step_in_a_bad_range_error() -> None:
    with pytest.raises(ConfigError, match="step 'transform.bounds\\[age\\]'"):
        m.dp_bounds(np.arange(5.0), 10, 10, 1.0, _open(), "transform.bounds[age]")


def test_histogram_counts_every_declared_category_even_absent_ones() -> None:
    got = m.dp_histogram(["a", "a", "b"], ["a", "b", "c", "d"], BIG, _open(), "h")
    np.testing.assert_allclose(got, [2, 1, 0, 0], atol=0.01)


def test_released_categories_are_plain_python_values() -> None:
    """Labels go into schema.yaml and JSON: numpy scalars are unwrapped."""
    found, _ = m.dp_categories(np.array([1, 1, 2, 2] * 50), BIG, 5.0, _open(), "cats")
    assert found == [1, 2] and all(type(v) is int for v in found)


def test_mean_is_clipped_back_into_the_range() -> None:
    """At a tiny ρ the noisy sum dwarfs the count: the ratio is clipped to the range, so
    some releases sit exactly on the lower end, none below."""
    means = [m.dp_mean(np.zeros(5), 0, 100, 1e-4, _open(), "mu") for _ in range(30)]
    assert min(means) == 0.0 and max(means) <= 100.0


def test_mean_charge_records_the_two_measurements_loss() -> None:
    ledger = _open()
    m.dp_mean(np.arange(10.0), 0, 10, 0.5, ledger, "mu")
    (entry,) = ledger.entries
    # count and sum each spend at most (and close to) ρ/2 in OpenDP's own accounting
    assert 0.9 * entry.rho <= entry.params["opendp_rho"] <= entry.rho


def test_missing_rate_of_no_rows_is_zero() -> None:
    assert m.dp_missing_rate(pd.Series([], dtype=float), BIG, _open(), "miss") == 0.0


def test_malformed_values_are_named_errors() -> None:
    with pytest.raises(DataError, match="step 'q': values must be one-dimensional"):
        m.dp_quantiles(np.zeros((3, 2)), [0.5], 0, 1, 1.0, _open(), "q")
    with pytest.raises(DataError, match="step 'q': expected numeric values; declare the "
                                        "column categorical"):
        m.dp_quantiles(["a", "b"], [0.5], 0, 1, 1.0, _open(), "q")
