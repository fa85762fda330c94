"""evaluate.sensitive in a pipeline: the groups section, its metrics and a gate on them."""

import json

import pytest

from synthdata.errors import ConfigError
from synthdata.pipeline.runner import run_pipeline
from tests.evaluate.test_groups import _table


def _cfg(tmp_path, **evaluate):
    path = tmp_path / "groups.csv"
    _table(700, 0).to_csv(path, index=False)
    return {"name": "groups", "data": {"path": str(path)},
            "generator": {"kind": "gmm", "params": {"n_components": 3, "max_iter": 30}},
            "evaluate": {"target": "y", **evaluate}, "output": {"dir": str(tmp_path / "out")},
            "gate": {"worst_group_shapes": {"min": 0.5}, "group_share_difference": {"max": 0.5}}}


def test_sensitive_groups_reach_the_report_and_the_gate(tmp_path):
    result = run_pipeline(_cfg(tmp_path, sensitive=["group"]))
    report = json.loads((result.run_dir / "report.json").read_text())
    groups = report["sections"]["groups"]
    assert [g["group"] for g in groups["columns"]["group"]["groups"]] == ["A", "B"]
    assert 0.5 < result.metrics["worst_group_shapes"] <= 1.0
    assert result.metrics["group_share_difference"] < 0.2
    assert result.metrics["tstr_dp_difference"] is not None
    rules = {r["metric"] for r in report["sections"]["gate"]["results"]}
    assert {"worst_group_shapes", "group_share_difference"} <= rules
    assert result.passed


def test_unknown_sensitive_column_stops_the_run(tmp_path):
    with pytest.raises(ConfigError, match="evaluate.sensitive"):
        run_pipeline(_cfg(tmp_path, sensitive=["race"]))


def test_unknown_sensitive_column_is_refused_before_training(tmp_path, monkeypatch):
    import synthdata.models.gmm as gmm

    def boom(*a, **k):
        raise AssertionError("fit ran")
    monkeypatch.setattr(gmm.GMMGenerator, "_fit", boom)
    with pytest.raises(ConfigError, match="'race'"):
        run_pipeline(_cfg(tmp_path, sensitive=["race"]))
