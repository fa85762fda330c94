"""Under DP the enforcer shapes outputs from the declared schema, never from the rows.

Without privacy, the decimals of a difference column, the datetime unit and nullability are
read off the training data (one extra row with more decimals changes every synthetic value
of the column); with ``private=True`` they come from ``precision``, ``datetime_format`` and
``nullable``, so neighbouring tables give the same plan.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.constraints.enforce import ConstraintEnforcer
from synthdata.schema.model import Schema

SCHEMA = Schema.from_dict({"name": "t", "columns": [
    {"name": "x", "kind": "continuous", "nullable": False, "precision": 2},
    {"name": "y", "kind": "continuous", "nullable": True, "precision": 2},
    {"name": "start", "kind": "datetime", "nullable": False,
     "datetime_format": "%Y-%m-%d %H:%M"},
    {"name": "end", "kind": "datetime", "nullable": False, "datetime_format": "%Y-%m-%d %H:%M"},
]}).with_constraints(sd.Inequality("x", "y"), sd.Inequality("start", "end"))


def _frame(values: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    x, gap, day, days = (np.array(c) for c in zip(*values))
    start = pd.Timestamp("2000-01-01") + pd.to_timedelta(day, unit="D")
    return pd.DataFrame({"x": x / 100, "y": (x + gap) / 100,
                         "start": start.strftime("%Y-%m-%d %H:%M"),
                         "end": (start + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d %H:%M")})


def _plan(df: pd.DataFrame, private: bool) -> list[dict]:
    return ConstraintEnforcer(SCHEMA).fit(df, private=private).inequalities_


ROWS = st.lists(st.tuples(st.integers(-10**5, 10**5), st.integers(0, 10**4),
                          st.integers(0, 5000), st.integers(0, 400)), min_size=5, max_size=30)


@settings(max_examples=25, deadline=None)
@given(ROWS)
def test_private_plan_is_the_same_on_neighbouring_tables(rows):
    df = _frame(rows)
    extra = pd.DataFrame({"x": [1.2345], "y": [9.87654], "start": ["2001-01-01 10:17"],
                          "end": ["2001-01-02 11:18"]})
    neighbour = pd.concat([df, extra], ignore_index=True)
    assert _plan(df, True) == _plan(neighbour, True)
    (xy, dates) = sorted(_plan(df, True), key=lambda p: p["low"])[::-1]
    assert xy["decimals"] == 2 and xy["nullable"] is True  # declared, not seen
    assert dates["unit"] == 60 * 10**9  # minutes, from the declared format


def test_without_privacy_the_rows_decide_and_one_row_changes_the_plan():
    df = _frame([(100, 5, 1, 2), (250, 10, 3, 4), (-40, 0, 9, 1)])
    neighbour = pd.concat([df, pd.DataFrame({"x": [1.2345], "y": [9.87654],
                                             "start": ["2001-01-01 10:17"],
                                             "end": ["2001-01-02 11:18"]})], ignore_index=True)
    before = {p["low"]: p for p in _plan(df, False)}
    after = {p["low"]: p for p in _plan(neighbour, False)}
    assert before["start"]["unit"] == 86_400 * 10**9 and after["start"]["unit"] == 60 * 10**9
    assert before["x"]["decimals"] == 2 and after["x"]["decimals"] != 2
