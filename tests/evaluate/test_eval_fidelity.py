"""Fidelity metrics: distances, pair scores, detection, utility, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from synthdata.evaluate import evaluate
from synthdata.evaluate._data import prepare
from synthdata.evaluate.fidelity import coverage, ks_statistic, pair_report, tv_distance
from synthdata.schema import Schema

floats = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's p-value on tiny samples
@given(floats, floats)
@settings(max_examples=60, deadline=None)
def test_ks_matches_scipy_and_lies_in_unit_interval(a: list[float], b: list[float]) -> None:
    ours = ks_statistic(np.array(a), np.array(b))
    assert 0.0 <= ours <= 1.0
    assert ours == pytest.approx(ks_2samp(a, b, method="asymp").statistic, abs=1e-12)
    assert ours == pytest.approx(ks_statistic(np.array(b), np.array(a)))


@given(st.lists(st.integers(0, 5), min_size=1, max_size=50),
       st.lists(st.integers(0, 5), min_size=1, max_size=50))
@settings(max_examples=60, deadline=None)
def test_tv_distance_is_a_bounded_symmetric_distance(a: list[int], b: list[int]) -> None:
    x, y = np.array(a), np.array(b)
    d = tv_distance(x, y, 6)
    assert 0.0 <= d <= 1.0 + 1e-12
    assert d == pytest.approx(tv_distance(y, x, 6))
    assert tv_distance(x, x, 6) == 0.0


def test_ks_ignores_missing_values() -> None:
    assert ks_statistic(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_identical_data_scores_perfectly(splits_small) -> None:
    train, _, _ = splits_small
    report = evaluate(train, train.copy(), sections=("fidelity_basic",))
    m = report.metrics
    assert m["shapes"] == pytest.approx(1.0)
    assert m["column_distance_mean"] == pytest.approx(0.0)
    assert m["pair_trends"] == pytest.approx(1.0)
    assert m["correlation_difference"] == pytest.approx(0.0)
    assert m["exact_copy_share"] == pytest.approx(1.0)


def test_pair_report_finds_a_broken_correlation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    real = pd.DataFrame({"x": x, "y": x + 0.1 * rng.normal(size=2000)})
    fake = pd.DataFrame({"x": rng.permutation(x), "y": real["y"]})
    p = prepare(real, fake, None, Schema.infer(real))
    pairs = pair_report(p, p.train, p.synth)
    assert pairs["real"][0][1] > 0.95 and abs(pairs["synth"][0][1]) < 0.1
    assert pairs["correlation_difference"] > 0.9
    assert pairs["pair_trends"] < 0.6


def test_mixed_and_discrete_associations_are_in_unit_interval(splits_small) -> None:
    train, holdout, _ = splits_small
    p = prepare(train, holdout, None, Schema.infer(train))
    pairs = pair_report(p, p.train, p.synth)
    diff = np.array(pairs["difference"])
    assert diff.shape == (len(p.names), len(p.names))
    assert np.all((diff >= 0) & (diff <= 2))
    assert 0 <= pairs["pair_trends"] <= 1


def test_coverage_counts_missing_categories_and_range() -> None:
    real = pd.DataFrame({"c": list("abcd") * 10, "x": np.linspace(0, 10, 40)})
    fake = pd.DataFrame({"c": list("ab") * 20, "x": np.linspace(0, 5, 40)})
    cov = coverage(prepare(real, fake, None, Schema.infer(real)))
    assert cov["coverage_categories"] == pytest.approx(0.5)
    assert cov["coverage_range"] == pytest.approx(0.5)


def test_random_noise_fails_fidelity(splits_small) -> None:
    train, holdout, _ = splits_small
    rng = np.random.default_rng(1)
    noise = train.copy()
    for col in noise.columns:
        if pd.api.types.is_numeric_dtype(noise[col]):
            noise[col] = rng.uniform(noise[col].min(), noise[col].max(), len(noise))
        else:
            noise[col] = rng.choice(noise[col].dropna().unique(), len(noise))
    schema = Schema.infer(train)
    report = evaluate(train, noise, holdout=holdout, schema=schema, sections=("fidelity",))
    honest = evaluate(train, holdout, schema=schema, sections=("fidelity",))
    assert report.metrics["shapes"] < honest.metrics["shapes"] - 0.15
    assert report.metrics["detection_auc"] > 0.85
    assert honest.metrics["detection_auc"] < 0.65


def test_utility_on_a_classification_target(splits_small) -> None:
    train, holdout, other = splits_small
    report = evaluate(train, other, holdout=holdout, target="death", sections=("fidelity",))
    m = report.metrics
    assert 0.5 < m["trtr_auc"] <= 1 and 0.5 < m["tstr_auc"] <= 1
    assert 0 <= m["tstr_f1"] <= 1
    assert m["utility_ratio"] == pytest.approx(m["tstr_auc"] / m["trtr_auc"])
    assert m["tstr_r2"] is None


def test_utility_on_a_regression_target(splits_small) -> None:
    train, holdout, other = splits_small
    report = evaluate(train, other, holdout=holdout, target="kappa", sections=("fidelity",))
    assert report.metrics["tstr_r2"] is not None
    assert report.metrics["tstr_auc"] is None
    assert report.to_dict()["utility"]["task"] == "regression"
