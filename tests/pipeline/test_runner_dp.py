"""The DP release path of the runner: nothing data-dependent leaves outside the ledger.

A DP run ships only its declared (public) schema, a manifest without exact counts or input
hash, and report sections that read real data marked as internal QA; its gate decides on
DP-safe rules only; its default synthetic size is the noisy count. Two runs on neighbouring
tables (one extra row with extreme values and more decimals) differ only in DP noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.pipeline import runner
from synthdata.pipeline.release import NOT_PRIVATE_LABEL
from synthdata.pipeline.runner import run_pipeline
from synthdata.schema.model import load_yaml
from synthdata.schema.public import declared_schema

ROOT = Path(__file__).resolve().parents[2]
DECLARED = ROOT / "schemas" / "flchain_dp.yaml"
DROP = ["chapter", "futime"]


@pytest.fixture(scope="module")
def fl(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(500, random_state=1).reset_index(drop=True)


def config(path: Path, out: Path, *, schema: Path | None = DECLARED, **extra: Any
           ) -> dict[str, Any]:
    data: dict[str, Any] = {"path": str(path), "drop": DROP}
    if schema is not None:
        data["schema"] = str(schema)
    return {"name": "dp", "data": data, "generator": {"kind": "gmm"},
            "privacy": {"epsilon": 3.0}, "evaluate": {"full": False, "target": "death"},
            "output": {"dir": str(out)},
            "gate": {"epsilon": {"max": 3.0}, "exact_copy_excess": {"max": 0.005},
                     "constraint_violations": {"max": 0}}} | extra


@pytest.fixture()
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the great-expectations suite (it reads only the synthetic table; ~6 s a run)."""
    monkeypatch.setattr(runner, "_validate", lambda *a, **k: (None, None))


def _artefacts(run_dir: Path) -> dict[str, Any]:
    return {"schema": (run_dir / "schema.yaml").read_text(),
            "manifest": json.loads((run_dir / "manifest.json").read_text()),
            "report": json.loads((run_dir / "report.json").read_text()),
            "synth": pd.read_csv(run_dir / "synthetic.csv"),
            "html": (run_dir / "report.html").read_text()}


def test_dp_run_validates_against_public_facts_only(tmp_path, fl):
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    cfg = config(path, tmp_path / "out")
    cfg["gate"]["validation"] = "pass"
    result = run_pipeline(cfg)
    assert result.passed, result.gate
    suite = (result.run_dir / "expectations.json").read_text()
    # only declared public bounds are in the suite (age 50..90 is declared; kappa's DP upper
    # bound or the data's maximum is not)
    assert '"max_value": 90' in suite
    assert str(fl["kappa"].max()) not in suite
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["metrics"]["epsilon"] <= 3.0


def test_shipped_schema_is_the_declared_schema(tmp_path, fl, no_validation):
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    result = run_pipeline(config(path, tmp_path / "out"))
    shipped = sd.Schema.load(result.run_dir / "schema.yaml")
    declared = declared_schema(load_yaml(DECLARED), [c for c in fl.columns if c not in DROP],
                               name="fl", drop=DROP)
    assert shipped.to_dict() | {"name": None} == declared.to_dict() | {"name": None}
    # an inferred schema would carry the data's bounds and no declared precision
    assert shipped["kappa"].precision == 3 and shipped["kappa"].max is None


def test_dp_run_without_declared_schema_names_every_column(tmp_path, fl):
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    with pytest.raises(ConfigError) as err:
        run_pipeline(config(path, tmp_path / "out", schema=None))
    msg = str(err.value)
    for column in ("age", "sex", "kappa", "lambda", "creatinine", "death"):
        assert f"column {column!r} is not declared" in msg
    assert "chapter" not in msg  # dropped columns need no declaration
    assert "synthdata schema infer" in msg and "outside the DP guarantee" in msg
    assert not list((tmp_path / "out").glob("run-*"))  # nothing half-written


def test_dp_run_with_partial_schema_lists_missing_fields(tmp_path, fl):
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    schema = load_yaml(DECLARED)
    for col in schema["columns"]:
        if col["name"] == "kappa":
            del col["precision"]
        if col["name"] == "age":
            del col["nullable"]
        if col["name"] == "sex":
            del col["public"]
    partial = tmp_path / "partial.yaml"
    import yaml

    partial.write_text(yaml.safe_dump(schema))
    with pytest.raises(ConfigError) as err:
        run_pipeline(config(path, tmp_path / "out", schema=partial))
    msg = str(err.value)
    assert "column 'kappa' lacks precision" in msg
    assert "column 'age' lacks nullable" in msg
    assert "column 'sex' lacks public: true (for the declared categories)" in msg


