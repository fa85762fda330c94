"""A linked-table run with a survival endpoint: KM plot in the HTML, concordance metrics,
synthetic times within follow-up, and the de-identification log per table."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synthdata.pipeline.runner import run_pipeline
from tests.conftest import DATA

ROOT = DATA.parent


@pytest.fixture(scope="module")
def pbc_run(tmp_path_factory: pytest.TempPathFactory):
    cfg = {
        "data": {"tables": {"pbc": str(DATA / "pbc.csv"), "pbcseq": str(DATA / "pbcseq.csv")},
                 "schema": str(ROOT / "schemas" / "pbc.yaml")},
        "generator": {"kind": "gmm", "params": {"n_components": 6, "max_iter": 40}},
        "evaluate": {"full": False},
        "output": {"dir": str(tmp_path_factory.mktemp("pbc"))},
        "gate": {"exact_copy_excess": {"max": 0.005}},  # the fast evaluation computes it
    }
    result = run_pipeline(cfg)
    report = json.loads((result.run_dir / "report.json").read_text())
    return result, report


def test_html_has_the_kaplan_meier_plot(pbc_run):
    result, report = pbc_run
    html = (result.run_dir / "report.html").read_text()
    assert "<h2>Survival</h2>" in html
    assert "alt='Kaplan-Meier curves pbc' src='data:image/png;base64," in html
    curves = report["sections"]["survival"]["pbc"]["km"]
    assert curves["real"]["survival"][0] == curves["synthetic"]["survival"][0] == 1.0


def test_concordance_and_time_checks_are_reported(pbc_run):
    result, report = pbc_run
    metrics = report["metrics"]
    assert metrics["c_index_trtr[pbc]"] > 0.7
    assert metrics["c_index_tstr[pbc]"] > 0.6
    assert metrics["survival_concordance_ratio[pbc]"] == pytest.approx(
        metrics["c_index_tstr[pbc]"] / metrics["c_index_trtr[pbc]"])
    assert metrics["survival_time_violations[pbc]"] == 0
    assert result.metrics["km_max_distance[pbc]"] == metrics["km_max_distance[pbc]"]
    # what the report says holds in the written table: no time < 0 or after follow-up ends
    pbc = pd.read_csv(result.run_dir / "pbc.csv")
    end = report["sections"]["survival"]["pbc"]["check"]["end_of_follow_up"]
    assert pbc["time"].between(0, end).all()


def test_deidentification_log_per_table(pbc_run):
    _, report = pbc_run
    section = report["sections"]["deidentification"]
    assert section["enabled"] and section["safe_harbor"]
    assert {(a["table"], a["column"], a["rule"]) for a in section["actions"]} == {
        ("pbc", "age", "top_code_90"), ("pbcseq", "age", "top_code_90")}
