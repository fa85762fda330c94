"""The report's first screen: quality score, privacy level, tiles, warnings, notebook API."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.errors import ConfigError
from synthdata.evaluate import Report, evaluate
from synthdata.evaluate.gate import check_gate, dp_verdict
from synthdata.evaluate.score import (
    METRICS,
    headline_tiles,
    privacy_level,
    quality_score,
    tile,
    warnings_for,
)

GOOD = {"shapes": 0.95, "pair_trends": 0.9, "detection_auc": 0.6, "utility_ratio": 0.95,
        "coverage_categories": 1.0, "coverage_range": 0.9, "exact_copy_excess": 0.0,
        "rare_value_replay_excess": 0.01, "dcr_share": 0.5, "mia_auc": 0.52,
        "singling_out_risk": 0.05, "linkability_risk": 0.0, "inference_risk": 0.05,
        "trtr_auc": 0.83}


def _dict(metrics, sections=None, **extra):
    return {"metrics": metrics, "sections": sections or {}, "meta": {}, **extra}


def _dp_privacy(epsilon, delta=1e-6, unit="row"):
    return {"private": True, "unit": unit, "spent": {"epsilon": epsilon, "delta": delta},
            "budget": {"epsilon": 3.0, "delta": delta}, "entries": []}


# -- quality score ---------------------------------------------------------------------------

def test_quality_score_is_the_documented_weighted_mean() -> None:
    q = quality_score(GOOD)
    expected = 100 * (0.25 * 0.95 + 0.25 * 0.9 + 0.2 * (1 - 2 * 0.1) + 0.15 * 0.95
                      + 0.15 * 0.95)
    assert q["score"] == pytest.approx(expected, abs=0.05)
    assert q["grade"] == "A" if expected >= 90 else "B"
    assert q["capped"] is None


def test_missing_components_are_renormalised_and_shapes_are_required() -> None:
    q = quality_score({"shapes": 0.8, "pair_trends": 0.6})
    assert q["score"] == pytest.approx(70.0) and q["grade"] == "C"
    assert set(q["components"]) == {"column shapes", "pair trends"}
    none = quality_score({"detection_auc": 0.5})
    assert none["score"] is None and none["grade"] == "?"


def test_a_detectable_copy_cannot_get_a_good_grade() -> None:
    q = quality_score({**GOOD, "shapes": 1.0, "pair_trends": 1.0, "detection_auc": 0.98,
                       "utility_ratio": 1.0, "coverage_categories": 1.0,
                       "coverage_range": 1.0})
    assert q["score"] >= 80  # the mean alone would say B
    assert q["grade"] == "D" and "detection" in q["capped"]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["shapes", "pair_trends", "detection_auc",
                                        "utility_ratio", "coverage_categories",
                                        "coverage_range"]),
                       st.one_of(st.floats(-0.5, 2.0), st.sampled_from([math.nan, math.inf,
                                                                       None]))))
def test_quality_score_is_bounded_and_grade_follows_score(metrics) -> None:
    q = quality_score(metrics)
    if q["score"] is None:
        assert q["grade"] == "?"
        return
    assert 0 <= q["score"] <= 100
    bands = [("A", 90), ("B", 80), ("C", 70), ("D", 60)]
    grade = next((g for g, b in bands if q["score"] >= b), "F")
    assert q["grade"] == (grade if q["capped"] is None else "D")


# -- privacy level ---------------------------------------------------------------------------

@pytest.mark.parametrize(("epsilon", "delta", "level"), [
    (0.5, 1e-6, "high"), (1.0, 1e-6, "high"), (3.0, 1e-6, "medium"), (10.0, 1e-6, "medium"),
    (12.0, 1e-6, "low"), (0.5, 0.01, "low")])
def test_dp_privacy_level_derives_from_epsilon_and_delta(epsilon, delta, level) -> None:
    # leakage metrics are terrible here: under DP they do not set the level
    report = _dict({**GOOD, "mia_auc": 0.99, "epsilon": epsilon, "delta": delta},
                   {"privacy": _dp_privacy(epsilon, delta, "patient")})
    p = privacy_level(report)
    assert p["level"] == level and p["basis"] == "dp"
    assert "patient" in p["reason"]


def test_leakage_privacy_level_without_dp() -> None:
    assert privacy_level(_dict(GOOD))["level"] == "medium"
    low = privacy_level(_dict({**GOOD, "mia_auc": 0.7}))
    assert low["level"] == "low" and "Membership inference (AUC) 0.7 is not <= 0.6" in \
        low["reason"]
    # without a holdout the attacks do not run: unknown, not medium
    cheap = {k: v for k, v in GOOD.items() if k not in ("dcr_share", "mia_auc")}
    assert privacy_level(_dict(cheap))["level"] == "unknown"
    # a ledger that is not private (spent delta 1 in old reports) is not DP
    ledger = {"private": False, "spent": {"epsilon": None, "delta": 1.0}}
    assert privacy_level(_dict(GOOD, {"privacy": ledger}))["basis"] == "leakage"


def test_gate_threshold_overrides_the_default() -> None:
    metrics = {**GOOD, "mia_auc": 0.7}
    gate = check_gate(metrics, {"mia_auc": {"max": 0.75}}).to_dict()
    report = _dict(metrics, {"gate": gate})
    t = tile("mia_auc", report)
    assert (t.status, t.threshold, t.threshold_source) == ("pass", 0.75, "gate")
    assert tile("mia_auc", _dict(metrics)).status == "fail"
    assert tile("mia_auc", _dict(metrics)).threshold_source == METRICS["mia_auc"].basis
    assert privacy_level(report)["level"] == "medium"
    assert tile("nndr", _dict({"nndr": 0.8})).status == "info"
    assert tile("mia_auc", _dict({"mia_auc": None})).status == "missing"


def test_tiles_have_human_labels_and_explanations() -> None:
    groups = headline_tiles(_dict({**GOOD, "epsilon": 2.0, "delta": 1e-6}))
    names = [t.name for g in groups.values() for t in g]
    assert "exact_copies" not in names  # the excess is the judged number
    for t in (t for g in groups.values() for t in g):
        assert "_" not in t.label and t.label[0].isupper(), t.label
        assert t.explanation.endswith(".") and len(t.explanation) > 20, t.name


def test_trtr_near_one_warns_about_a_leak_column() -> None:
    leak = _dict({**GOOD, "trtr_auc": 0.995}, meta={"target": "death"})
    leak["meta"] = {"target": "death"}
    (text,) = warnings_for(leak)
    assert "0.995" in text and "'death'" in text and "leak" in text
    assert tile("trtr_auc", leak).status == "warn"
    assert warnings_for(_dict(GOOD)) == []
    page = Report.from_dict(_full(leak["metrics"], meta={"target": "death"})).to_html()
    assert "role='alert'" in page and "probably leaks it" in page


# -- HTML: first screen ----------------------------------------------------------------------

def _full(metrics, sections=None, meta=None):
    return {"report_version": 1, "metrics": metrics, "meta": meta or {"n_train": 10},
            "notes": [], "sections": sections or {}}


def _privacy_section(private: bool):
    if private:
        return {**_dp_privacy(2.5, 1e-6), "statement": "with (ε=2.5, δ=1e-06)-DP",
                "entries": [{"step": "data.count", "mechanism": "gaussian", "private": True,
                             "rho": 0.001, "params": {"sigma": 40.0}, "note": "n"}]}
    return {"private": False, "budget": {"epsilon": None, "delta": None}, "unit": "row",
            "spent": {"epsilon": None, "delta": 1.0}, "statement": "without DP",
            "entries": [{"step": "model.gmm.fit", "mechanism": "not_private",
                         "private": False, "epsilon": None, "delta": None, "params": {},
                         "note": "fitted without privacy"}]}


def test_first_screen_of_a_run_without_dp() -> None:
    sections = {"gate": check_gate(GOOD, "default").to_dict(),
                "privacy": _privacy_section(False)}
    page = Report.from_dict(_full(GOOD, sections)).to_html()
    assert re.search(r"id='quality-score' data-score='9\d\.\d' data-grade='A'", page)
    assert "id='privacy-level' data-level='medium'" in page
    assert "No differential privacy" in page and "δ spent" not in page
    assert "δ = 1" not in page and "dp-facts" not in page
    assert page.index("id='gate-banner'") < page.index("id='quality-score'") < \
        page.index("class='tiles'") < page.index("<table class='gate-rules'>")
    # each tile is coloured against its threshold and explained in words
    tile_html = re.search(r"<div class='tile t-(\w+)' data-metric='mia_auc'.*?</div></div>",
                          page).group(0)
    assert "t-pass" in tile_html and "Membership inference (AUC)" in tile_html
    assert "target &lt;= 0.6 (gate)" in tile_html and "chance" in tile_html


def test_first_screen_of_a_dp_run_shows_epsilon_delta_and_unit() -> None:
    metrics = {**GOOD, "detection_auc": 0.98, "epsilon": 2.5, "delta": 1e-6}
    gate = dp_verdict(check_gate(metrics, {"epsilon": {"max": 3},
                                           "detection_auc": {"max": 0.9}})).to_dict()
    sections = {"gate": gate, "privacy": _privacy_section(True),
                "release": {"label": "not private (internal QA, do not publish)",
                            "not_private": ["metrics"], "note": "internal"}}
    report = Report.from_dict(_full(metrics, sections))
    page = report.to_html()
    banner = re.search(r"<div class='banner pass' id='gate-banner'.*?</div>", page).group(0)
    assert "ε = 2.5" in banner and "δ = 1e-06" in banner and "row (one record" in banner
    assert "id='privacy-level' data-level='medium'" in page
    # the detectable synthetic data is red, not a neutral tile
    assert "<div class='tile t-fail' data-metric='detection_auc'" in page
    assert "Not private (internal QA, do not publish)" in page
    assert page.count("<span class='badge'>not private (internal QA, do not publish)") >= 2
    assert report.to_dict()["summary"]["privacy_label"].startswith("not private")


def test_no_gate_is_not_judged_everywhere() -> None:
    page = Report.from_dict(_full(GOOD)).to_html()
    assert "NOT JUDGED" in page and "PASSED" not in page
    assert "data-status='not_judged'" in page


def test_appendix_is_collapsed_and_timings_appear_once() -> None:
    sections = {"validation": {"passed": True, "results": [
                    {"expectation": "expect_column_to_exist", "column": c, "success": True}
                    for c in "abc"]},
                "privacy": _privacy_section(False), "timings": {"fit": 1.5, "evaluate": 2.0},
                "manifest": {"seed": 0, "timings_s": {"fit": 1.5}}}
    page = Report.from_dict(_full(GOOD, sections, meta={"timings": {"dcr": 0.4}})).to_html()
    appendix = page[page.index("<details id='appendix'>"):]
    for title in ("Validation", "Privacy ledger", "Manifest", "Timings"):
        assert f"<h3>{title}</h3>" in appendix
    assert page.count("<h3>Timings</h3>") == 1 and "timings_s" not in page
    assert "evaluate › dcr" in appendix
    assert "all expectations met (3 of 3 hold)" in appendix
    nav = re.search(r"<nav class='toc'.*?</nav>", page).group(0)
    assert "#summary" in nav and "#gate" in nav and "#appendix" in nav
    # table headers never wrap letter by letter
    assert re.search(r"\.sdr th\{[^}]*white-space:nowrap", page)


def test_plots_survive_missing_and_non_finite_values() -> None:
    data = _full(GOOD)
    data["columns"] = [{"name": "x", "kind": "continuous", "metric": "ks", "distance": None,
                        "plot": {"type": "hist", "edges": [0, 1, None], "real": [None, 1],
                                 "synth": [0.5, 0.5]}},
                       {"name": "y", "kind": "categorical", "metric": "tv", "distance": 0.1,
                        "plot": {"type": "bar", "labels": ["a"], "real": [None],
                                 "synth": [None]}}]
    data["pairs"] = {"columns": ["x", "y"], "real": [[1, None], [None, 1]],
                     "synth": [[1, 0], [0, 1]], "difference": [[0, None], [None, 0]],
                     "bivariate": [{"x": {"name": "x", "type": "numeric", "edges": [0, 1]},
                                    "y": {"name": "y", "type": "discrete", "labels": ["a"]},
                                    "real": [[None]], "synth": [[1.0]]}]}
    data["leakage"] = {"dcr": {"histogram": {"edges": [0, 1], "train": [None],
                                             "holdout": [None]},
                               "embedding": {"x_edges": [], "y_edges": [], "real": [],
                                             "synth": []}}}
    page = Report.from_dict(data).to_html()
    assert page.startswith("<!DOCTYPE html>")


# -- notebook API ----------------------------------------------------------------------------

def test_repr_html_is_the_compact_first_screen() -> None:
    report = Report.from_dict(_full(GOOD, {"gate": check_gate(GOOD, "default").to_dict()}))
    inline = report._repr_html_()
    assert inline.startswith("<div class='sdr'>") and "<img" not in inline
    assert "id='quality-score'" in inline and "Privacy level" in inline
    # scoped CSS: it does not restyle the notebook around it
    css = re.search(r"<style>(.*?)</style>", inline, re.DOTALL).group(1)
    for rule in re.findall(r"(?:^|})\s*([^{}@]+)\{", css):
        assert all(sel.strip().startswith(".sdr") for sel in rule.split(",")), rule
    assert len(inline) < len(report.to_html())


def test_to_frame_is_tidy() -> None:
    metrics = {**GOOD, "nndr": 0.8, "tstr_r2": None}
    gate = check_gate(metrics, {"mia_auc": {"max": 0.5}}).to_dict()
    frame = Report.from_dict(_full(metrics, {"gate": gate})).to_frame()
    assert list(frame.columns) == ["name", "label", "group", "value", "operator", "threshold",
                                   "threshold_source", "status", "explanation"]
    assert len(frame) == len(metrics) and frame["name"].is_unique
    by = frame.set_index("name")
    assert by.loc["mia_auc", "status"] == "fail" and by.loc["mia_auc", "threshold"] == 0.5
    assert by.loc["mia_auc", "threshold_source"] == "gate"
    assert by.loc["shapes", "status"] == "pass" and by.loc["shapes", "operator"] == ">="
    assert by.loc["nndr", "status"] == "info" and pd.isna(by.loc["nndr", "threshold"])
    assert by.loc["tstr_r2", "status"] == "missing" and math.isnan(by.loc["tstr_r2", "value"])
    assert frame["value"].dtype == "float64"


def test_save_writes_both_files_and_returns_their_paths(tmp_path) -> None:
    report = Report.from_dict(_full(GOOD))
    paths = report.save(tmp_path / "new" / "folder")
    json_path, html_path = paths
    assert paths.json == json_path == tmp_path / "new" / "folder" / "report.json"
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    data = json.loads(json_path.read_text())
    assert data["summary"]["quality"]["grade"] == report.summary["quality"]["grade"]
    assert Report.from_json(json_path.read_text()).metrics == report.metrics
    assert sorted(p.name for p in (tmp_path / "new" / "folder").iterdir()) == [
        "report.html", "report.json"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        report.save(blocker)


# -- a real evaluation -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluated(splits_small) -> Report:
    train, holdout, other = splits_small
    return evaluate(train, other, holdout=holdout, target="death", seed=0)


def test_evaluation_carries_the_data_of_the_new_plots(evaluated: Report) -> None:
    data = evaluated.to_dict()
    views = data["pairs"]["bivariate"]
    assert 1 <= len(views) <= 4
    diffs = [v["difference"] for v in views]
    assert diffs == sorted(diffs, reverse=True)
    assert max(diffs) == pytest.approx(max(max(r) for r in data["pairs"]["difference"]), abs=1e-6)
    for v in views:
        assert math.isclose(sum(map(sum, v["real"])), 1.0, abs_tol=1e-4)
    dcr = data["leakage"]["dcr"]
    assert math.isclose(sum(dcr["nndr_histogram"]["synth"]), 1.0, abs_tol=1e-9)
    assert math.isclose(sum(dcr["nndr_histogram"]["holdout"]), 1.0, abs_tol=1e-9)
    emb = dcr["embedding"]
    assert emb["method"] == "pca" and len(emb["real"]) == len(emb["x_edges"]) - 1
    assert 0 < sum(emb["explained_variance"]) <= 1
    assert 0.9 <= sum(map(sum, emb["synth"])) <= 1.0
    page = evaluated.to_html()
    for alt in ("association matrices", "joint distributions", "distance to closest record",
                "PCA embedding", "membership inference ROC"):
        assert f"alt='{alt}" in page or alt in page, alt
    assert page.count("data:image/png;base64,") >= 6


def test_docs_list_every_default_threshold() -> None:
    from pathlib import Path

    from synthdata.evaluate.score import format_number

    docs = Path(__file__).resolve().parents[2] / "docs" / "report.md"
    if not docs.is_file():
        pytest.skip("docs/report.md is not in this checkout")
    text = docs.read_text()
    for name, spec in METRICS.items():
        if spec.operator is not None:
            row = (f"| {spec.label} | `{name}` | {spec.operator} "
                   f"{format_number(float(spec.threshold))} | {spec.basis} |")
            assert row in text, row


def test_a_dp_range_that_fell_back_is_a_warning_that_names_the_column() -> None:
    report = _dict(GOOD)
    report["sections"] = {"privacy": {"entries": [
        {"step": "pbc.transform.bounds[futime]", "params": {"range_fallback": True}},
        {"step": "pbc.transform.bounds[age]", "params": {"sigma": 3.0}},
        {"step": "visits.transform.bounds[day]", "params": {"range_fallback": True}}]}}
    (text,) = warnings_for(report)
    assert "pbc.futime, visits.day:" in text and "age" not in text
    assert "carry no information" in text and "privacy.epsilon" in text
