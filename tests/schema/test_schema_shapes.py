"""Malformed schema YAML shapes are SchemaErrors naming the file and what to fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthdata.errors import ConfigError, SchemaError
from synthdata.schema.model import Schema

DF = pd.DataFrame({"age": np.arange(30, 60, dtype=float), "sex": ["m", "f"] * 15,
                   "n": np.arange(30) % 4})

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                  st.text(max_size=6), st.sampled_from(["age", "sex", "n", "continuous",
                                                        "categorical", "integer", "direct"]))
_keys = st.sampled_from(["name", "kind", "nullable", "min", "max", "categories", "dtype",
                         "public", "pii", "precision", "datetime_format", "columns",
                         "primary_key", "version", "constraints", "bogus"])
_value = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)
_column = st.dictionaries(_keys, _value, max_size=5)
_schema = st.one_of(_value, st.fixed_dictionaries(
    {"columns": st.one_of(_value, st.lists(_column, max_size=3))},
    optional={"name": _value, "primary_key": _value, "version": _value,
              "constraints": _value}))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=_schema)
def test_any_yaml_shape_is_accepted_or_a_schema_error(raw):
    """Overrides and full schemas of any shape: a schema, or a SchemaError, nothing else."""
    from synthdata.schema.public import declared_schema

    base = Schema.infer(DF, name="t")
    for build in (lambda: base.with_overrides(raw, where="s.yaml"),
                  lambda: Schema.from_dict(raw, where="s.yaml"),
                  lambda: declared_schema(raw, list(DF.columns), name="t", where="s.yaml")):
        try:
            schema = build()
        except (SchemaError, ConfigError) as err:  # the DP path's declared schema: ConfigError
            assert "s.yaml" in str(err) or "data.schema" in str(err)
        else:
            assert isinstance(schema, Schema)


@pytest.mark.parametrize("text, expected", [
    ("- name: age\n  kind: continuous\n", "a mapping"),
    ("columns:\n  age: {kind: continuous}\n", "'columns' must be a list"),
    ("columns:\n  - [age, continuous]\n", "needs a 'name'"),
    ("columns:\n  - {name: [age]}\n", "name"),
    ("columns:\n  - {name: age, kind: 3}\n", "kind"),
    ("columns:\n  - {name: age, nullable: 'yes'}\n", "nullable must be true or false"),
    ("columns:\n  - {name: age, min: 5, max: 1}\n", "min 5 is above max 1"),
    ("columns:\n  - {name: age, colour: red}\n", "unknown key"),
    ("columns:\n  - {name: sex, categories: [[a]]}\n", "categories"),
    ("columns:\n  - {name: age, dtype: 5}\n", "dtype must be"),
    ("colums: []\n", "unknown top-level key"),
])
def test_malformed_overrides_name_the_file_and_the_fix(tmp_path, text, expected):
    from synthdata.pipeline.runner import run_pipeline

    data = tmp_path / "d.csv"
    DF.to_csv(data, index=False)
    (tmp_path / "s.yaml").write_text(text)
    cfg = {"data": {"path": str(data), "schema": str(tmp_path / "s.yaml")},
           "output": {"dir": str(tmp_path / "out")}, "gate": "none",
           "evaluate": {"full": False}}
    with pytest.raises(SchemaError) as info:
        run_pipeline(cfg)
    assert "s.yaml" in str(info.value) and expected in str(info.value)
    assert not list((tmp_path / "out").glob("*run-*"))


def test_schema_load_of_a_list_is_a_schema_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump([{"name": "age"}]))
    with pytest.raises(SchemaError, match="expected a mapping"):
        Schema.load(path)
