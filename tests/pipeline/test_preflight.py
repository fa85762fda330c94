"""A pipeline checks its configuration before it trains: a bad target, condition, gate
metric, generator or parameter is a ConfigError naming the key and the choices, raised
before any fitting (most of them before the data is read or a folder is made)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from synthdata.cli import main
from synthdata.errors import ConfigError
from synthdata.models.base import BaseGenerator
from synthdata.pipeline import runner
from synthdata.pipeline.runner import run_pipeline
from tests.conftest import DATA

FLCHAIN_SCHEMA = DATA.parent / "schemas" / "flchain.yaml"


def _config(csv: Path, out: Path, **extra: object) -> dict:
    cfg = {"data": {"path": str(csv), "schema": str(FLCHAIN_SCHEMA)},
           "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
           "evaluate": {"full": False}, "output": {"dir": str(out)},
           "gate": {"exact_copy_excess": {"max": 0.005}}}
    cfg.update(extra)
    return cfg


@pytest.fixture()
def no_fit(monkeypatch):
    """Fail the test if any generator starts training."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("fit() was called before the configuration was checked")

    monkeypatch.setattr(BaseGenerator, "fit", refuse)


@pytest.fixture()
def no_read(monkeypatch):
    """Fail the test if the data is read."""
    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the configuration was checked")

    monkeypatch.setattr(runner, "read_table", refuse)


@pytest.mark.parametrize("extra, message", [
    ({"evaluate": {"target": "nope"}},
     r"evaluate.target: 'nope': no such column; choose one of "
     r"\['age', 'sex'"),
    ({"sample": {"conditions": {"nope": 1}}},
     r"sample.conditions: condition on unknown column 'nope'; columns are \['age'"),
    ({"sample": {"conditions": {"age": 70}}},
     r"sample.conditions: condition age=70: column 'age' is integer; a value condition takes "
     r"only discrete"),
    ({"sample": {"conditions": {"sex": {"min": 1}}}},
     r"sample.conditions: range condition on column 'sex' \(categorical\)"),
    ({"sample": {"conditions": {"sex": "X"}}},
     r"sample.conditions: condition sex='X': value not seen in training \(not a category of "
     r"'sex'\); categories are \['F', 'M'\]"),
])
def test_bad_target_or_condition_fails_before_fitting(tmp_path, small_csv, no_fit, extra,
                                                      message):
    out = tmp_path / "out"
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        run_pipeline(_config(small_csv, out, **extra))
    assert time.perf_counter() - start < 30  # measured: well under a second without load
    assert not any(out.glob("run-*"))  # no run folder left behind


@pytest.mark.parametrize("extra, message", [
    ({"gate": {"detection_acu": {"max": 0.7}}}, r"gate: unknown metric\(s\) \['detection_acu'\]"),
    ({"gate": "strictest"}, r"gate: unknown gate preset 'strictest'; choose one of"),
    ({"generator": {"kind": "gan"}},
     r"generator.kind: unknown generator 'gan'; choose one of \['aim', 'ar', 'ctgan', 'ddpm', 'gmm', 'vae'\]"),
    ({"generator": {"kind": "gmm", "params": {"epochs": 3}}},
     r"generator.params: generator 'gmm': unknown parameter\(s\) \['epochs'\]; allowed: "
     r"\['n_components'"),
    ({"privacy": {"epsilon": -1}}, r"privacy"),
])
def test_config_errors_come_before_the_data_is_read(tmp_path, small_csv, no_read, no_fit,
                                                    extra, message):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message):
        run_pipeline(_config(small_csv, out, **extra))
    assert not out.exists()  # not even the output folder was made


def test_target_of_id_or_text_kind_is_refused(tmp_path, small_csv, no_fit):
    schema = yaml.safe_load(FLCHAIN_SCHEMA.read_text())
    schema["columns"].append({"name": "chapter", "kind": "text"})
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    cfg = _config(small_csv, tmp_path / "out", evaluate={"target": "chapter"})
    cfg["data"]["schema"] = str(path)
    with pytest.raises(ConfigError, match=r"evaluate.target: 'chapter': de-identification "
                                          r"removed it \(an identifier or free text\)"):
        run_pipeline(cfg)
    schema["columns"][-1] = {"name": "chapter", "kind": "id"}
    path.write_text(yaml.safe_dump(schema))
    with pytest.raises(ConfigError, match=r"evaluate.target: 'chapter': it is an id or "
                                          r"free-text column, which are not evaluated"):
        run_pipeline(cfg)


def test_linked_tables_refuse_conditions(tmp_path, no_read):
    cfg = {"data": {"tables": {"a": str(tmp_path / "a.csv")}, "schema": str(tmp_path / "s.yaml")},
           "sample": {"conditions": {"death": 1}}, "output": {"dir": str(tmp_path / "out")}}
    with pytest.raises(ConfigError, match=r"sample.conditions: conditional sampling is not "
                                          r"available for linked tables"):
        run_pipeline(cfg)


def test_good_conditions_and_target_run(tmp_path, small_csv):
    cfg = _config(small_csv, tmp_path / "out", evaluate={"full": False, "target": "death"},
                  sample={"rows": 120, "conditions": {"sex": "F", "age": {"min": 60}}})
    result = run_pipeline(cfg)
    import pandas as pd

    synth = pd.read_csv(result.synthetic_path)
    assert len(synth) == 120 and (synth["sex"] == "F").all() and (synth["age"] >= 60).all()


def test_cli_bad_target_is_one_line_and_exit_2(tmp_path, small_csv, capsys, no_fit):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_config(small_csv, tmp_path / "out",
                                           evaluate={"target": "nope"})))
    code = main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "evaluate.target: 'nope'" in err and "Traceback" not in err
