"""`data: {fhir: ...}`: a pipeline run on FHIR resources with the shipped mapping."""

import json
import sys

import pytest

from synthdata.errors import ConfigError
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.runner import run_pipeline
from tests.io.fhir_maker import make_bundle

pytest.importorskip("fhir.resources")


def _config(tmp_path, **extra) -> dict:
    return {"name": "fhir_test", "seed": 0, "data": {"fhir": str(tmp_path / "in")},
            "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
            "evaluate": {"full": False}, "output": {"dir": str(tmp_path / "out")}, **extra}


def _input(tmp_path, n=40):
    folder = tmp_path / "in"
    folder.mkdir()
    bundle = make_bundle(n, seed=2)
    (folder / "bundle.json").write_text(json.dumps(bundle))
    # a duplicate of one patient in its own file, and two resources of a type not read
    (folder / "patient.json").write_text(json.dumps(bundle["entry"][0]["resource"]))
    (folder / "Organization.ndjson").write_text(
        '{"resourceType": "Organization", "id": "o1"}\n{"resourceType": "Organization", "id": "o2"}\n')
    return folder


@pytest.mark.slow  # fits nine linked tables and evaluates: ~30 s on a loaded 2-core box
def test_fhir_run_reports_the_read_and_exports_valid_records(tmp_path):
    _input(tmp_path)
    result = run_pipeline(_config(tmp_path, gate="none"))
    report = json.loads((result.run_dir / "report.json").read_text())
    read = report["sections"]["fhir_read"]
    assert read["n_accounted"] == read["n_resources_found"]
    assert read["resources"]["Patient"]["duplicates"] == 1
    assert read["resources"]["Organization"] == {"found": 2, "read": 0, "duplicates": 0,
                                                 "skipped": 2,
                                                 "skip_reason": "resource type not read into tables"}
    coherence = report["sections"]["fhir"]["coherence"]
    assert coherence["events_after_death"] == 0 and coherence["observations_outside_encounter"] == 0
    assert any("Organization: 0 read, 2 skipped" in line for line in result.notes)
    assert "fhir_read" in (result.run_dir / "report.html").read_text()
    assert result.synthetic_path.name == "synthetic_bundle.json"
    from synthdata.io.fhir import read_fhir_summary

    _, again = read_fhir_summary(result.synthetic_path)
    _, bulk = read_fhir_summary(result.run_dir / "ndjson")
    assert again.n_read == bulk.n_read > 0 and not again.dangling


def test_fhir_run_refuses_privacy_before_reading(tmp_path):
    cfg = _config(tmp_path, privacy={"epsilon": 1.0})  # tmp_path/in does not even exist
    with pytest.raises(ConfigError, match="data.fhir runs without differential privacy"):
        run_pipeline(cfg)


def test_fhir_config_needs_one_source_and_no_schema(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of 'path'"):
        PipelineConfig.from_dict({"data": {"fhir": "x", "path": "y.csv"}})
    with pytest.raises(ConfigError, match="remove 'schema'"):
        PipelineConfig.from_dict({"data": {"fhir": "x", "schema": "s.yaml"}})
    (tmp_path / "p.yaml").write_text("data: {fhir: records/}\n")
    cfg = PipelineConfig.from_yaml(tmp_path / "p.yaml")
    assert cfg.data.fhir == tmp_path.resolve() / "records" and cfg.data.stem == "records"


@pytest.mark.slow
def test_cli_run_prints_the_read_summary(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    import yaml

    _input(tmp_path, n=30)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_config(tmp_path, gate="none")))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "synthdata.cli", "run", str(tmp_path / "p.yaml")],
                          check=False, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Organization: 0 read, 2 skipped (resource type not read into tables)" in proc.stderr
    assert "Patient:" in proc.stderr and "1 duplicate(s)" in proc.stderr
