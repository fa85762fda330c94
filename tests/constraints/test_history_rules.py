"""Within-patient rule kinds: violations, repairs, YAML form, errors."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.constraints.kinds import (
    Conditional,
    EventConsistency,
    Monotone,
    TimeDerived,
    constraint_from_dict,
    constraint_to_dict,
)
from synthdata.errors import SchemaError
from synthdata.schema.model import Schema


@pytest.fixture
def visits():
    return pd.DataFrame({
        "pid": [1, 1, 1, 2, 2],
        "day": [0, 10, 5, 0, 400],
        "age": [50.0, 50.0274, 50.0137, 60.0, 61.5],
        "ever": [0, 0, 1, 1, 0],
        "death": [1, 0, 0, 0, 1],
        "dday": [10.0, np.nan, np.nan, np.nan, 300.0],
        "fu": [100, 100, 100, 500, 200],
        "insulin": [0, 1, 1, 1, 0],
    })


def test_monotone_finds_the_flag_that_switches_back_and_repairs_it(visits):
    schema = Schema.infer(visits)
    rule = Monotone("ever", by="pid", order="day")
    # patient 1 in time: day 0 -> 0, day 5 -> 1, day 10 -> 0 (back off); patient 2: 1 -> 0
    assert rule.violations(visits, schema).tolist() == [False, True, False, False, True]
    fixed, n = rule.repair(visits, schema)
    # each patient's values sorted along time: the flags drawn are kept (share unchanged)
    assert n == 4 and fixed["ever"].tolist() == [0, 1, 0, 0, 1]
    assert fixed["ever"].dtype == visits["ever"].dtype
    assert not rule.violations(fixed, schema).any()
    down = Monotone("ever", by="pid", order="day", direction="decreasing")
    assert down.violations(visits, schema).tolist() == [False, False, True, False, False]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 50), st.floats(-5, 5)),
                min_size=1, max_size=30))
def test_monotone_repair_always_leaves_no_violation(rows):
    df = pd.DataFrame(rows, columns=["pid", "day", "x"])
    schema = Schema.infer(df)
    rule = Monotone("x", by="pid", order="day")
    fixed, n = rule.repair(df, schema)
    assert not rule.violations(fixed, schema).any()
    assert n == int((fixed["x"] != df["x"]).sum()) >= int(rule.violations(df, schema).sum() > 0)
    assert rule.repair(fixed, schema)[1] == 0                       # idempotent
    # a permutation within each patient: every patient keeps the values drawn
    for pid in df["pid"].unique():
        assert sorted(fixed.loc[df["pid"] == pid, "x"]) == sorted(df.loc[df["pid"] == pid, "x"])


def test_time_derived_with_a_baseline_column_and_with_the_first_value(visits):
    schema = Schema.infer(visits.assign(base=[50.0, 50.0, 50.0, 60.0, 60.0]))
    df = visits.assign(base=[50.0, 50.0, 50.0, 60.0, 60.0])
    rule = TimeDerived("age", "day", baseline="base", tolerance=0.001)
    # 61.5 is 0.4 years off 60 + 400/365.25
    assert rule.violations(df, schema).tolist() == [False, False, False, False, True]
    fixed, n = rule.repair(df, schema)
    assert n == 1 and fixed["age"].iloc[4] == pytest.approx(60 + 400 / 365.25)
    first = TimeDerived("age", "day", by="pid", order="day", tolerance=0.001)
    assert first.violations(df, schema).tolist() == [False, False, False, False, True]
    assert "first age" in first.describe()
    loose = TimeDerived("age", "day", baseline="base", tolerance=0.5)
    assert not loose.violations(df, schema).any()


def test_event_consistency_flag_follows_the_times(visits):
    schema = Schema.infer(visits)
    rule = EventConsistency("death", "dday", end="fu")
    # row 0: died day 10 <= 100 (ok); row 4: flag 1 but day 300 > follow-up 200
    assert rule.violations(visits, schema).tolist() == [False, False, False, False, True]
    fixed, n = rule.repair(visits, schema)
    assert n == 1 and fixed["death"].tolist() == [1, 0, 0, 0, 0]
    no_end = EventConsistency("death", "dday")
    assert no_end.violations(visits, schema).tolist() == [False] * 5
    # a missing end says nothing
    gap = visits.assign(fu=[100, 100, 100, 500, np.nan])
    assert not rule.violations(gap, Schema.infer(gap)).any()


def test_conditional_parses_checks_and_repairs(visits):
    schema = Schema.infer(visits)
    rule, _ = constraint_from_dict({"kind": "conditional", "if": "ever == 0",
                                    "then": "insulin == 0"})
    assert rule.describe() == "if ever == 0 then insulin == 0"
    assert rule.violations(visits, schema).tolist() == [False, True, False, False, False]
    fixed, n = rule.repair(visits, schema)
    assert n == 1 and fixed["insulin"].tolist() == [0, 0, 1, 1, 0]
    ranged = Conditional("death == 1", "age <= 55")
    assert ranged.violations(visits, schema).tolist() == [False, False, False, False, True]
    assert ranged.repair(visits, schema)[0]["age"].iloc[4] == 55
    member = Conditional("pid in [2]", "fu not in [500]")
    assert member.violations(visits, schema).tolist() == [False, False, False, True, False]
    assert not member.can_repair


@pytest.mark.parametrize("entry, message", [
    ({"kind": "conditional", "if": "ever=1", "then": "insulin == 0"}, "is not a condition"),
    ({"kind": "conditional", "if": "ever in 1", "then": "insulin == 0"}, "non-empty list"),
    ({"kind": "conditional", "if": "ever is null 3", "then": "insulin == 0"}, "takes no value"),
    ({"kind": "conditional", "if": "ever == 1", "then": "insulin != 0",
      "on_real_violation": "repair"}, "repair is not available"),
    ({"kind": "monotone", "column": "ever", "on_real_violation": "fix"}, "drop"),
    ({"kind": "monotone", "column": "ever", "direction": "up"}, "increasing or decreasing"),
    ({"kind": "time_derived", "column": "age", "time": "day", "scale": 0}, "non-zero"),
    ({"kind": "time_derived", "column": "age", "time": "age"}, "from itself"),
    ({"kind": "event_consistency", "flag": "death"}, "missing key"),
])
def test_bad_rules_are_schema_errors_that_say_what_to_do(entry, message):
    with pytest.raises(SchemaError, match=message):
        constraint_from_dict(entry)


def test_rules_check_their_columns_against_the_schema(visits):
    schema = Schema.infer(visits)
    with pytest.raises(SchemaError, match=r"names column\(s\) \['nope'\]"):
        schema.with_constraints(Monotone("nope", by="pid", order="day"))
    with pytest.raises(SchemaError, match="needs 'by'"):
        Monotone("ever").violations(visits, schema)


@pytest.mark.parametrize("rule", [
    Monotone("ever", by="pid", order="day", on_real_violation="drop"),
    Monotone("age", direction="decreasing"),
    TimeDerived("age", "day", baseline="fu", baseline_time=3, scale=1.0, tolerance=0.5),
    EventConsistency("death", "dday", end="fu", event_values=(1, 2), strict=True),
    Conditional("ever == 1", "insulin in [0, 1]", on_real_violation="repair"),
    Conditional("dday is not null", "death == 1"),
])
def test_yaml_round_trip(rule):
    data = constraint_to_dict(rule)
    again, proposed = constraint_from_dict(data)
    assert again == rule and not proposed
    assert again.describe() == rule.describe()


def test_single_table_generator_recomputes_event_flags_and_conditionals():
    import synthdata as sd

    rng = np.random.default_rng(0)
    n = 400
    futime = rng.integers(100, 3000, n)
    death_day = np.where(rng.random(n) < 0.4, rng.integers(0, 3000, n), np.nan)
    died = (~np.isnan(death_day) & (death_day <= futime)).astype(int)
    df = pd.DataFrame({"futime": futime, "death_day": death_day, "death": died,
                       "stage": rng.integers(1, 5, n)})
    df["treated"] = np.where(df["stage"] >= 3, 1, rng.integers(0, 2, n))
    schema = Schema.infer(df).with_constraints(
        EventConsistency("death", "death_day", end="futime"),
        Conditional("stage >= 3", "treated == 1"))
    gen = sd.make_generator("gmm", schema, n_components=3, max_iter=20, seed=0).fit(df)
    out = gen.sample(500)
    for rule in schema.constraints:
        assert not rule.violations(out, schema).any(), rule.describe()
        assert rule.violations(df, schema).sum() == 0
    assert out["death"].isin([0, 1]).all() and 0 < out["death"].mean() < 1


def test_real_rows_breaking_a_rule_are_dropped_or_repaired_and_counted():
    from synthdata.constraints.enforce import apply_real_policy

    df = pd.DataFrame({"a": [1, 5, 2, 9], "b": [2, 3, 4, 1], "flag": [1, 0, 0, 1],
                       "t": [1.0, np.nan, 3.0, np.nan]})
    schema = Schema.infer(df).with_constraints(
        constraint_from_dict({"kind": "inequality", "low": "a", "high": "b",
                              "on_real_violation": "drop"})[0],
        EventConsistency("flag", "t", on_real_violation="repair"))
    out, report = apply_real_policy(df, schema, table="t1")
    assert report == [
        {"rule": "a <= b", "table": "t1", "policy": "drop", "rows": 2},
        {"rule": "flag in (1) <=> t known", "table": "t1", "policy": "repair", "rows": 1}]
    assert out["a"].tolist() == [1, 2] and out["flag"].tolist() == [1, 1]
    with pytest.raises(SchemaError, match="repair is not available"):
        constraint_from_dict({"kind": "inequality", "low": "a", "high": "b",
                              "on_real_violation": "repair"})


def test_time_derived_counts_days_of_a_text_datetime_column():
    """``visit`` holds dates as text in the schema's format: ages follow the days between
    visits (365.25 days a year) from each patient's first visit, whatever the row order."""
    from synthdata.constraints.kinds import group_order

    df = pd.DataFrame({
        "pid": [1, 1, 1, 2, 2],
        "visit": ["2020-01-01", "2021-01-01", "2020-07-01", "2019-03-01", "2019-03-11"],
        "age": [50.0, 50.0 + 366 / 365.25, 55.0, 60.0, 60.0 + 10 / 365.25],
    })
    schema = Schema.infer(df)
    assert schema["visit"].datetime_format == "%Y-%m-%d"
    rule = TimeDerived("age", "visit", by="pid", order="visit", tolerance=0.001)
    assert rule.expected(df, schema) == pytest.approx(
        [50.0, 50.0 + 366 / 365.25, 50.0 + 182 / 365.25, 60.0, 60.0 + 10 / 365.25])
    assert rule.violations(df, schema).tolist() == [False, False, True, False, False]
    fixed, n = rule.repair(df, schema)
    assert n == 1 and fixed["age"].iloc[2] == pytest.approx(50.0 + 182 / 365.25)
    assert fixed["visit"].tolist() == df["visit"].tolist()
    assert not rule.violations(fixed, schema).any()
    # group order: patients by first appearance, rows along visit time
    assert group_order(df, "pid", "visit", schema).tolist() == [0, 2, 1, 3, 4]


