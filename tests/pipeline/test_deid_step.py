"""The pipeline's de-identification step (``deid:``): what reaches the generator, the written
synthetic table, the shipped schema and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synthdata.errors import ConfigError, DataError
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.runner import run_pipeline
from synthdata.schema.model import Schema

N = 160
SCHEMA = {
    "name": "clinic",
    "columns": [
        {"name": "name", "kind": "id", "pii": "direct"},
        {"name": "email", "kind": "id", "pii": "direct"},
        {"name": "zip", "kind": "categorical", "dtype": "object", "pii": "quasi"},
        {"name": "dob", "kind": "datetime", "datetime_format": "%Y-%m-%d", "pii": "quasi"},
        {"name": "age", "kind": "integer", "pii": "quasi"},
        {"name": "notes", "kind": "text"},
        {"name": "diet", "kind": "text"},
        {"name": "bili", "kind": "continuous"},
        {"name": "stage", "kind": "categorical"},
    ],
}


def _clinic(n: int = N, seed: int = 7) -> pd.DataFrame:
    """A hand-made patient table with every kind of identifier Safe Harbor names."""
    rng = np.random.default_rng(seed)
    age = rng.integers(30, 90, n)
    age[:12] = rng.integers(90, 104, 12)            # ages over 89 must become 90
    born = [f"{2024 - a}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}" for a in age]
    zips = rng.choice(["02116", "03601", "10001", "94110", "89012"], n)  # 036, 890: restricted
    return pd.DataFrame({
        "name": [f"Patient {i} Smith" for i in range(n)],
        "email": [f"p{i}@example.org" for i in range(n)],
        "zip": zips,
        "dob": born,
        "age": age,
        "notes": [f"seen by Dr Lee, called patient {i} at home on 555-01{i % 100:02d}"
                  for i in range(n)],
        "diet": rng.choice(["low salt diet advised", "no restriction needed"], n),
        "bili": rng.gamma(2.0, 1.0, n).round(2),
        "stage": rng.choice([1, 2, 3, 4], n),
        "home_phone": [f"555-02{i:03d}" for i in range(n)],   # not marked: found by the scan
    })


@pytest.fixture(scope="module")
def clinic_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clinic")
    _clinic().to_csv(folder / "clinic.csv", index=False)
    (folder / "clinic.yaml").write_text(yaml.safe_dump(SCHEMA, sort_keys=False))
    return folder / "clinic.csv", folder / "clinic.yaml"


def _config(files: tuple[Path, Path], out: Path, **extra: object) -> dict:
    return {"name": "clinic", "data": {"path": str(files[0]), "schema": str(files[1])},
            "generator": {"kind": "gmm", "params": {"n_components": 3, "max_iter": 30}},
            "evaluate": {"full": False}, "output": {"dir": str(out)},
            "gate": {"exact_copy_excess": {"max": 0.005}},  # the fast evaluation computes it
            **extra}


@pytest.fixture(scope="module")
def clinic_run(clinic_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    cfg = _config(clinic_files, tmp_path_factory.mktemp("out"),
                  deid={"safe_text": ["diet"], "reference_year": 2024, "unmarked": "transform"})
    # 112 training rows coarsened by Safe Harbor (3-digit zip, birth year): one synthetic row
    # equal to a real one by chance is an excess of 0.009, so the gate allows two
    cfg["gate"] = {"exact_copy_excess": {"max": 0.02}}
    result = run_pipeline(cfg)
    report = json.loads((result.run_dir / "report.json").read_text())
    return result, report


def test_safe_harbor_is_on_by_default(clinic_files, tmp_path):
    """No deid block: a schema that marks identifiers gets Safe Harbor."""
    cfg = PipelineConfig.from_dict(_config(clinic_files, tmp_path))
    assert cfg.deid.enabled and cfg.deid.dates == "year" and cfg.deid.identifiers == "drop"


def test_written_synthetic_table_holds_no_identifier(clinic_run):
    result, _ = clinic_run
    assert result.passed
    synth = pd.read_csv(result.synthetic_path, dtype={"zip": str})
    assert set(synth.columns) == {"zip", "dob", "age", "diet", "bili", "stage"}
    assert set(synth["zip"].dropna()) <= {"021", "000", "100", "941"}   # 036 and 890 -> 000
    assert synth["age"].max() <= 90
    years = synth["dob"].dropna()
    assert (years == years.round()).all() and (2024 - years <= 89).all()  # years only, no 90+
    assert synth["diet"].isna().all()          # kept as declared safe, but text is not synthesised
    # the shipped schema is the one the generator saw
    schema = Schema.load(result.run_dir / "schema.yaml")
    assert schema.names == ["zip", "dob", "age", "diet", "bili", "stage"]
    assert schema["dob"].kind.value == "integer" and schema["age"].max == 90


def test_report_logs_each_rule_per_column(clinic_run):
    result, report = clinic_run
    section = report["sections"]["deidentification"]
    assert section["enabled"] and section["method"] == "HIPAA Safe Harbor"
    rules = {a["column"]: a["rule"] for a in section["actions"]}
    assert rules == {"name": "drop", "email": "drop", "zip": "zip3", "dob": "birth_year",
                     "age": "top_code_90", "notes": "drop", "diet": "keep", "home_phone": "drop"}
    changed = {a["column"]: a["n_changed"] for a in section["actions"]}
    assert changed["age"] == 12
    assert sorted(section["dropped_columns"]) == ["email", "home_phone", "name", "notes"]
    scan = {r["column"]: r["decision"] for r in section["identifier_scan"]}
    assert scan["home_phone"] == "transformed (deid.unmarked: transform)"
    assert scan["email"] == "marked pii: direct"
    privacy = report["sections"]["privacy"]
    assert any(e["step"] == "deid" for e in privacy["entries"])
    html = (result.run_dir / "report.html").read_text()
    assert "<h2>De-identification</h2>" in html and "top_code_90" in html


def test_evaluation_compares_with_the_deidentified_training_data(clinic_run):
    _, report = clinic_run
    evaluated = {c["name"] for c in report["columns"]}
    assert {"name", "email", "notes"}.isdisjoint(evaluated)
    assert report["meta"]["n_train"] == round(N * 0.7)


def test_unmarked_identifier_stops_the_run_by_default(clinic_files, tmp_path):
    with pytest.raises(DataError, match=r"1 column\(s\) look like identifiers .*'home_phone' "
                                        r"looks like phone .*pii: none"):
        run_pipeline(_config(clinic_files, tmp_path, deid={"reference_year": 2024}))
    assert not list(tmp_path.glob("run-*"))


def test_deid_can_be_turned_off_and_the_report_says_so(clinic_files, tmp_path):
    with pytest.raises(DataError, match="de-identification is off"):  # the scan still runs
        run_pipeline(_config(clinic_files, tmp_path, deid=False))
    cfg = _config(clinic_files, tmp_path, deid=False)
    cfg["data"]["drop"] = ["home_phone"]
    result = run_pipeline(cfg)
    report = json.loads((result.run_dir / "report.json").read_text())
    section = report["sections"]["deidentification"]
    assert section["enabled"] is False
    assert {"name", "email", "zip", "dob", "age", "notes"} <= set(section["identifiers_left"])
    assert "deid.enabled: false" in (result.run_dir / "report.html").read_text()


def test_date_shift_needs_a_patient_column(clinic_files, tmp_path):
    with pytest.raises(ConfigError, match="deid.patient_column"):
        PipelineConfig.from_dict(_config(clinic_files, tmp_path, deid={"dates": "shift"}))
    with pytest.raises(ConfigError, match="deid.types"):
        PipelineConfig.from_dict(_config(clinic_files, tmp_path, deid={"types": {"zip": "zipcode"}}))
