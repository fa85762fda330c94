"""A DP pipeline's shipped validation suite states only public facts, and it passes."""

import json

from synthdata.pipeline.runner import run_pipeline
from tests.conftest import DATA


def test_dp_run_validates_against_public_facts_only(tmp_path, flchain):
    path = tmp_path / "fl.csv"
    flchain.drop(columns=["chapter", "futime"]).to_csv(path, index=False)
    cfg = {"data": {"path": str(path)}, "generator": {"kind": "gmm"}, "privacy": {"epsilon": 3.0},
           "evaluate": {"full": False}, "output": {"dir": str(tmp_path / "out")},
           "gate": {"epsilon": {"max": 3.0}, "validation": "pass"},
           "deid": {"types": {"age": "age"}}}   # flchain has ages over 89 (a public mark)
    result = run_pipeline(cfg)
    assert result.passed, result.gate
    suite = (result.run_dir / "expectations.json").read_text()
    # no bound learned from the private table is shipped in the suite
    assert "expect_column_values_to_be_between" not in suite
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["metrics"]["epsilon"] <= 3.0
    assert DATA.is_dir()