def test_group_order_without_a_time_keeps_each_patients_rows_in_table_order():
    from synthdata.constraints.kinds import group_order

    pid = np.random.default_rng(0).integers(0, 3, 500)
    df = pd.DataFrame({"pid": pid})
    order = group_order(df, "pid", None, Schema.infer(df))
    assert sorted(order.tolist()) == list(range(500))
    keys = pid[order]
    assert (np.diff(pd.factorize(keys)[0]) >= 0).all()   # one block per patient
    for k in range(3):
        assert (np.diff(order[keys == k]) > 0).all()   # table order within a patient


def test_history_rule_violations_are_boolean_masks(visits):
    """The enforcer combines masks with ``~`` and ``|``: each rule returns booleans."""
    schema = Schema.infer(visits)
    for rule in (Monotone("ever", by="pid", order="day"),
                 TimeDerived("age", "day", by="pid", order="day")):
        bad = rule.violations(visits, schema)
        assert bad.dtype == bool and len(bad) == len(visits)
        assert (~bad | bad).all()


def test_monotone_repairs_a_text_date_column_in_its_format():
    """A date that may not go back in time (last contact along visits), held as text: the
    repair sorts each patient's dates and writes them back in the schema's format."""
    df = pd.DataFrame({"pid": [1, 1, 1, 2, 2], "visit": [1, 2, 3, 1, 2],
                       "contact": ["2020-01-05", "2019-12-31", "2020-03-01",
                                   "2018-06-01", "2018-07-01"]})
    schema = Schema.infer(df)
    rule = Monotone("contact", by="pid", order="visit")
    assert rule.violations(df, schema).tolist() == [False, True, False, False, False]
    fixed, n = rule.repair(df, schema)
    assert n == 2
    assert fixed["contact"].tolist() == ["2019-12-31", "2020-01-05", "2020-03-01",
                                         "2018-06-01", "2018-07-01"]


