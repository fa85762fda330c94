"""Linked-table runs report history-level evaluation and within-patient rule counts."""

from __future__ import annotations

import copy
import json

import yaml

from synthdata.pipeline.runner import run_pipeline
from tests.medical.history_data import LINK_RULES, RULES, SCHEMA, cohort


def _config(tmp_path, tables, schema, **evaluate):
    paths = {}
    for name, df in tables.items():
        paths[name] = str(tmp_path / f"{name}.csv")
        df.to_csv(paths[name], index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    return {"data": {"tables": paths, "schema": str(tmp_path / "schema.yaml")},
            "generator": {"kind": "gmm", "params": {"n_components": 4, "max_iter": 30}},
            "evaluate": {"full": False, **evaluate}, "output": {"dir": str(tmp_path / "out")},
            "gate": {"history_rule_violations": {"max": 0},
                     "history_detection_auc": {"max": 1.0}}}


def test_run_reports_histories_rules_and_real_violations(tmp_path):
    tables = cohort(200)
    tables["visits"].loc[0, "day"] = int(tables["patients"].loc[0, "futime"]) + 5  # after follow-up
    schema = copy.deepcopy(SCHEMA)
    schema["tables"]["visits"]["constraints"] = list(RULES)
    schema["constraints"] = [LINK_RULES[0], {**LINK_RULES[1], "on_real_violation": "drop"}]
    schema["survival"] = {"patients": {"time": "futime", "event": "death"}}
    cfg = _config(tmp_path, tables, schema, target="death", exclude=["futime"])
    result = run_pipeline(cfg)
    assert result.passed
    report = json.loads((result.run_dir / "report.json").read_text())
    metrics = report["metrics"]
    assert metrics["history_rule_violations"] == 0 and metrics["constraint_violations"] == 0
    assert 0.4 <= metrics["history_detection_auc"] <= 1.0
    assert metrics["history_detection_auc[visits]"] == metrics["history_detection_auc"]
    assert "history_tstr_auc[visits]" in metrics
    constraints = report["sections"]["constraints"]
    assert constraints["real_violations"] == [
        {"rule": "visits.day <= patients.futime", "table": "visits", "policy": "drop", "rows": 1}]
    history = report["sections"]["history"]["visits"]
    assert history["tstr"]["excluded"] == ["futime"]
    assert {r["rule"] for r in history["rules"]} >= {
        "ever_diabetes non-decreasing over day per pid", "visits.day <= patients.futime"}
    assert all(r["synthetic_rows"] == 0 for r in history["rules"])
    assert {"detection", "marginals", "pairs"} <= set(history)
    assert report["sections"]["survival"]["patients"]["time_unit"] is None
    gate = {r["metric"] for r in report["sections"]["gate"]["results"]}
    assert {"history_rule_violations", "history_detection_auc"} <= gate


def test_single_table_utility_leaves_out_excluded_columns(tmp_path, flchain):
    from synthdata.evaluate import evaluate

    train, hold = flchain.iloc[:600], flchain.iloc[600:900]
    report = evaluate(train, train, holdout=hold, target="death", seed=0,
                      sections=("fidelity",), exclude=["futime"])
    assert report.body["utility"]["excluded"] == ["futime"]
    leaky = evaluate(train, train, holdout=hold, target="death", seed=0, sections=("fidelity",))
    assert leaky.body["utility"]["excluded"] == []
