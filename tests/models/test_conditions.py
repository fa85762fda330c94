"""Conditions: equality on discrete columns, numeric ranges, checked against the schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.models.conditions import RangeCondition, split_conditions

SCHEMA = sd.Schema.from_dict({"name": "t", "columns": [
    {"name": "age", "kind": "integer", "min": 40, "max": 100},
    {"name": "kappa", "kind": "continuous"},
    {"name": "sex", "kind": "categorical", "categories": ["F", "M"]},
    {"name": "death", "kind": "categorical", "categories": [0, 1]},
    {"name": "note", "kind": "text"}]})


def test_split_conditions_separates_values_and_ranges():
    equal, ranges = split_conditions(SCHEMA, {"death": 1, "age": {"min": 60},
                                              "kappa": {"min": 0.5, "max": 2}})
    assert equal == {"death": 1}
    assert ranges == [RangeCondition("age", 60.0, None), RangeCondition("kappa", 0.5, 2.0)]
    assert split_conditions(SCHEMA, None) == ({}, [])
    assert split_conditions(SCHEMA, {"death": "1"})[0] == {"death": "1"}  # CLI text matches


@pytest.mark.parametrize("conditions, message", [
    ({"nope": 1}, r"condition on unknown column 'nope'; columns are \['age', 'kappa'"),
    ({"age": 60}, r"condition age=60: column 'age' is integer; a value condition takes only "
                  r"discrete \(categorical or boolean\) columns; for numbers give a range "
                  r"such as \{'age': \{'min': ..., 'max': ...\}\}"),
    ({"note": "x"}, r"column 'note' is text"),
    ({"sex": {"min": 1}}, r"range condition on column 'sex' \(categorical\): ranges work on "
                          r"continuous and integer columns"),
    ({"age": {"low": 1}}, r"range condition on 'age' has key\(s\) \['low'\]; give 'min', "
                          r"'max' or both"),
    ({"age": {}}, r"has key\(s\) \(none\)"),
    ({"age": {"min": None}}, r"gives neither 'min' nor 'max'"),
    ({"age": {"min": 70, "max": 60}}, r"range condition on 'age' has min 70 > max 60"),
    ({"age": {"min": "sixty"}}, r"age.min must be a finite number, got 'sixty'"),
    ({"age": {"max": float("nan")}}, r"age.max must be a finite number"),
    ({"age": {"min": True}}, r"age.min must be a finite number, got True"),
    ({"age": {"min": 120}}, r"age >= 120 lies outside the bounds of 'age' in the schema "
                            r"\[40, 100\]"),
    ({"sex": "X"}, r"condition sex='X': value not seen in training \(not a category of "
                   r"'sex'\); categories are \['F', 'M'\]"),
    (["age"], r"conditions must be a mapping"),
])
def test_bad_conditions_name_the_column_and_the_way_out(conditions, message):
    with pytest.raises(ConfigError, match=message):
        split_conditions(SCHEMA, conditions)


@given(values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), max_size=50),
       low=st.one_of(st.none(), st.floats(-1e6, 1e6)), high=st.one_of(st.none(),
                                                                      st.floats(-1e6, 1e6)))
@settings(max_examples=200, deadline=None)
def test_range_mask_is_inclusive_and_drops_missing(values, low, high):
    cond = RangeCondition("x", low, high)
    mask = cond.mask(pd.DataFrame({"x": values}))
    expected = [not np.isnan(v) and (low is None or v >= low) and (high is None or v <= high)
                for v in values]
    assert mask.tolist() == expected


@pytest.fixture(scope="module")
def fitted(flchain_small):
    schema = sd.Schema.infer(flchain_small)
    return sd.make_generator("gmm", schema, n_components=3, max_iter=30, seed=0).fit(flchain_small)


def test_sample_meets_ranges_and_values(fitted):
    out = fitted.sample(300, conditions={"age": {"min": 60, "max": 70}}, seed=1)
    assert len(out) == 300 and out["age"].between(60, 70).all()
    assert out["age"].nunique() > 3  # the range is filled, not one value repeated
    both = fitted.sample(200, conditions={"age": {"min": 75}, "sex": "F"}, seed=2)
    assert len(both) == 200 and (both["age"] >= 75).all() and (both["sex"] == "F").all()
    old = fitted.sample(500, conditions={"age": {"min": 75}}, seed=3)
    young = fitted.sample(500, conditions={"age": {"max": 55}}, seed=3)
    assert old["death"].mean() > young["death"].mean()  # correlated columns follow
    assert list(out.columns) == list(fitted.schema.names)
    pd.testing.assert_frame_equal(fitted.sample(50, conditions={"age": {"min": 60}}, seed=4),
                                  fitted.sample(50, conditions={"age": {"min": 60}}, seed=4))


def test_a_range_the_model_never_produces_fails_with_its_rate(fitted):
    assert fitted.schema["age"].max == 97  # flchain_small
    low = 95.25  # inside the bounds, but no integer age there
    with pytest.raises(ConfigError, match=r"conditions: only 0 of \d+ sampled rows "
                                          r"\(0.000%\) satisfy 95.25 <= age <= 95.5, 50 were asked for; "
                                          r"the model rarely produces such rows: widen the range"):
        fitted.sample(50, conditions={"age": {"min": low, "max": 95.5}})


def test_unknown_condition_column_on_a_fitted_model(fitted):
    with pytest.raises(ConfigError, match="condition on unknown column 'nope'"):
        fitted.sample(5, conditions={"nope": {"min": 1}})