def test_time_derived_repairs_a_text_date_column_in_its_format():
    """``visit = admit + day`` days (dates count in nanoseconds, so the scale turns days
    into nanoseconds): a visit off by a day is recomputed and written back as text in the
    schema's format."""
    from synthdata.constraints.kinds import NS_PER_DAY

    df = pd.DataFrame({"admit": ["2020-01-01", "2020-02-10", "2021-05-05"], "day": [3, 10, 0],
                       "visit": ["2020-01-04", "2020-02-21", "2021-05-05"]})
    schema = Schema.infer(df)
    assert schema["visit"].datetime_format == "%Y-%m-%d"
    rule = TimeDerived("visit", "day", baseline="admit", scale=1 / NS_PER_DAY)
    assert rule.violations(df, schema).tolist() == [False, True, False]
    fixed, n = rule.repair(df, schema)
    assert n == 1
    assert fixed["visit"].tolist() == ["2020-01-04", "2020-02-20", "2021-05-05"]
    assert not rule.violations(fixed, schema).any()


def test_event_consistency_against_a_fixed_end_date():
    """``end`` a date (YAML reads ``end: 2021-01-01`` as one) against a text date column:
    a death dated after the end of the study is no event."""
    import datetime

    df = pd.DataFrame({"death_date": ["2020-05-01", "2021-03-01", None, "2020-12-31"],
                       "died": [1, 1, 0, 0]})
    schema = Schema.infer(df)
    rule = EventConsistency("died", "death_date", end=datetime.date(2021, 1, 1))
    assert schema.with_constraints(rule).constraints == (rule,)
    assert rule.violations(df, schema).tolist() == [False, True, False, True]
    fixed, n = rule.repair(df, schema)
    assert n == 2 and fixed["died"].tolist() == [1, 0, 0, 1]


