"""The declared schema of a DP run: built from the YAML alone, refusing what it lacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthdata.errors import ConfigError, SchemaError
from synthdata.schema.model import Column, ColumnKind, Schema
from synthdata.schema.public import (
    datetime_unit_ns,
    declared_dict,
    declared_schema,
    draft_declared_schema,
    recording_decimals,
)

DAY = 86_400 * 10**9
FULL = {"name": "t", "columns": [
    {"name": "age", "kind": "integer", "nullable": False, "min": 18, "max": 90, "public": True},
    {"name": "chol", "kind": "continuous", "nullable": True, "precision": 1},
    {"name": "sex", "kind": "categorical", "nullable": False},
    {"name": "visit", "kind": "datetime", "nullable": False, "datetime_format": "%Y-%m-%d"},
    {"name": "pid", "kind": "id"},
]}
COLUMNS = ["pid", "age", "chol", "sex", "visit"]
# the key each column needs, and the message that names it
NEEDED = {("age", "nullable"): "nullable", ("chol", "precision"): "precision",
          ("chol", "nullable"): "nullable", ("sex", "nullable"): "nullable",
          ("visit", "datetime_format"): "datetime_format",
          ("age", "public"): "public: true (for the declared min/max)"}


def _lacks(msg: str, column: str) -> str:
    """The fields the error says ``column`` lacks ('' when it names none)."""
    head = f"column {column!r} lacks "
    parts = [p for p in msg.split("; ") if head in p]
    return parts[0].split(head)[1].split(". Fix")[0] if parts else ""


def _without(pairs: list[tuple[str, str]]) -> dict:
    cols = []
    for col in FULL["columns"]:
        cols.append({k: v for k, v in col.items() if (col["name"], k) not in pairs})
    return {**FULL, "columns": cols}


def test_complete_declaration_gives_the_schema_in_data_order():
    schema = declared_schema(FULL, COLUMNS, name="t")
    assert schema.names == COLUMNS
    assert schema["chol"].precision == 1 and schema["chol"].nullable
    assert schema["age"].public and schema["age"].max == 90
    assert schema["age"].dtype == "int64"  # from the kind, never from the data
    assert Schema.from_dict(schema.to_dict()).to_dict() == schema.to_dict()


@given(st.sets(st.sampled_from(sorted(NEEDED)), min_size=1))
def test_every_missing_declaration_is_named_at_once(removed):
    with pytest.raises(ConfigError) as err:
        declared_schema(_without(list(removed)), COLUMNS, name="t", where="s.yaml")
    msg = str(err.value)
    assert msg.startswith("s.yaml: privacy is set")
    for (column, key), field in NEEDED.items():
        named = field in _lacks(msg, column).split(", ")
        assert named == ((column, key) in removed), (column, key, msg)


def test_undeclared_and_unknown_columns():
    with pytest.raises(ConfigError, match="column 'bmi' is not declared") as err:
        declared_schema(FULL, [*COLUMNS, "bmi"], name="t")
    assert "synthdata schema infer" in str(err.value)
    with pytest.raises(ConfigError, match=r"\['sex'\] are declared but not in the data"):
        declared_schema(FULL, ["pid", "age", "chol", "visit"], name="t")
    # a dropped column needs no declaration
    assert "sex" not in declared_schema(FULL, COLUMNS, name="t", drop=["sex"]).names
    with pytest.raises(ConfigError, match="data.schema: privacy is set"):
        declared_schema(None, COLUMNS, name="t")


def test_precision_is_checked():
    with pytest.raises(SchemaError, match="precision must be a whole number"):
        Column.from_dict({"name": "x", "kind": "continuous", "precision": -1})
    with pytest.raises(SchemaError, match="applies to continuous columns only"):
        Column.from_dict({"name": "x", "kind": "integer", "precision": 2})
    col = Column.from_dict({"name": "x", "kind": "continuous", "precision": 2})
    assert col.to_dict()["precision"] == 2 and col.kind == ColumnKind.CONTINUOUS


@pytest.mark.parametrize("fmt,unit", [("%Y-%m-%d", DAY), ("%Y-%m", DAY), (None, DAY),
                                      ("%Y-%m-%d %H:%M", 60 * 10**9),
                                      ("%Y-%m-%dT%H:%M:%S", 10**9), ("%d/%m/%Y %H", 3600 * 10**9)])
def test_datetime_unit_from_the_declared_format(fmt, unit):
    assert datetime_unit_ns(fmt) == unit


# -- the draft of a declared schema (synthdata schema infer --dp) ------------------------

def _draft_frame(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    lab = np.round(rng.gamma(2.0, 1.5, n), 2)
    lab[0] = 1.23456  # one stray value with more decimals must not decide the precision
    return pd.DataFrame({"lab": lab, "change": np.round(rng.normal(0, 1, n), 1),
                         "count": rng.integers(0, 500, n), "flag": rng.integers(0, 2, n),
                         "group": rng.choice(["a", "b", "c"], n)})


def test_draft_declares_precision_sign_and_boolean_values_only():
    draft = draft_declared_schema(_draft_frame(), name="t")
    col = {c.name: c for c in draft.columns}
    assert col["lab"].precision == 2 and col["change"].precision == 1
    assert (col["lab"].min, col["lab"].max, col["lab"].public) == (0, None, True)
    assert (col["count"].min, col["count"].max, col["count"].public) == (0, None, True)
    assert col["change"].min is None and col["change"].max is None and not col["change"].public
    assert col["flag"].categories == (0, 1) and col["flag"].public
    assert col["group"].categories is None and not col["group"].public


def test_draft_is_accepted_as_a_declared_schema_and_states_full_precision():
    df = _draft_frame()
    df["noise"] = np.random.default_rng(1).normal(size=len(df))  # full precision
    data = declared_dict(draft_declared_schema(df, name="t"))
    noise = next(e for e in data["columns"] if e["name"] == "noise")
    assert "precision" in noise and noise["precision"] is None
    schema = declared_schema(data, list(df.columns), name="t")
    assert [c.name for c in schema.columns] == list(df.columns)


@given(st.integers(0, 6), st.lists(st.floats(-1e4, 1e4), min_size=5, max_size=40))
def test_recording_decimals_finds_the_grid(decimals, values):
    rounded = np.round(np.asarray(values), decimals)
    found = recording_decimals(rounded)
    assert found is not None and found <= decimals
    assert np.allclose(np.round(rounded, found), rounded, atol=1e-9 * np.maximum(1, abs(rounded)))