def _neighbour(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus one row with extreme values, more decimals and a 102-year-old."""
    row = df.iloc[[0]].copy()
    row["age"], row["kappa"], row["lambda"], row["creatinine"] = 102, 987.654321, 0.000123, 9.87
    return pd.concat([df, row], ignore_index=True)


def test_neighbouring_tables_change_nothing_but_dp_noise(tmp_path, fl, no_validation):
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    runs = [_artefacts(run_pipeline(config(path, tmp_path / "out"), data=d).run_dir)
            for i, d in enumerate((fl, _neighbour(fl)))]
    a, b = runs
    assert a["schema"] == b["schema"]  # the public schema, byte for byte

    def public_manifest(m: dict[str, Any]) -> dict[str, Any]:
        m = dict(m)
        for key in ("created", "rows", "privacy", "gate"):
            m.pop(key)
        return m
    assert public_manifest(a["manifest"]) == public_manifest(b["manifest"])
    for m in (a["manifest"], b["manifest"]):
        assert "sha256" not in json.dumps(m)
        assert "timings_s" not in m
        assert m["rows"]["synthetic"] == m["rows"]["training_units_noisy"]
        assert "report.json" in m["release"]["internal_qa_not_private"]
        assert "synthetic.csv" in m["release"]["covered_by_epsilon"]

    # the ledger: same steps, mechanisms and ρ before the model (δ from the noisy n is 1e-5
    # either way). The model's plan may differ between ANY two DP runs: whether a missing
    # slot is kept follows a noisy count (post-processing of a DP release), and the layout
    # sets DP-EM's split of ρ -- so its entries are only checked to be private.
    def ledger_shape(r: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(e["step"], e["mechanism"], e["private"], e["rho"])
                for e in r["sections"]["privacy"]["entries"] if not e["step"].startswith("model.")]
    assert ledger_shape(a["report"]) == ledger_shape(b["report"])
    for r in (a["report"], b["report"]):
        model = [e for e in r["sections"]["privacy"]["entries"] if e["step"].startswith("model.")]
        assert model and all(e["private"] and e["mechanism"] == "gaussian" for e in model)
    # every report part outside the DP-safe ones is marked not private
    for r in (a["report"], b["report"]):
        release = r["sections"]["release"]
        for name, section in r["sections"].items():
            if name not in release["dp_safe"]:
                assert section["privacy_label"] == NOT_PRIVATE_LABEL, name
        assert {"deidentification", "gate", "timings", "constraints"} <= set(release["not_private"])
    for art in (a, b):
        assert "Not private (internal QA, do not publish)" in art["html"]
    # outputs are shaped by declared facts only: precision and public bounds hold in both
    for synth in (a["synth"], b["synth"]):
        for column, decimals in (("kappa", 3), ("lambda", 3), ("creatinine", 1)):
            values = synth[column].dropna().to_numpy()
            assert np.allclose(values, np.round(values, decimals), rtol=0, atol=1e-9)
            assert values.min() >= 0
        assert synth["age"].between(50, 90).all()
        assert synth["sample.yr"].between(1995, 2003).all()
        assert set(synth["sex"]) <= {"F", "M"}


def test_default_synthetic_size_is_the_noisy_count(tmp_path, fl, no_validation, monkeypatch):
    from synthdata.privacy import count

    real = count._dp_count
    monkeypatch.setattr(count, "_dp_count", lambda n, rho, ledger, step: real(n, rho, ledger,
                                                                             step) * 0 + n + 7.4)
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    result = run_pipeline(config(path, tmp_path / "out", split={"holdout": 0.2, "seed": 0}))
    art = _artefacts(result.run_dir)
    n_train = 400
    assert len(art["synth"]) == n_train + 7 == art["manifest"]["rows"]["training_units_noisy"]
    entry = art["report"]["sections"]["privacy"]["entries"][0]
    assert entry["step"] == "data.count" and entry["params"]["released"] == n_train + 7
    assert entry["rho"] > 0


def test_dp_gate_decides_on_dp_safe_rules_only(tmp_path, fl, no_validation):
    path = tmp_path / "fl.csv"
    fl.to_csv(path, index=False)
    cfg = config(path, tmp_path / "out")
    cfg["gate"] = {"epsilon": {"max": 3.0}, "detection_auc": {"max": 0.0}}  # cannot hold
    result = run_pipeline(cfg)
    assert result.passed  # a real-data metric is advisory under DP
    advisory = {r["metric"]: r for r in result.gate}
    assert advisory["detection_auc"]["passed"] is False
    assert advisory["detection_auc"]["decides"] is False
    assert advisory["detection_auc"]["advisory"] == "advisory (not private)"
    cfg["gate"] = {"epsilon": {"max": 0.1}}  # a DP-safe rule decides
    assert not run_pipeline(cfg).passed


@pytest.mark.slow
def test_linked_tables_dp_manifest_has_no_exact_counts(tmp_path):
    from tests.conftest import DATA

    cfg = {"data": {"tables": {"pbc": str(DATA / "pbc.csv"), "pbcseq": str(DATA / "pbcseq.csv")},
                    "schema": str(ROOT / "schemas" / "pbc.yaml")},
           "generator": {"kind": "gmm"}, "privacy": {"epsilon": 3, "max_rows_per_unit": 8},
           "evaluate": {"full": False}, "output": {"dir": str(tmp_path)},
           "gate": {"epsilon": {"max": 3}}}
    result = run_pipeline(cfg)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert "sha256" not in json.dumps(manifest) and "timings_s" not in manifest
    noisy = manifest["rows"]["training_units_noisy"]
    assert manifest["rows"]["synthetic"] == noisy == len(pd.read_csv(result.run_dir / "pbc.csv"))
    assert '"train"' not in json.dumps(manifest["rows"])  # no exact count per table
    assert manifest["release"]["covered_by_epsilon"][:2] == ["pbc.csv", "pbcseq.csv"]
