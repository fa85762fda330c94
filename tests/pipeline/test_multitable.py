"""Linked-table pipeline runs: one file per table, integrity, per-patient splits."""

import json

import pandas as pd

from synthdata.pipeline.runner import run_pipeline
from tests.conftest import DATA

ROOT = DATA.parent


def test_pbc_pipeline_writes_linked_tables(tmp_path):
    cfg = {
        "data": {"tables": {"pbc": str(DATA / "pbc.csv"), "pbcseq": str(DATA / "pbcseq.csv")},
                 "schema": str(ROOT / "schemas" / "pbc.yaml")},
        "generator": {"kind": "gmm", "params": {"n_components": 6, "max_iter": 40}},
        "evaluate": {"full": False},
        "output": {"dir": str(tmp_path)},
        "gate": {"exact_copies": {"max": 0}},
    }
    result = run_pipeline(cfg)
    assert result.passed
    pbc = pd.read_csv(result.run_dir / "pbc.csv")
    visits = pd.read_csv(result.run_dir / "pbcseq.csv")
    assert set(visits["id"]) <= set(pbc["id"])          # every visit has a synthetic patient
    assert result.metrics["referential_integrity"] == 1.0
    assert result.metrics["children_per_parent_tv[pbcseq.id -> pbc.id]"] <= 0.15
    assert (visits["day"] >= 0).all()
    assert result.metrics["constraint_violations"] == 0
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["sections"]["constraints"]["declared"] == [
        {"rule": "pbcseq: 0 <= day <= futime", "violations": 0}]
    assert {"report.json", "report.html", "manifest.json"} <= {p.name for p in result.run_dir.iterdir()}


def test_split_keeps_patients_together():
    from synthdata.medical.multitable import MultiTableSchema
    from synthdata.pipeline.multitable import split_by_root

    tables = {"pbc": pd.read_csv(DATA / "pbc.csv"), "pbcseq": pd.read_csv(DATA / "pbcseq.csv")}
    ms = MultiTableSchema.load(ROOT / "schemas" / "pbc.yaml")
    train, hold = split_by_root(tables, ms, 0.3, seed=0)
    assert not set(train["pbcseq"]["id"]) & set(hold["pbcseq"]["id"])
    assert set(hold["pbcseq"]["id"]) <= set(hold["pbc"]["id"])
    assert len(train["pbcseq"]) + len(hold["pbcseq"]) == len(tables["pbcseq"])


def test_pbc_pipeline_with_patient_level_privacy(tmp_path):
    cfg = {
        "data": {"tables": {"pbc": str(DATA / "pbc.csv"), "pbcseq": str(DATA / "pbcseq.csv")},
                 "schema": str(ROOT / "schemas" / "pbc.yaml")},
        "generator": {"kind": "gmm"},
        "privacy": {"epsilon": 3, "max_rows_per_unit": 8},
        "evaluate": {"full": False},
        "output": {"dir": str(tmp_path)},
        "gate": {"epsilon": {"max": 3}},
    }
    result = run_pipeline(cfg)
    assert result.passed and result.metrics["epsilon"] <= 3
    privacy = json.loads((result.run_dir / "report.json").read_text())["sections"]["privacy"]
    assert "at the level of one patient" in privacy["statement"]
    assert "Not private" in privacy["statement"]             # the evaluation, named as such
    steps = [e["step"] for e in privacy["entries"]]
    assert "pbcseq.cap" in steps and "model.relational.fit" not in steps
