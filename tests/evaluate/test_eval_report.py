"""Report: JSON schema, sections, HTML page, the cheap path and progress."""

from __future__ import annotations

import json
import re

import pytest

from synthdata.errors import ConfigError, DataError
from synthdata.evaluate import KNOWN_METRICS, REPORT_VERSION, Report, evaluate

REQUIRED = ("shapes", "pair_trends", "column_distance_mean", "correlation_difference",
            "detection_auc", "utility_ratio", "coverage_categories", "coverage_range",
            "exact_copies", "exact_copy_share", "holdout_exact_copy_share", "dcr_share",
            "dcr_median_ratio", "nndr", "mia_auc", "mia_auc_distance", "mia_auc_density",
            "mia_auc_classifier", "mia_tpr_at_1pct_fpr", "singling_out_risk",
            "linkability_risk", "inference_risk", "inference_risk_ci_low",
            "inference_risk_ci_high", "tstr_auc", "trtr_auc", "tstr_f1")


@pytest.fixture(scope="module")
def full_report(splits_small) -> Report:
    train, holdout, other = splits_small
    steps = []
    report = evaluate(train, other, holdout=holdout, target="death", seed=0,
                      progress=lambda s, d, t: steps.append((s, d, t)))
    report.test_steps = steps  # type: ignore[attr-defined]
    return report


def test_metrics_have_every_contract_name_in_range(full_report: Report) -> None:
    m = full_report.metrics
    for name in REQUIRED:
        assert m[name] is not None, name
    assert set(m) <= set(KNOWN_METRICS)
    for name, value in m.items():
        if value is None or name in ("exact_copies", "nndr"):
            continue
        if name.endswith("_excess"):  # a difference of two shares
            assert -1.0 <= value <= 1.0, (name, value)
            continue
        assert 0.0 <= value <= 1.5, (name, value)  # utility_ratio may exceed 1 slightly


def test_progress_reports_every_step(full_report: Report) -> None:
    steps = full_report.test_steps  # type: ignore[attr-defined]
    total = steps[0][2]
    assert [d for _, d, _ in steps] == list(range(1, total + 1))
    assert {s.partition(":")[0] for s, _, _ in steps} == {"evaluate"}  # one bar
    assert {s.partition(":")[2] for s, _, _ in steps} >= {"detection", "dcr",
                                                          "membership_inference"}


def test_json_is_versioned_and_round_trips(full_report: Report) -> None:
    data = json.loads(full_report.to_json())
    assert data["report_version"] == REPORT_VERSION
    for key in ("metrics", "metric_info", "notes", "meta", "columns", "pairs", "detection",
                "utility", "coverage", "leakage", "risks", "sections"):
        assert key in data
    assert data["metric_info"]["detection_auc"]["higher_is_better"] is False
    col = data["columns"][0]
    assert {"name", "kind", "distance", "plot", "missing_rate_diff"} <= set(col)
    again = Report.from_json(full_report.to_json())
    assert again.metrics == full_report.metrics
    with pytest.raises(ConfigError, match="version"):
        Report.from_dict({**data, "report_version": 99})


def test_exposed_records_give_positions_not_values(full_report: Report) -> None:
    records = full_report.to_dict()["risks"]["exposed_records"]
    for rec in records:
        assert set(rec) <= {"row", "attacks_succeeded", "singled_out", "linked", "inferred"}
        assert isinstance(rec["row"], int)


@pytest.fixture(scope="module")
def sectioned(full_report: Report) -> tuple[Report, str]:
    report = Report.from_dict(full_report.to_dict())
    report.add_section("privacy", {"epsilon": 3.0, "entries": [{"step": "model.dp_sgd",
                                                                 "epsilon": 2.5}]})
    report.add_section("gate", {"passed": False, "results": [
        {"metric": "mia_auc", "rule": "<= 0.55", "value": 0.7, "passed": False,
         "reason": "0.7 is not <= 0.55"}]})
    report.add_section("manifest", {"seed": 0, "input_fingerprint": "abc123"})
    return report, report.to_html()


def test_sections_appear_in_json_and_html(sectioned: tuple[Report, str]) -> None:
    report, page = sectioned
    data = report.to_dict()
    assert data["sections"]["privacy"]["epsilon"] == 3.0
    assert "FAILED" in page and "0.7 is not &lt;= 0.55" in page
    assert "model.dp_sgd" in page and "abc123" in page
    with pytest.raises(ConfigError):
        report.add_section("", {})
    with pytest.raises(ConfigError):
        report.add_section("x", [1, 2])  # type: ignore[arg-type]


def test_html_is_self_contained_and_fits_the_width(sectioned: tuple[Report, str]) -> None:
    _, page = sectioned
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") >= 4   # marginals, heatmap, DCR, ROC
    assert not re.search(r"(src|href)\s*=\s*['\"]?https?:", page)
    assert "max-width" in page and "width:100%" in page
    assert "NOT JUDGED" not in page
    assert "NOT JUDGED — no gate was applied" in Report(metrics={}, meta={}).to_html()


def test_cheap_path_computes_only_the_basics(flchain_full) -> None:
    # its speed is measured by benchmarks/bench_speed.py, not asserted here
    holdout = flchain_full.sample(2000, random_state=1)
    report = evaluate(flchain_full, holdout, sections=("fidelity_basic",))
    assert report.metrics["column_distance_mean"] is not None
    assert report.metrics["correlation_difference"] is not None
    assert report.metrics["exact_copies"] is not None
    assert report.metrics["detection_auc"] is None and report.metrics["mia_auc"] is None


def test_bad_arguments_are_named(splits_small) -> None:
    train, holdout, _ = splits_small
    with pytest.raises(ConfigError, match="section"):
        evaluate(train, holdout, sections=("everything",))
    with pytest.raises(ConfigError, match="target 'nope'"):
        evaluate(train, holdout, target="nope")
    with pytest.raises(DataError, match="'age'.*missing from the synthetic"):
        evaluate(train, holdout.drop(columns=["age"]))
    with pytest.raises(DataError, match="no rows"):
        evaluate(train, holdout.iloc[:0])


def test_id_columns_are_excluded(splits_small) -> None:
    train, holdout, _ = splits_small
    train = train.assign(patient_id=range(len(train)))
    holdout = holdout.assign(patient_id=range(len(holdout)))
    report = evaluate(train, holdout, sections=("fidelity_basic",))
    assert "patient_id" not in report.meta["columns"]
    assert "patient_id" in report.meta["excluded_columns"]
