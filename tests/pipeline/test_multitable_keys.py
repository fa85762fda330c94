"""Key and link errors in linked-table runs: one line naming table/column, exit 2, no traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from synthdata.cli import main
from synthdata.errors import DataError, SchemaError
from synthdata.relational.schema import MultiTableSchema
from tests.medical.history_data import SCHEMA, cohort
from tests.relational.test_keys import LABEL as SITES_LABEL
from tests.relational.test_keys import SITES, sites


def _write(tmp_path: Path, tables: dict[str, pd.DataFrame], schema: dict) -> Path:
    paths = {}
    for name, df in tables.items():
        paths[name] = str(tmp_path / f"{name}.csv")
        df.to_csv(paths[name], index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    cfg = {"data": {"tables": paths, "schema": str(tmp_path / "schema.yaml")},
           "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
           "evaluate": {"full": False}, "output": {"dir": str(tmp_path / "out")},
           "gate": "none"}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _expect(capsys, path: Path, *patterns: str) -> None:
    code = main(["run", str(path)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert "Traceback" not in err
    for pattern in patterns:
        assert pattern in err, err
    assert not (path.parent / "out").exists() or not list((path.parent / "out").rglob("*.csv"))


def test_missing_key_column(tmp_path, capsys):
    tables = cohort(40)
    tables["visits"] = tables["visits"].drop(columns=["pid"])
    _expect(capsys, _write(tmp_path, tables, SCHEMA), "table 'visits'", "['pid']", "missing")


def test_duplicate_keys(tmp_path, capsys):
    tables = cohort(40)
    tables["patients"].loc[1, "pid"] = tables["patients"].loc[0, "pid"]
    _expect(capsys, _write(tmp_path, tables, SCHEMA), "table 'patients'", "share a primary key")


def test_duplicate_composite_keys(tmp_path, capsys):
    tables = cohort(40)
    visits = tables["visits"]
    tables["visits"] = pd.concat([visits, visits.iloc[:1]], ignore_index=True)
    _expect(capsys, _write(tmp_path, tables, SCHEMA), "table 'visits'", "pid/day")


def test_dangling_foreign_key(tmp_path, capsys):
    tables = cohort(40)
    tables["visits"].loc[0, "pid"] = 999
    _expect(capsys, _write(tmp_path, tables, SCHEMA), "visits.pid -> patients.pid",
            "orphan row(s)", "999")


def test_composite_key_mismatch(tmp_path, capsys):
    data = copy.deepcopy(SCHEMA)
    data["foreign_keys"][0].update(column=["pid", "day"], parent_column=["pid"])
    _expect(capsys, _write(tmp_path, cohort(20), data), "composite key mismatch",
            "['pid', 'day']", "has 2 column(s)")


def test_a_composite_link_column_that_is_also_the_time_order_is_refused():
    data = copy.deepcopy(SCHEMA)
    data["tables"]["patients"]["primary_key"] = ["pid", "sex"]
    data["foreign_keys"][0].update(column=["pid", "day"], parent_column=["pid", "sex"])
    with pytest.raises(SchemaError, match=r"link column\(s\) \['day'\] cannot also be order_by"):
        MultiTableSchema.from_dict(data)


def test_a_run_with_a_composite_key_writes_the_declared_columns(tmp_path, capsys):
    path = _write(tmp_path, sites(60), SITES)
    code = main(["run", str(path)])
    assert code == 0, capsys.readouterr().err
    run = next((tmp_path / "out").iterdir())
    patients = pd.read_csv(run / "patients.csv")
    visits = pd.read_csv(run / "visits.csv")
    assert list(patients.columns) == ["site", "pno", "age"]
    assert list(visits.columns) == ["site", "pno", "day", "sbp"]
    assert not patients.duplicated(["site", "pno"]).any()
    assert visits.merge(patients, on=["site", "pno"], how="left")["age"].notna().all()
    saved = yaml.safe_load((run / "schema.yaml").read_text())
    assert saved["foreign_keys"][0]["column"] == ["site", "pno"]
    report = json.loads((run / "report.json").read_text())
    assert report["metrics"]["referential_integrity"] == 1.0
    assert f"children_per_parent_tv[{SITES_LABEL}]" in report["metrics"]


def _broken_sites(change):
    tables = {k: v.copy() for k, v in sites(30).items()}
    change(tables)
    return tables


@pytest.mark.parametrize("change, patterns", [
    (lambda t: t.__setitem__("visits", t["visits"].drop(columns=["site"])),
     [SITES_LABEL, "key column(s) ['site'] are missing in table 'visits'"]),
    (lambda t: t["patients"].__setitem__("pno", 1),
     ["table 'patients'", "share a primary key site/pno", "(first: ['north', 1])"]),
    (lambda t: t["visits"].loc.__setitem__((0, "pno"), 999),
     [SITES_LABEL, "orphan row(s) in 'visits'", "('north', 999)"]),
    (lambda t: t["visits"].__setitem__("site", t["visits"]["site"].map({"north": 1, "south": 2,
                                                                         "east": 3})),
     [SITES_LABEL, "type mismatch: visits.site holds numbers but patients.site holds text"]),
])
def test_composite_key_errors_exit_2(tmp_path, capsys, change, patterns):
    _expect(capsys, _write(tmp_path, _broken_sites(change), SITES), *patterns)


def test_composite_primary_key_and_single_name_lists():
    data = copy.deepcopy(SCHEMA)
    data["foreign_keys"][0].update(column=["pid"], parent_level="day")
    ms = MultiTableSchema.from_dict(data)
    assert ms.primary_keys["visits"] == ("pid", "day")
    assert ms.foreign_keys[0].column == "pid" and ms.foreign_keys[0].parent_level == ("day",)
    again = MultiTableSchema.from_dict(ms.to_dict())
    assert again.primary_keys == ms.primary_keys


def test_key_errors_are_data_errors_in_the_api():
    tables = cohort(30)
    tables["patients"] = tables["patients"].drop(columns=["pid"])
    with pytest.raises(DataError, match=r"table 'patients': key column\(s\) \['pid'\] are missing"):
        MultiTableSchema.from_dict(SCHEMA).check_keys(tables)


def test_a_composite_key_in_a_single_table_schema_says_what_to_do():
    from synthdata.schema.model import Schema

    with pytest.raises(SchemaError, match="composite; a single-table schema takes one key"):
        Schema.from_dict({"primary_key": ["a", "b"], "columns": [
            {"name": "a", "kind": "integer"}, {"name": "b", "kind": "integer"}]})


def test_a_key_written_as_text_in_the_child_is_a_type_mismatch(tmp_path, capsys):
    tables = cohort(30)
    tables["visits"]["pid"] = "p" + tables["visits"]["pid"].astype(str)
    _expect(capsys, _write(tmp_path, tables, SCHEMA), "visits.pid -> patients.pid",
            "type mismatch: visits.pid holds text but patients.pid holds numbers")


def test_a_composite_key_under_patient_level_privacy(tmp_path, capsys):
    schema = copy.deepcopy(SITES)
    schema["tables"]["patients"]["columns"][0].update(categories=["north", "south", "east"],
                                                      public=True)
    path = _write(tmp_path, sites(60), schema)
    cfg = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**cfg, "privacy": {"epsilon": 3.0}}))
    assert main(["run", str(path)]) == 0, capsys.readouterr().err
    run = next((tmp_path / "out").iterdir())
    patients, visits = pd.read_csv(run / "patients.csv"), pd.read_csv(run / "visits.csv")
    assert list(visits.columns) == ["site", "pno", "day", "sbp"]
    assert not patients.duplicated(["site", "pno"]).any()
    assert visits.merge(patients, on=["site", "pno"], how="left")["age"].notna().all()
    assert "_patients_key" not in (run / "schema.yaml").read_text()
