"""The default gate judges a pipeline without `gate:`: it refuses a copy of the training
data and passes the shipped GMM pipeline; rare-value replay separates memorised values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthdata.evaluate import evaluate
from synthdata.evaluate.gate import DEFAULT_PRESET, GATE_PRESETS
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.runner import run_pipeline
from tests.conftest import DATA


@pytest.fixture()
def copy_generator(monkeypatch):
    from synthdata.models import registry

    monkeypatch.setitem(registry._GENERATORS, "copy",
                        "tests.evaluate.copy_generator:CopyGenerator")


def _flchain_pipeline(tmp_path, **update) -> PipelineConfig:
    cfg = PipelineConfig.from_yaml(DATA.parent / "pipelines" / "flchain.yaml")
    cfg = cfg.model_copy(update={"gate": None, **update})
    assert cfg.gate is None
    return cfg


def test_default_gate_refuses_a_copy_of_the_training_data(tmp_path, copy_generator):
    cfg = _flchain_pipeline(tmp_path)
    cfg = cfg.model_copy(update={"generator": cfg.generator.model_copy(
        update={"kind": "copy", "params": {}})})
    result = run_pipeline(cfg, output_dir=tmp_path)
    assert not result.passed and result.judged and result.synthetic_path is None
    failed = {r["metric"] for r in result.gate if not r["passed"]}
    assert {"exact_copy_excess", "dcr_share", "mia_auc", "singling_out_risk"} <= failed
    gate = json.loads((result.run_dir / "report.json").read_text())["sections"]["gate"]
    assert gate["preset"] == DEFAULT_PRESET and gate["status"] == "failed"
    assert len(gate["results"]) == len(GATE_PRESETS[DEFAULT_PRESET])
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["gate"] == {"status": "failed", "passed": False, "preset": DEFAULT_PRESET}


@pytest.mark.slow
def test_default_gate_passes_the_shipped_gmm_pipeline(tmp_path):
    result = run_pipeline(_flchain_pipeline(tmp_path), output_dir=tmp_path)
    assert result.passed, result.gate
    assert result.synthetic_path is not None and result.gate_status == "passed"
    rare = json.loads((result.run_dir / "report.json").read_text())["sections"]["rare_categories"]
    assert rare["columns"] == [{"column": "chapter", "n_categories": 16, "n_merged": 3,
                                "n_rows_changed": rare["columns"][0]["n_rows_changed"],
                                "into": "other"}]
    synth = pd.read_csv(result.synthetic_path)
    assert "other" in set(synth["chapter"].dropna())


def _people(n: int, seed: int, names: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"name": rng.choice(names, n), "sex": rng.choice(["F", "M"], n),
                         "age": rng.integers(20, 90, n), "x": rng.normal(size=n)})


def test_rare_value_replay_flags_memorised_names_not_the_natural_rate():
    from synthdata.schema import Schema

    names = [f"person{i}" for i in range(100_000)]       # a name is held by ~1 row
    train, holdout = _people(800, 0, names), _people(400, 1, names)
    schema = Schema.infer(train).with_overrides({"columns": [
        {"name": "name", "kind": "categorical"}, {"name": "sex", "pii": "quasi"}]})
    copy = evaluate(train, train, holdout=holdout, schema=schema, sections=("fidelity_basic",))
    fresh = evaluate(train, _people(800, 2, names), holdout=holdout, schema=schema,
                     sections=("fidelity_basic",))
    m_copy, m_fresh = copy.metrics, fresh.metrics
    assert m_copy["rare_value_replay"] == 1.0
    assert m_copy["rare_value_replay_excess"] > 0.5
    assert abs(m_fresh["rare_value_replay_excess"]) < 0.1
    assert m_fresh["holdout_rare_value_replay"] == m_copy["holdout_rare_value_replay"] < 0.05
    replay = copy.body["leakage"]["rare_value_replay"]
    assert replay["k"] == 10 and replay["quasi_columns"] == ["sex"]
    assert replay["columns"]["name"]["n_rare_train_values"] > 700
    assert replay["columns"]["(sex)"]["n_rare_train_values"] == 0
    assert "person" not in json.dumps(replay)  # counts only, never a value
    # without a holdout the natural rate is unknown: no excess
    alone = evaluate(train, train, schema=schema, sections=("fidelity_basic",)).metrics
    assert alone["rare_value_replay"] == 1.0 and alone["rare_value_replay_excess"] is None