def test_conditional_repairs_to_missing_text_and_to_the_first_listed_value():
    df = pd.DataFrame({"status": [0, 0, 2, 3, 3], "cause": [None, "stroke", "cancer", "cancer", None],
                       "stage": [1, 3, 4, 2, 3], "treated": [0, 0, 1, 0, 2]})
    schema = Schema.infer(df)
    alive = Conditional("status == 0", "cause is null")
    assert alive.violations(df, schema).tolist() == [False, True, False, False, False]
    fixed, n = alive.repair(df, schema)
    assert n == 1 and fixed["cause"].isna().tolist() == [True, True, False, False, True]
    assert not alive.violations(fixed, schema).any()
    treated = Conditional("stage >= 3", "treated in [1, 2]")
    fixed, n = treated.repair(df, schema)
    assert n == 1 and fixed["treated"].tolist() == [0, 1, 1, 0, 2]
    assert fixed["treated"].dtype == df["treated"].dtype


def test_a_conditional_bound_must_be_a_number_or_date():
    df = pd.DataFrame({"stage": [1, 3, 4], "treated": [0, 1, 1]})
    with pytest.raises(SchemaError, match=r"'high' is not a number/date for >="):
        Schema.infer(df).with_constraints(Conditional("stage >= high", "treated == 1"))
