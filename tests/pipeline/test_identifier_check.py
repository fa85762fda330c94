"""Every run scans for identifiers before fitting: unmarked ones stop it (exit 2) by default,
`deid.unmarked: transform` de-identifies them, and no real identifier reaches any output file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

import synthdata
from synthdata.cli import main
from synthdata.errors import DataError
from synthdata.io.files import read_table
from synthdata.pipeline.runner import run_pipeline
from tests.medical.identifier_table import EXPECTED, identifier_table

IDENTIFYING = ("full_name", "contact", "tel", "ssn", "nhs_no", "iban", "card", "mrn", "ref",
               "dob", "homepage", "ip", "note")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return identifier_table()


@pytest.fixture(scope="module")
def csv(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ids") / "patients.csv"
    table.to_csv(path, index=False)
    return path


def _config(csv: Path, out: Path, **extra: object) -> dict:
    return {"name": "ids", "data": {"path": str(csv)},
            "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 20}},
            "evaluate": {"full": False}, "output": {"dir": str(out)},
            "gate": {"exact_copy_excess": {"max": 0.005}},  # the fast evaluation computes it
            **extra}


def _leaks(table: pd.DataFrame, folder: Path) -> dict[str, list[str]]:
    """Input identifier values found verbatim in any file under ``folder``."""
    text = "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    found: dict[str, list[str]] = {}
    for column in IDENTIFYING + ("first_name", "surname"):
        for value in table[column].astype(str).unique():
            pattern = rf"(?<![\w.@-]){re.escape(value)}(?![\w@-])"
            if column in ("first_name", "surname"):   # a single word: only as a table cell
                pattern = rf"(^|,){re.escape(value)}(,|$)"
            if value in text and re.search(pattern, text, flags=re.MULTILINE):
                found.setdefault(column, []).append(value)
    return found


def test_csv_reader_keeps_leading_zeros(csv, table):
    df = read_table(csv)
    assert df["zip"].tolist() == table["zip"].tolist()
    assert df["mrn"].tolist() == table["mrn"].tolist()
    assert df["zip"].str.startswith("0").sum() >= 20
    assert pd.api.types.is_integer_dtype(df["stage"])      # quantities stay numbers


def test_default_run_stops_before_fitting_and_names_every_column(csv, tmp_path, capsys,
                                                                  monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("a generator was built although identifiers are unmarked")

    monkeypatch.setattr(synthdata, "make_generator", no_fit)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump(_config(csv, tmp_path / "out")))
    code = main(["run", str(pipeline)])
    err = capsys.readouterr().err
    assert code == 2
    flat = " ".join(err.split())
    assert f"{csv}: 17 column(s) look like identifiers" in flat
    for column, kind in EXPECTED.items():  # free text (inferred kind text) is dropped anyway
        assert (f"'{column}' looks like {kind}" in flat) == (column != "note"), column
    assert "pii: none" in flat and "deid.unmarked: transform" in flat
    assert "Traceback" not in err
    assert not list((tmp_path / "out").glob("run-*"))      # nothing half-written


def test_python_api_raises_a_data_error(csv, tmp_path):
    with pytest.raises(DataError, match=r"'ssn' looks like ssn .*valid US social security"):
        run_pipeline(_config(csv, tmp_path))


def test_pii_none_and_marks_clear_the_check(csv, tmp_path):
    marks = {c: ("direct" if c in IDENTIFYING + ("first_name", "surname") else "quasi")
             for c in EXPECTED}
    marks["ref"] = "none"      # reviewed: kept (an id: regenerated, never learned)
    schema = {"name": "patients", "columns": [{"name": c, "pii": p} for c, p in marks.items()]}
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    cfg = _config(csv, tmp_path / "out")
    cfg["data"]["schema"] = str(path)
    result = run_pipeline(cfg)
    report = json.loads((result.run_dir / "report.json").read_text())
    scan = {r["column"]: r["decision"] for r in report["sections"]["deidentification"]
            ["identifier_scan"]}
    assert scan["ref"] == "kept (pii: none)" and scan["ssn"] == "marked pii: direct"


@pytest.fixture(scope="module")
def transformed(csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    # rare_categories off: this checks the Safe Harbor transforms themselves (every ZIP3 of
    # this small table is rarer than k = 10 and would be merged into "other")
    result = run_pipeline(_config(csv, out, deid={"unmarked": "transform",
                                                  "rare_categories": False}))
    return result


def test_transform_runs_and_no_identifier_reaches_any_output(transformed, table):
    result = transformed
    assert result.passed and result.synthetic_path is not None
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"synthetic.csv", "report.json", "report.html", "schema.yaml", "manifest.json"} <= names
    assert _leaks(table, result.run_dir) == {}
    synth = pd.read_csv(result.synthetic_path, dtype=str)
    assert set(IDENTIFYING) & set(synth.columns) == {"dob"}
    assert synth["dob"].dropna().str.fullmatch(r"19\d\d|200\d").all()   # birth years only
    assert synth["zip"].dropna().str.fullmatch(r"\d{3}").all()       # text, 3 digits
    assert synth["zip"].dropna().str.startswith("0").any()           # leading zeros kept
    assert pd.to_numeric(synth["age"]).max() <= 90
    assert pd.to_numeric(synth["admitted"]).between(2017, 2019).all()  # years only


def test_transform_report_lists_what_was_done(transformed):
    report = json.loads((transformed.run_dir / "report.json").read_text())
    section = report["sections"]["deidentification"]
    rules = {a["column"]: (a["rule"], a["source"]) for a in section["actions"]}
    assert rules["zip"] == ("zip3", "detected") and rules["age"] == ("top_code_90", "detected")
    assert rules["dob"][0] == "birth_year" and rules["full_name"][0] == "drop"
    dob = next(a for a in section["actions"] if a["column"] == "dob")
    assert "over 89 in 2019" in dob["note"] and dob["note"].startswith("found by the identifier")
    decisions = {r["column"]: r["decision"] for r in section["identifier_scan"]}
    assert decisions.pop("note") == "schema kind text"       # text is dropped in any case
    assert all(d == "transformed (deid.unmarked: transform)" for d in decisions.values())
    html = (transformed.run_dir / "report.html").read_text()
    assert "Identifier scan" in html and "deid.unmarked: transform" in html


def test_cli_fit_applies_the_same_check_and_deid(csv, tmp_path, capsys, table):
    model = tmp_path / "m.sdm"
    code = main(["fit", str(csv), "-o", str(model), "-p", "n_components=2", "-p", "max_iter=20",
                 "--quiet"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "'full_name' looks like name" in err and not model.exists()
    code = main(["fit", str(csv), "-o", str(model), "-p", "n_components=2", "-p", "max_iter=20",
                 "--unmarked", "transform", "--quiet"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "sample"
    out.mkdir()
    assert main(["sample", str(model), "-n", "200", "-o", str(out / "s.csv")]) == 0
    capsys.readouterr()
    assert _leaks(table, out) == {}
    synth = pd.read_csv(out / "s.csv", dtype=str)
    assert set(IDENTIFYING) & set(synth.columns) == {"dob"}
    assert synth["zip"].dropna().str.fullmatch(r"\d{3}").all()


def test_under_dp_transform_by_detection_is_refused(csv, tmp_path):
    """What the scan finds is a property of the private data: under DP it may stop a run but
    not decide which columns are transformed in the release."""
    import yaml

    from synthdata.errors import PrivacyBudgetError
    from synthdata.io.files import read_table
    from synthdata.schema.model import Schema

    # a complete declaration (a DP run infers nothing), with no identifier marked
    df = read_table(csv)
    columns = []
    for col in Schema.infer(df).columns:
        entry = {"name": col.name, "kind": col.kind.value,
                 "nullable": bool(df[col.name].isna().any())}
        if col.kind.value == "continuous":
            entry["precision"] = None
        if col.kind.value == "datetime":
            entry["datetime_format"] = col.datetime_format
        columns.append(entry)
    declared = tmp_path / "declared.yaml"
    declared.write_text(yaml.safe_dump({"version": 1, "name": "patients", "columns": columns}))
    cfg = _config(csv, tmp_path, deid={"unmarked": "transform"}, privacy={"epsilon": 3.0})
    cfg["data"]["schema"] = str(declared)
    with pytest.raises(PrivacyBudgetError, match=r"deid.scan.*mark them in the schema"):
        run_pipeline(cfg)
    assert not list(tmp_path.glob("run-*"))


def test_linked_tables_name_the_table_and_column():
    from dataclasses import replace

    from synthdata.pipeline.config import DeidConfig
    from synthdata.pipeline.deid import deid_tables
    from synthdata.relational.schema import MultiTableSchema
    from tests.conftest import DATA, ROOT

    ms = MultiTableSchema.load(ROOT / "schemas" / "pbc.yaml")
    tables = {t: pd.read_csv(DATA / f"{t}.csv") for t in ("pbc", "pbcseq")}
    _, _, section = deid_tables(tables, ms, DeidConfig(), seed=0)    # the shipped marks pass
    assert {(r["table"], r["column"], r["decision"]) for r in section["identifier_scan"]} == {
        ("pbc", "id", "kept (pii: none)")}
    pbc = ms.tables["pbc"]
    unmarked = pbc.replace_columns([replace(c, pii=None) if c.name in ("id", "age") else c
                                    for c in pbc.columns])
    tables["pbc"] = tables["pbc"].assign(age=tables["pbc"]["age"].where(
        tables["pbc"].index > 3, 93.0))
    ms = replace(ms, tables={**ms.tables, "pbc": unmarked})
    with pytest.raises(DataError, match=r"table 'pbc': 2 column\(s\).*'pbc.id' looks like "
                                        r"other_id.*'pbc.age' looks like age"):
        deid_tables(tables, ms, DeidConfig(), seed=0)
