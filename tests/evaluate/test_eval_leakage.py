"""Leakage: exact copies, DCR, membership inference and the Anonymeter-style risks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.evaluate import evaluate
from synthdata.evaluate._data import prepare
from synthdata.evaluate.leakage import choose_roles, exact_copies, risk_from_counts, success_rate
from synthdata.schema import Column, PiiRole, Schema

LEAK = ("leakage", "risks")


def test_wilson_success_rate_matches_the_closed_form() -> None:
    rate, err = success_rate(500, 100)
    z = 1.959963984540054
    assert rate == pytest.approx((100 + z * z / 2) / (500 + z * z))
    assert err == pytest.approx(z / (500 + z * z) * math.sqrt(100 * 400 / 500 + z * z / 4))


@given(st.integers(1, 2000), st.data())
@settings(max_examples=80, deadline=None)
def test_risks_and_intervals_stay_in_unit_interval(n: int, data) -> None:
    success = data.draw(st.integers(0, n))
    control = data.draw(st.integers(0, n))
    baseline = data.draw(st.integers(0, n))
    r = risk_from_counts(n, success, control, baseline)
    assert 0 <= r["ci_low"] <= r["risk"] <= r["ci_high"] <= 1


def test_risk_is_zero_when_train_is_no_easier_than_control() -> None:
    assert risk_from_counts(500, 50, 60, 5)["risk"] == 0.0
    assert risk_from_counts(500, 400, 50, 5)["risk"] > 0.7


def test_exact_copies_counts_rows_and_holdout_baseline(splits_small) -> None:
    train, holdout, _ = splits_small
    synth = pd.concat([train.iloc[:10], holdout.iloc[:90]], ignore_index=True)
    leaky_holdout = pd.concat([holdout.iloc[:-5], train.iloc[:5]], ignore_index=True)
    p = prepare(train, synth, leaky_holdout, Schema.infer(train))
    out = exact_copies(p)
    assert out["exact_copies"] == 10
    assert out["exact_copy_share"] == pytest.approx(0.1)
    assert out["holdout_exact_copy_share"] == pytest.approx(5 / len(leaky_holdout))
    assert out["exact_copy_excess"] == pytest.approx(0.1 - 5 / len(leaky_holdout))
    # one-sided 95% upper bound of the holdout rate: above the point estimate, and the
    # exact binomial bound (P(X <= 5 | upper) = 5%)
    from scipy.stats import binom
    upper = out["holdout_exact_copy_upper"]
    assert upper > out["holdout_exact_copy_share"]
    assert binom.cdf(5, len(leaky_holdout), upper) == pytest.approx(0.05, abs=1e-6)


def test_exact_copies_see_through_dtype_changes(splits_small) -> None:
    train, _, _ = splits_small
    synth = train.copy()
    synth["death"] = synth["death"].astype(float)  # 1 vs 1.0 is the same value
    p = prepare(train, synth, None, Schema.infer(train))
    assert exact_copies(p)["exact_copy_share"] == 1.0


def test_default_roles_are_documented_and_exclude_the_secret(splits_small) -> None:
    train, holdout, _ = splits_small
    schema = Schema.infer(train)
    p = prepare(train, holdout, None, schema)
    quasi, sensitive, notes = choose_roles(schema, p, "death")
    assert sensitive == ["death"] and "death" not in quasi
    assert 2 <= len(quasi) <= 9
    assert any("default quasi-identifiers" in n for n in notes)
    declared = schema.replace_columns(
        [Column(c.name, c.kind, c.dtype, c.nullable, c.min, c.max, c.categories,
                c.datetime_format, PiiRole.QUASI if c.name in ("age", "sex") else
                PiiRole.SENSITIVE if c.name == "kappa" else None)
         for c in schema.columns])
    quasi, sensitive, _ = choose_roles(declared, p, "death")
    assert quasi == ["age", "sex"] and sensitive == ["kappa"]


def test_no_holdout_leaves_holdout_metrics_none_with_notes(splits_small) -> None:
    train, _, other = splits_small
    report = evaluate(train, other, sections=LEAK)
    m = report.metrics
    assert m["exact_copies"] == 0 and m["nndr"] is not None
    for name in ("dcr_share", "mia_auc", "singling_out_risk", "linkability_risk",
                 "inference_risk", "holdout_exact_copy_share"):
        assert m[name] is None, name
    assert any("no holdout" in n for n in report.notes)


def test_copy_of_train_leaks_on_every_measure_small(splits_small) -> None:
    train, holdout, _ = splits_small
    m = evaluate(train, train.copy(), holdout=holdout, target="death", sections=LEAK).metrics
    assert m["exact_copy_share"] == 1.0
    assert m["dcr_share"] > 0.95
    assert m["mia_auc"] > 0.95 and m["mia_tpr_at_1pct_fpr"] > 0.5
    assert m["singling_out_risk"] > 0.5


def test_evaluation_is_deterministic_for_a_seed(splits_small) -> None:
    train, holdout, other = (part.iloc[:200] for part in splits_small)
    a = evaluate(train, other, holdout=holdout, target="death", seed=3)
    b = evaluate(train, other, holdout=holdout, target="death", seed=3)
    assert a.metrics == b.metrics


@pytest.mark.slow
def test_sanity_copy_of_train(splits_large) -> None:
    from synthdata.evaluate import GATE_PRESETS, check_gate

    train, holdout, _ = splits_large
    m = evaluate(train, train.copy(), holdout=holdout, target="death").metrics
    assert 0.4 < m["detection_auc"] < 0.6
    assert m["exact_copy_share"] == 1.0
    assert m["dcr_share"] > 0.95
    assert m["mia_auc"] > 0.95
    result = check_gate(m, GATE_PRESETS["share_outside"], validation_passed=True)
    assert not result.passed
    failed = {r["metric"] for r in result.results if not r["passed"]}
    assert {"exact_copy_excess", "dcr_share", "mia_auc", "singling_out_risk"} <= failed


@pytest.mark.slow
def test_sanity_independent_sample_passes_leakage_gate(splits_large) -> None:
    from synthdata.evaluate import GATE_PRESETS, check_gate

    train, holdout, other = splits_large
    m = evaluate(train, other, holdout=holdout, target="death").metrics
    result = check_gate(m, GATE_PRESETS["share_outside"], validation_passed=True)
    assert result.passed, result.failures
    assert 0.4 < m["dcr_share"] < 0.6 and m["mia_auc"] < 0.6


@pytest.mark.slow
def test_sanity_random_noise_fails_fidelity_gate(splits_large) -> None:
    from synthdata.evaluate import GATE_PRESETS, check_gate

    train, holdout, _ = splits_large
    rng = np.random.default_rng(2)
    noise = pd.DataFrame({c: (rng.uniform(train[c].min(), train[c].max(), len(train))
                              if pd.api.types.is_numeric_dtype(train[c])
                              else rng.choice(train[c].dropna().unique(), len(train)))
                          for c in train.columns})
    m = evaluate(train, noise, holdout=holdout, target="death").metrics
    assert m["detection_auc"] > 0.9
    for preset in GATE_PRESETS:
        assert not check_gate(m, GATE_PRESETS[preset], validation_passed=True).passed


def test_rare_combinations_of_quasi_columns_replay_only_from_a_copy(splits_small) -> None:
    """(age, kappa, sex) combinations are nearly all unique, hence rare: a copy of train
    replays each row's rare combination, an independent sample almost none; the holdout gives the
    natural rate of the same table. Each share counts rows, never values."""
    from synthdata.evaluate.leakage import rare_value_replay

    train, holdout, other = splits_small
    schema = Schema.infer(train)
    quasi = ["age", "kappa", "sex"]
    combo = "(age, kappa, sex)"
    out = {}
    for label, synth in (("copy", train.copy()), ("independent", other)):
        p = prepare(train, synth, holdout, schema)
        out[label] = rare_value_replay(p, train, synth, holdout, quasi, k=2)
    copy, fresh = out["copy"], out["independent"]
    assert copy["quasi_columns"] == quasi and copy["k"] == 2
    entry = copy["columns"][combo]
    assert entry["n_rare_train_values"] > 0.8 * len(train)
    assert entry["n_train_values"] >= entry["n_rare_train_values"]
    assert entry["synthetic_share"] > 0.9  # the rows holding a rare combination
    assert copy["rare_value_replay"] == copy["train_rare_value_share"] > 0.9
    assert fresh["columns"][combo]["synthetic_share"] < 0.1
    assert fresh["columns"][combo]["holdout_share"] == entry["holdout_share"] < 0.1
    assert copy["rare_value_replay_excess"] == pytest.approx(
        copy["rare_value_replay"] - copy["holdout_rare_value_replay"])
    assert copy["rare_value_replay_excess"] > 0.5 > fresh["rare_value_replay_excess"]
    assert "note" not in copy
