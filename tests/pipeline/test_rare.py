"""Rare categories are merged (or suppressed) before fitting, never under DP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import ConfigError
from synthdata.pipeline.config import PipelineConfig, RareCategoriesConfig
from synthdata.pipeline.rare import merge_rare_categories
from synthdata.schema import Schema


@pytest.fixture()
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    names = [f"name{i}" for i in range(5)]  # 5 rare values, 2 rows each
    city = ["A"] * 120 + ["B"] * 70 + names[:5] * 2
    code = [1] * 100 + [2] * 97 + [3] * 3  # numeric codes: 3 is rare
    return pd.DataFrame({"city": city, "code": code, "x": rng.normal(size=n)})


def _schema(df: pd.DataFrame) -> Schema:
    return Schema.infer(df).with_overrides({"columns": [{"name": "code", "kind": "categorical"}]})


def test_merge_replaces_rare_values_and_reports_counts_only(frame) -> None:
    schema = _schema(frame)
    out, new_schema, section = merge_rare_categories(frame, schema, RareCategoriesConfig())
    assert set(out["city"]) == {"A", "B", "other"} and (out["city"] == "other").sum() == 10
    assert set(out["code"]) == {"1", "2", "other"}  # numeric codes become text labels
    new_schema.validate(out, where="test")
    by = {c["column"]: c for c in section["columns"]}
    assert by["city"] == {"column": "city", "n_categories": 7, "n_merged": 5,
                          "n_rows_changed": 10, "into": "other"}
    assert by["code"]["n_merged"] == 1 and section["n_categories_merged"] == 6
    assert "name0" not in str(section)  # never the values
    assert frame["city"].str.startswith("name").sum() == 10  # input untouched


def test_suppress_keep_and_dp(frame) -> None:
    schema = _schema(frame)
    out, new_schema, _ = merge_rare_categories(
        frame, schema, RareCategoriesConfig(action="suppress", columns=("city",)))
    assert out["city"].isna().sum() == 10 and new_schema["city"].nullable
    assert out["code"].tolist() == frame["code"].tolist()
    same, _, section = merge_rare_categories(frame, schema, RareCategoriesConfig(action="keep"))
    assert same is frame and not section["enabled"]
    same, _, section = merge_rare_categories(frame, schema, RareCategoriesConfig(), private=True)
    assert same is frame and "differential privacy" in section["note"]


def test_config_shorthands_and_errors(tmp_path) -> None:
    base = {"data": {"path": str(tmp_path / "x.csv")}}
    assert PipelineConfig.from_dict(base).deid.rare_categories.k == 10
    off = PipelineConfig.from_dict({**base, "deid": {"rare_categories": False}})
    assert off.deid.rare_categories.action == "keep"
    with pytest.raises(ConfigError, match="deid.rare_categories.k"):
        PipelineConfig.from_dict({**base, "deid": {"rare_categories": {"k": 1}}})
    with pytest.raises(ConfigError, match="deid.rare_categories.action"):
        PipelineConfig.from_dict({**base, "deid": {"rare_categories": {"action": "drop"}}})
