"""Constraint kinds in the schema: Python API, YAML round trip, clear errors."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import DataError, SchemaError


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "admit": pd.date_range("2020-01-01", periods=40, freq="D").strftime("%Y-%m-%d"),
        "discharge": pd.date_range("2020-01-03", periods=40, freq="D").strftime("%Y-%m-%d"),
        "a": [i % 15 for i in range(40)], "b": [i % 15 + 5 for i in range(40)],
        "total": [2 * (i % 15) + 5 for i in range(40)],
        "state": ["NY", "CA"] * 20, "city": ["NYC", "LA"] * 20,
    })


RULES = (sd.Inequality(low="admit", high="discharge", strict=True), sd.Range("b", low="a", high=100),
         sd.Positive("a"), sd.Negative("a", strict=False), sd.FixedCombinations(["state", "city"]),
         sd.Derived("total", "sum", ["a", "b"]), sd.OneHot(["a", "b"]), sd.Unique(["a"]),
         sd.FixedCombinations(["state", "city"], combinations=[["NY", "NYC"], ["CA", "LA"]]),
         sd.Derived("city", "lookup", ["state"], table={"NY": "NYC", "CA": "LA"}))


def test_yaml_round_trip(frame: pd.DataFrame, tmp_path) -> None:
    schema = sd.Schema.infer(frame).with_constraints(*RULES)
    schema = dataclasses.replace(schema, proposed_constraints=(sd.Inequality("a", "b"),))
    path = schema.save(tmp_path / "s.yaml")
    text = path.read_text()
    assert "constraints:" in text and "proposed: true" in text
    back = sd.Schema.load(path)
    assert back.constraints == schema.constraints
    assert back.proposed_constraints == schema.proposed_constraints
    over = sd.Schema.infer(frame).with_overrides({"constraints": [
        {"kind": "inequality", "low": "a", "high": "b"},
        {"kind": "fixed_combinations", "columns": ["state", "city"], "proposed": True}]})
    assert over.constraints == (sd.Inequality("a", "b"),)
    assert over.proposed_constraints == (sd.FixedCombinations(["state", "city"]),)


@pytest.mark.parametrize("entry, message", [
    ({"kind": "inequality", "low": "a", "high": "nope"}, "'a <= nope' names column(s) ['nope']"),
    ({"kind": "inequality", "low": "a", "high": "state"}, "needs numbers"),
    ({"kind": "bogus"}, "choose one of"),
    ({"kind": "range", "column": "a", "low": "zzz"}, "neither a column"),
    ({"kind": "derived", "column": "total", "expression": "pow", "inputs": ["a"]}, "expression"),
    ({"kind": "inequality", "low": "a"}, "missing key(s) ['high']"),
])
def test_bad_rules_name_the_rule(frame: pd.DataFrame, entry: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        sd.Schema.infer(frame).with_overrides({"constraints": [entry]})


def test_training_data_breaking_a_rule_is_a_clear_error(frame: pd.DataFrame) -> None:
    schema = sd.Schema.infer(frame).with_constraints(sd.Inequality("b", "a"))
    with pytest.raises(DataError, match=r"breaks constraint 'b <= a' \(inequality\) in 40 of 40"):
        sd.make_generator("gmm", schema, seed=0).fit(frame)


def test_violations_are_vectorised_and_ignore_missing() -> None:
    df = pd.DataFrame({"a": [1.0, 5.0, None, 2.0], "b": [2.0, 3.0, 1.0, 2.0]})
    schema = sd.Schema.infer(df)
    assert sd.Inequality("a", "b").violations(df, schema).tolist() == [False, True, False, False]
    assert sd.Inequality("a", "b", strict=True).violations(df, schema).tolist() == [False, True, False, True]
    assert sd.Range("b", low=2, high=2.5).violations(df, schema).tolist() == [False, True, True, False]


def test_one_hot_reads_yes_no_and_true_false_text_flags() -> None:
    df = pd.DataFrame({"a": ["yes", "no", "No", "true", "yes", "maybe"],
                       "b": ["no", "YES", "no", "f", "y", "no"]})
    rule = sd.OneHot(["a", "b"])
    # rows 0, 1 and 3 have exactly one flag set; row 2 none, row 4 two; "maybe" is no flag
    assert rule.violations(df, sd.Schema.infer(df)).tolist() == [
        False, False, True, False, True, True]


def test_derived_difference_and_ratio_read_their_inputs_in_order(frame: pd.DataFrame) -> None:
    """``b - a`` and ``b / a`` (not ``a - b``): a wrong row is flagged, a zero divisor gives
    a missing ratio rather than an infinite one."""
    df = frame.assign(gap=frame["b"] - frame["a"], ratio=frame["b"] / frame["a"].replace(0, 1))
    schema = sd.Schema.infer(df)
    gap = sd.Derived("gap", "difference", ["b", "a"])
    assert gap.compute(df, schema).tolist() == [5.0] * 40
    broken = df.assign(gap=df["gap"].where(df.index != 3, -5))
    assert gap.violations(broken, schema).tolist() == [i == 3 for i in range(40)]
    ratio = sd.Derived("ratio", "ratio", ["b", "a"]).compute(df, schema)
    assert ratio.iloc[1] == 6.0 and pd.isna(ratio.iloc[0])   # a == 0 on row 0
