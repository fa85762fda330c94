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


# -- report fields, attack caps and the singling-out size correction ------------------------

def test_dcr_without_holdout_reports_the_synthetic_nndr_only(splits_small) -> None:
    """Without a holdout there is no natural NNDR level: the histogram keeps its holdout
    side as ``None`` (not absent), and the synthetic side still sums to one."""
    from synthdata.evaluate.leakage import dcr, encode

    train, _, other = splits_small
    p = prepare(train, other, None, Schema.infer(train))
    rng = np.random.default_rng(0)
    res = dcr(encode(p, rng), rng)
    hist = res["nndr_histogram"]
    assert set(hist) == {"edges", "synth", "holdout"}
    assert hist["holdout"] is None and "holdout_median" not in hist
    assert sum(hist["synth"]) == pytest.approx(1.0)
    assert res["dcr_share"] is None and "holdout" in res["note"]


def test_dcr_with_a_single_training_row_uses_it_as_both_neighbours(splits_small) -> None:
    """One training row has no second neighbour: the NNDR of a row that is not a copy is 1
    (nearest / nearest), of a copy 0."""
    from synthdata.evaluate.leakage import dcr, encode

    train, holdout, other = splits_small
    one = train.iloc[:1]
    synth = pd.concat([one, other.iloc[:9]], ignore_index=True)
    p = prepare(one, synth, holdout.iloc[:20], Schema.infer(train))
    rng = np.random.default_rng(0)
    res = dcr(encode(p, rng), rng)
    assert res["nndr_histogram"]["synth"][0] == pytest.approx(0.1)  # the copy
    assert res["nndr_histogram"]["synth"][-1] == pytest.approx(0.9)  # ratio 1: last bin
    assert res["nndr"] == 1.0


def test_roc_curve_on_a_known_ranking() -> None:
    """Scores ranking members 0.8 and 0.35 against non-members 0.4 and 0.1: AUC 3/4, half of
    the members are found before the first false positive; the curve is sampled on 101 FPR
    points."""
    from synthdata.evaluate.leakage import _roc

    out = _roc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert out["auc"] == pytest.approx(0.75)
    assert out["tpr_at_1pct_fpr"] == pytest.approx(0.5)
    curve = out["roc"]
    assert curve["fpr"] == pytest.approx(np.linspace(0, 1, 101).tolist())
    assert curve["tpr"][25] == pytest.approx(0.5) and curve["tpr"][75] == pytest.approx(1.0)
    assert curve["tpr"][-1] == 1.0
    assert all(a <= b for a, b in zip(curve["tpr"], curve["tpr"][1:]))


def test_risk_reports_the_control_rate_it_subtracts() -> None:
    r = risk_from_counts(500, 300, 100, 20)
    control, _ = success_rate(500, 100)
    assert r["n_control"] == 100.0 and r["control_rate"] == pytest.approx(control)
    assert r["risk"] == pytest.approx((r["attack_rate"] - control) / (1 - control))
    assert r["baseline_rate"] == pytest.approx(success_rate(500, 20)[0])
    assert r["attack_better_than_baseline"] is True
    alone = risk_from_counts(500, 300, None, 20)  # no control: the attack rate itself
    assert alone["control_rate"] is None and "n_control" not in alone
    assert alone["risk"] == pytest.approx(alone["attack_rate"])


def test_attacks_are_capped_by_the_holdout_size(splits_small) -> None:
    """Train and control attack the same number of records: with 30 holdout rows each risk
    makes 30 attacks (not the 400 training rows), and the copy's control successes are
    counted out of those 30."""
    from synthdata.evaluate.leakage import inference, linkability

    train, holdout, _ = splits_small
    small = holdout.iloc[:30]
    p = prepare(train, train.copy(), small, Schema.infer(train))
    quasi = ["age", "sex", "kappa"]
    inf = inference(p, quasi, ["death"], np.random.default_rng(0))
    link = linkability(p, quasi, np.random.default_rng(0))
    for res in (inf, link):
        assert res["n_attacks"] == 30
        assert 0 <= res["n_control"] <= 30 and 0 <= res["n_success"] <= 30
    assert inf["n_success"] == 30  # a copy: the nearest synthetic row is the target itself
    assert inf["per_secret"]["death"]["n_attacks"] == 30
    assert inf["record_hits"].sum() == 30 and len(inf["record_hits"]) == len(train)


def test_inference_explains_a_secret_without_auxiliary_columns(splits_small) -> None:
    from synthdata.evaluate.leakage import inference

    train, holdout, _ = splits_small
    p = prepare(train, train.copy(), holdout, Schema.infer(train))
    out = inference(p, ["death"], ["death"], np.random.default_rng(0))
    assert out["note"] == "no sensitive column could be attacked"
    assert out["per_secret"] == {"death": {"note": "no quasi column left as auxiliary "
                                                   "information"}}
    assert "risk" not in out


def test_exposed_records_rank_training_rows_by_attacks_succeeded() -> None:
    from synthdata.evaluate.leakage import exposed_records

    singled = np.array([0, 2, 0, 1, 0])
    linked = np.array([0, 1, 0, 1, 1])
    out = exposed_records(singled, linked, None)
    assert out == [
        {"row": 1, "attacks_succeeded": 3, "singled_out": 2, "linked": 1},
        {"row": 3, "attacks_succeeded": 2, "singled_out": 1, "linked": 1},
        {"row": 4, "attacks_succeeded": 1, "singled_out": 0, "linked": 1},
    ]
    assert exposed_records(singled, linked, top=1) == out[:1]
    assert exposed_records(None, None) == []


def _single_matches(n_queries: int, n_rows: int, w: float, rng: np.random.Generator
                    ) -> np.ndarray:
    """Masks of queries whose match probability is uniform in [0, w] (Anonymeter's model)."""
    p = rng.uniform(0, w, size=(n_queries, 1))
    return rng.random((n_queries, n_rows)) < p


def test_size_correction_predicts_control_successes_on_a_larger_table() -> None:
    """A query singles out one row less often in a larger table. Fitted on 2,000 control
    rows, the correction predicts how many of the same kind of queries single out one row
    among 8,000 (simulated), within sampling error; at the control's own size it is 1."""
    from synthdata.evaluate.leakage import _size_correction

    rng = np.random.default_rng(5)
    w = 0.002
    ctl = _single_matches(1000, 2000, w, rng)
    n_ctl = int((ctl.sum(1) == 1).sum())
    big = _single_matches(1000, 8000, w, np.random.default_rng(6))
    n_big = int((big.sum(1) == 1).sum())
    assert n_big < 0.5 * n_ctl  # the effect being corrected
    factor = _size_correction(ctl, 8000, np.random.default_rng(0))
    assert n_ctl * factor == pytest.approx(n_big, rel=0.25)
    assert _size_correction(ctl, 2000, np.random.default_rng(0)) == pytest.approx(1.0)
