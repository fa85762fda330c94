"""DP bounds without a public range: robust to noise far from the data."""

import numpy as np
import pandas as pd
import pytest

from synthdata.privacy.ledger import PrivacyLedger
from synthdata.transform.private import _MAX_EXP, _bulk, dp_log_bounds


def test_bulk_ignores_an_isolated_spike_far_from_the_data():
    counts = np.zeros(101)
    counts[50:56] = 100.0
    counts[100] = 9.0            # one empty bucket whose noise cleared the threshold
    assert _bulk(counts, 5.0) == (50, 55)


def test_bulk_bridges_a_gap_of_one_bucket_but_not_two():
    counts = np.zeros(40)
    counts[10:15] = 50.0
    counts[16] = 8.0             # one empty bucket between: still the tail
    counts[20] = 8.0             # two or more empty buckets: noise, not the tail
    assert _bulk(counts, 5.0) == (10, 16)


def test_bulk_with_nothing_above_the_threshold():
    assert _bulk(np.full(10, 2.0), 5.0)[0] is None


def test_outermost_bucket_gives_a_non_empty_range():
    # values beyond 2^max fall in the open outer bucket: its range must not collapse to a point
    values = np.full(5000, 2.0 ** (_MAX_EXP + 0.5))
    lower, upper = dp_log_bounds(values, 0.5, PrivacyLedger(epsilon=10, delta=1e-6), "b")
    assert lower < upper and upper >= values[0]


@pytest.mark.parametrize("run", range(20))
def test_bounds_stay_near_the_data(run):
    # kappa-like values (0.2 .. 8) on 300 rows at a small budget: the noise of ~100 empty
    # buckets used to put the upper bound at 2^40 in about one run in eight
    values = np.random.default_rng(run).uniform(0.2, 8.0, 300)
    lower, upper = dp_log_bounds(values, 0.02, PrivacyLedger(epsilon=10, delta=1e-6), "b")
    assert 0.0 <= lower < upper
    assert 4.0 <= upper <= 2.0 ** 8


def test_integer_column_of_mostly_zeros_keeps_its_tail():
    # rotterdam's `nodes`: half zeros, the rest 1..34; between the zero bucket and [1, 2)
    # lie ten fractional buckets an integer cannot fill, which cut the bounds at 2^-10
    rng = np.random.default_rng(0)
    values = np.where(rng.random(2000) < 0.5, 0, rng.integers(1, 35, 2000)).astype(float)
    ledger = PrivacyLedger(epsilon=10, delta=1e-6)
    lower, upper = dp_log_bounds(values, 0.05, ledger, "b", integer=True)
    assert -1e-3 < lower <= 0.0 and 32.0 <= upper <= 64.0


def test_a_spike_of_zeros_does_not_hide_the_bulk():
    # rotterdam's `pgr`: many zeros, few values 1..7, the rest spread up to 5000
    rng = np.random.default_rng(1)
    values = np.concatenate([np.zeros(600), rng.integers(1, 8, 20),
                             np.exp(rng.uniform(np.log(8), np.log(5000), 1400)).round()])
    lower, upper = dp_log_bounds(values, 0.05, PrivacyLedger(epsilon=10, delta=1e-6), "b",
                                 integer=True)
    assert -1e-3 < lower <= 0.0 and 4096.0 <= upper <= 8192.0
def test_bulk_crosses_a_wide_gap_only_to_a_clearly_filled_bucket():
    counts = np.zeros(60)
    counts[20] = 500.0           # the zeros
    counts[25:30] = 60.0         # the values, beyond four empty buckets, well above 5σ
    assert _bulk(counts, 10.0) == (20, 29)
    counts[25:30] = 12.0         # above 3σ but not 5σ: not crossed
    assert _bulk(counts, 10.0) == (20, 20)


