import numpy as np
import pandas as pd
import pytest

from synthdata.errors import DataError, SchemaError
from synthdata.schema import ColumnKind, PiiRole, Schema
from tests.conftest import SHARED, requires_shared


def test_flchain_kinds(flchain):
    s = Schema.infer(flchain)
    kinds = {c.name: c.kind for c in s}
    assert kinds["age"] == ColumnKind.INTEGER
    assert kinds["kappa"] == ColumnKind.CONTINUOUS
    assert kinds["sex"] == ColumnKind.CATEGORICAL
    assert kinds["death"] == ColumnKind.BOOLEAN
    assert kinds["flc.grp"] == ColumnKind.CATEGORICAL
    assert s["creatinine"].nullable and not s["age"].nullable
    assert s["age"].min == 50 and s["age"].max == 101
    assert set(s["sex"].categories) == {"F", "M"}


def test_ids_dates_text_and_edge_columns():
    n = 200
    df = pd.DataFrame({
        "patient_id": np.arange(1000, 1000 + n),
        "code": [f"X{i:05d}" for i in range(n)],
        "visit": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "note": [f"patient {i} reports mild pain after the procedure today" for i in range(n)],
        "empty": [None] * n,
        "const": [7] * n,
        "flag": ["yes", "no"] * (n // 2),
        "ünïcode": ["é", "ß"] * (n // 2),
    })
    s = Schema.infer(df)
    assert s["patient_id"].kind == ColumnKind.ID
    assert s["code"].kind == ColumnKind.ID
    assert s["visit"].kind == ColumnKind.DATETIME and s["visit"].datetime_format == "%Y-%m-%d"
    assert s["note"].kind == ColumnKind.TEXT
    assert s["empty"].nullable and s["empty"].categories == ()
    assert s["const"].kind == ColumnKind.CATEGORICAL and s["const"].categories == (7,)
    assert s["flag"].kind == ColumnKind.BOOLEAN
    assert s["ünïcode"].kind == ColumnKind.BOOLEAN or s["ünïcode"].kind == ColumnKind.CATEGORICAL
    assert s.primary_key == "patient_id"


def test_yaml_round_trip_and_overrides(flchain, tmp_path):
    s = Schema.infer(flchain, name="flchain")
    path = s.save(tmp_path / "s.yaml")
    assert Schema.load(path) == s.replace_columns(s.columns)  # notes are not persisted
    over = s.with_overrides({"columns": [{"name": "age", "pii": "quasi", "min": 40},
                                         {"name": "sample.yr", "kind": "integer"}]})
    assert over["age"].pii == PiiRole.QUASI and over["age"].min == 40
    assert over["sample.yr"].kind == ColumnKind.INTEGER and over["sample.yr"].categories is None


def test_override_of_missing_column_names_it(flchain):
    s = Schema.infer(flchain)
    with pytest.raises(SchemaError, match="'nope' is not in the data"):
        s.with_overrides({"columns": [{"name": "nope", "kind": "integer"}]})


def test_bad_kind_and_unknown_key():
    with pytest.raises(SchemaError, match="kind is 'number'"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "number"}]})
    with pytest.raises(SchemaError, match="unknown key"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "integer", "colour": 1}]})


def test_validate_reports_non_numeric_values():
    s = Schema.from_dict({"columns": [{"name": "age", "kind": "integer"}]})
    df = pd.DataFrame({"age": ["1", "2", "abc", "4"]})
    with pytest.raises(DataError, match=r"1 non-numeric value\(s\) \(first: 'abc', row 2\)"):
        s.validate(df)
    with pytest.raises(DataError, match="missing"):
        s.validate(pd.DataFrame({"other": [1]}))


def test_mixed_types_column_is_categorical():
    df = pd.DataFrame({"m": [1, "a", 2.5, "b"] * 10})
    s = Schema.infer(df)
    assert s["m"].kind == ColumnKind.CATEGORICAL
    assert len(s["m"].categories) == 4


@requires_shared()
@pytest.mark.parametrize("name", ["flchain", "rotterdam", "pbc", "nafld1", "telco_churn"])
def test_inference_agrees_with_manifest(name):
    import json

    manifest = json.loads((SHARED / "manifest.json").read_text())
    tables = {t: v for d in manifest["datasets"].values() for t, v in d["tables"].items()}
    df = pd.read_csv(SHARED / tables[name]["file"], low_memory=False)
    s = Schema.infer(df)
    for col, kind in tables[name]["columns"].items():
        got = s[col].kind
        if kind == "id":
            assert got == ColumnKind.ID, col
        elif kind == "boolean":
            assert got == ColumnKind.BOOLEAN, col
        elif kind in ("numeric-continuous",):
            assert got in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER, ColumnKind.CATEGORICAL), col
        else:
            assert got.is_learned, col
