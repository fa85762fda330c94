"""Key and link errors in linked-table runs: one line naming table/column, exit 2, no traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from synthdata.cli import main
from synthdata.errors import DataError, SchemaError
from synthdata.relational.schema import MultiTableSchema
from tests.medical.history_data import SCHEMA, cohort


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


def test_composite_foreign_key_is_refused_with_a_fix():
    data = copy.deepcopy(SCHEMA)
    data["tables"]["patients"]["primary_key"] = ["pid", "sex"]
    data["foreign_keys"][0].update(column=["pid", "day"], parent_column=["pid", "sex"])
    with pytest.raises(SchemaError, match="single-column key"):
        MultiTableSchema.from_dict(data)


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