@pytest.mark.parametrize("run", range(5))
def test_count_column_with_most_values_at_zero_keeps_its_range(run):
    # nodes-like: 70% zeros, the rest 1..30; the fractional buckets between 0 and 1 used to
    # stop the range at ±2^-10, so every synthetic value came out 0
    rng = np.random.default_rng(run)
    values = np.where(rng.random(2000) < 0.7, 0, rng.integers(1, 31, 2000)).astype(float)
    lower, upper = dp_log_bounds(values, 0.005, PrivacyLedger(epsilon=10, delta=1e-6), "b",
                                 integer=True)
    assert lower == 0.0 and 16.0 <= upper <= 64.0


def test_declared_min_clips_the_dp_range_instead_of_widening_it():
    from synthdata.schema.model import Column, ColumnKind
    from synthdata.transform.private import _private_numeric

    years = pd.Series(np.random.default_rng(0).integers(1978, 1994, 3000))
    col = Column("year", ColumnKind.INTEGER, dtype="int64", min=0, public=True)
    enc = _private_numeric(col, years, PrivacyLedger(epsilon=10, delta=1e-6), 0.05)
    assert enc.min_ >= 1024.0  # DP lower bound kept: min 0 is only the sign
    assert np.all(enc.knots_ >= 0)


def test_a_budget_too_small_for_the_rows_falls_back_on_the_ledger(monkeypatch):
    import synthdata.privacy.mechanisms as mechanisms

    charged = mechanisms.dp_histogram

    def no_count_clears(*args, **kwargs):  # charged as usual; the noise swamped every count
        return np.zeros_like(charged(*args, **kwargs))

    values = np.random.default_rng(0).uniform(100.0, 3000.0, 200)
    ledger = PrivacyLedger(epsilon=10, delta=1e-6)
    monkeypatch.setattr(mechanisms, "dp_histogram", no_count_clears)
    assert dp_log_bounds(values, 1e-6, ledger, "b") == (0.0, 1.0)
    monkeypatch.undo()
    (entry,) = ledger.entries
    assert entry.params["range_fallback"] is True and "carries no information" in entry.note
    ok = PrivacyLedger(epsilon=10, delta=1e-6)
    dp_log_bounds(values, 0.05, ok, "b")
    assert "range_fallback" not in ok.entries[0].params


@pytest.mark.parametrize("run", range(10))
def test_a_public_min_of_zero_keeps_the_range_non_negative_at_any_budget(run):
    # a time column at a budget where the data cannot clear the noise: a negative bucket's
    # noise used to win one run in eight or so, and every synthetic time came out negative
    values = np.random.default_rng(run).integers(40, 4800, 200).astype(float)
    lower, upper = dp_log_bounds(values, 1e-4, PrivacyLedger(epsilon=10, delta=1e-6), "b",
                                 integer=True, nonnegative=True)
    assert 0.0 <= lower < upper
    from synthdata.schema.model import Column, ColumnKind
    from synthdata.transform.private import _private_numeric

    col = Column("futime", ColumnKind.INTEGER, dtype="int64", min=0, public=True)
    enc = _private_numeric(col, pd.Series(values), PrivacyLedger(epsilon=10, delta=1e-6), 1e-4)
    assert enc.min_ >= 0.0


def test_coarser_looks_find_a_bulk_no_single_bucket_shows():
    from synthdata.transform.private import _bulk_multiscale

    counts = np.zeros(60)
    counts[30:36] = 2.5          # six buckets, each below 3σ (σ = 1), together far above
    counts[5] = 2.9              # an empty bucket's noise, alone
    first, last = _bulk_multiscale(counts, 1.0)
    assert (first, last) == (30, 35)
    assert _bulk_multiscale(np.full(60, 0.5), 1.0) == (None, 0)     # nothing anywhere


def test_a_run_grows_into_a_tail_of_thin_buckets():
    from synthdata.transform.private import _bulk_multiscale

    counts = np.zeros(60)
    counts[20:23] = 50.0
    counts[23:27] = 2.5          # a thin tail: no bucket above 3σ, pairs above 3σ·√2
    assert _bulk(counts, 3.0) == (20, 22)
    assert _bulk_multiscale(counts, 1.0) == (20, 26)
