"""great-expectations suite built from the schema."""

from __future__ import annotations

import json
import sys

import pytest

from synthdata.errors import ConfigError
from synthdata.schema import Schema

pytest.importorskip("great_expectations")

from synthdata.validate import build_suite, save_suite, suite_to_json, validate_frame  # noqa: E402


@pytest.fixture(scope="module")
def frame(flchain_full):
    return flchain_full.sample(500, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(flchain_full) -> Schema:
    return Schema.infer(flchain_full)


def test_suite_covers_types_nulls_bounds_and_categories(schema: Schema) -> None:
    data = json.loads(suite_to_json(build_suite(schema)))
    kinds = {(e["type"], e["kwargs"].get("column")) for e in data["expectations"]}
    assert ("expect_column_values_to_be_between", "age") in kinds
    assert ("expect_column_values_to_be_in_set", "sex") in kinds
    assert ("expect_column_values_to_not_be_null", "age") in kinds
    assert ("expect_column_values_to_not_be_null", "creatinine") not in kinds  # nullable
    assert ("expect_column_values_to_be_in_type_list", "kappa") in kinds
    assert ("expect_table_columns_to_match_set", None) in kinds
    assert suite_to_json(build_suite(schema)) == suite_to_json(build_suite(schema))


def test_real_rows_pass_and_broken_rows_fail(frame, schema: Schema, tmp_path) -> None:
    ok = validate_frame(frame, schema)
    assert ok.passed, [r for r in ok.results if not r["success"]]
    bad = frame.copy()
    bad.loc[0, "age"] = 500
    bad.loc[1, "sex"] = "X"
    bad.loc[2, "kappa"] = None
    result = validate_frame(bad, schema)
    assert not result.passed
    failed = {(r["expectation"], r["column"]) for r in result.results if not r["success"]}
    assert failed == {("expect_column_values_to_be_between", "age"),
                      ("expect_column_values_to_be_in_set", "sex"),
                      ("expect_column_values_to_not_be_null", "kappa")}
    payload = result.to_dict()
    assert payload["n_failed"] == 3 and payload["passed"] is False
    path = result.save_suite(tmp_path / "suite.json")
    assert json.loads(path.read_text())["name"] == "synthdata-table"
    assert json.loads(save_suite(schema, tmp_path / "s2.json").read_text()) == \
        json.loads(path.read_text())


def test_unique_primary_key_is_checked(frame, schema: Schema) -> None:
    df = frame.assign(row_id=range(len(frame)))
    s = Schema.infer(df)
    assert s.primary_key == "row_id"
    assert validate_frame(df, s).passed
    dup = df.copy()
    dup.loc[1, "row_id"] = 0
    assert not validate_frame(dup, s).passed


def test_missing_extra_is_a_config_error(monkeypatch, schema: Schema) -> None:
    monkeypatch.setitem(sys.modules, "great_expectations", None)
    with pytest.raises(ConfigError, match="validate"):
        build_suite(schema)
