"""Every constraint kind, one at a time: detect, enforce (round trip), repair, discover.

For each kind a small table obeys the rule and a copy with one broken row does not:
``violations`` flags exactly the broken row; the enforcer's ``inverse(forward(df))`` gives
the table back; sampling from scrambled inner values (every relation between columns
destroyed) still yields rows with zero violations; discovery finds the planted rules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from synthdata.constraints import (
    Constraint,
    Derived,
    FixedCombinations,
    Inequality,
    Negative,
    OneHot,
    Positive,
    Range,
    Unique,
)
from synthdata.constraints.discover import discover
from synthdata.constraints.enforce import ConstraintEnforcer
from synthdata.schema.column import Column
from synthdata.schema.model import Schema
from synthdata.types import ColumnKind

N = 80
KINDS = {"a": "integer", "b": "integer", "total": "integer", "x": "continuous",
         "pos": "continuous", "neg": "continuous", "r": "continuous", "g": "categorical",
         "s": "categorical", "h0": "integer", "h1": "integer", "h2": "integer", "id": "integer",
         "code": "categorical", "label": "categorical"}
COMBOS = (("u", "u1"), ("u", "u2"), ("v", "v1"))


def _table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, N)
    b = a + rng.integers(0, 50, N)
    pick = rng.integers(0, len(COMBOS), N)
    hot = rng.integers(0, 3, N)
    code = rng.choice(["A", "B", "C", "D"], N)
    return pd.DataFrame({
        "a": a, "b": b, "total": a + b, "x": np.round(rng.normal(0, 5, N), 2),
        "pos": np.round(rng.uniform(0.5, 9, N), 2), "neg": np.round(-rng.uniform(0.5, 9, N), 2),
        "r": np.round(rng.uniform(10, 20, N), 2),
        "g": [COMBOS[i][0] for i in pick], "s": [COMBOS[i][1] for i in pick],
        "h0": (hot == 0).astype(np.int64), "h1": (hot == 1).astype(np.int64),
        "h2": (hot == 2).astype(np.int64), "id": rng.permutation(10 * N)[:N],
        "code": code, "label": pd.Series(code).map({"A": "alpha", "B": "beta", "C": "gamma",
                                                    "D": "delta"}).to_numpy(),
    })


def _schema(df: pd.DataFrame, *rules: Constraint) -> Schema:
    cols = tuple(Column(n, ColumnKind(k), dtype=str(df[n].dtype)) for n, k in KINDS.items())
    return Schema(columns=cols).with_constraints(*rules)


def _set(column: str, value: object, row: int = 0) -> Callable[[pd.DataFrame], None]:
    def edit(df: pd.DataFrame) -> None:
        df.loc[row, column] = value(df) if callable(value) else value
    return edit


def _set_all(columns: tuple[str, ...], value: object) -> Callable[[pd.DataFrame], None]:
    def edit(df: pd.DataFrame) -> None:
        df.loc[0, list(columns)] = value
    return edit


CASES: dict[str, tuple[Constraint, Callable[[pd.DataFrame], None], int]] = {
    # kind: (rule, how to break row 0 (or 1), the row that breaks)
    "inequality": (Inequality("a", "b"), _set("b", lambda d: d.loc[0, "a"] - 1), 0),
    "range": (Range("r", low=10, high=20), _set("r", 25.0), 0),
    "positive": (Positive("pos"), _set("pos", -1.0), 0),
    "negative": (Negative("neg"), _set("neg", 1.0), 0),
    "fixed_combinations": (FixedCombinations(["g", "s"], combinations=COMBOS),
                           _set("s", "v1", row=int(np.flatnonzero(_table()["g"] == "u")[0])),
                           int(np.flatnonzero(_table()["g"] == "u")[0])),
    "one_hot": (OneHot(["h0", "h1", "h2"]), _set_all(("h0", "h1", "h2"), 1), 0),
    "derived": (Derived("total", "sum", ["a", "b"]), _set("total", lambda d: d.loc[0, "total"] + 1),
                0),
    "unique": (Unique(["id"]), _set("id", lambda d: d.loc[0, "id"], row=1), 1),
}


def test_every_kind_has_a_case() -> None:
    kinds = {rule.kind for rule, _, _ in CASES.values()}
    assert kinds == {"inequality", "range", "positive", "negative", "fixed_combinations",
                     "one_hot", "derived", "unique"}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_violations_flag_exactly_the_broken_row(kind: str) -> None:
    rule, breaks, row = CASES[kind]
    df = _table()
    schema = _schema(df, rule)
    assert not rule.violations(df, schema).any()
    bad = df.copy()
    breaks(bad)
    mask = np.asarray(rule.violations(bad, schema))
    assert np.flatnonzero(mask).tolist() == [row], (kind, np.flatnonzero(mask))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_enforcer_round_trips_the_table(kind: str) -> None:
    rule, _, _ = CASES[kind]
    df = _table()
    schema = _schema(df, rule)
    enf = ConstraintEnforcer(schema).fit(df)
    back = enf.inverse(enf.forward(df))
    pd.testing.assert_frame_equal(back, df[schema.names], check_dtype=True)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_sampling_from_scrambled_inner_values_repairs_every_row(kind: str) -> None:
    rule, _, _ = CASES[kind]
    df = _table()
    schema = _schema(df, rule)
    enf = ConstraintEnforcer(schema).fit(df)
    inner = enf.forward(df)
    rng = np.random.default_rng(1)

    def draw(m: int, conditions: dict | None) -> pd.DataFrame:
        out = {}
        for name in inner.columns:  # each column drawn on its own: relations are gone
            values = inner[name].to_numpy()[rng.integers(0, len(inner), m)]
            if pd.api.types.is_float_dtype(inner[name]):
                values = values + rng.normal(0, 3 * (np.std(values) + 1), m)
            out[name] = values
        return pd.DataFrame(out)

    broken = draw(N, None)
    raw = enf.inverse(broken)
    assert len(raw) == N
    synth = enf.sample(draw, 40, rng)
    assert len(synth) == 40 and list(synth.columns) == schema.names
    assert sum(enf.violation_counts(synth).values()) == 0, enf.violation_counts(synth)


def test_discovery_finds_each_planted_rule() -> None:
    df = _table()
    schema = _schema(df)
    found = {(r.kind, r.describe()) for r in discover(df, schema)}
    kinds = {k for k, _ in found}
    assert {"inequality", "fixed_combinations", "derived"} <= kinds, found
    described = " | ".join(d for _, d in found)
    assert "a <= b" in described, found           # the inequality
    assert "total" in described, found            # the sum
    assert "label" in described, found            # the lookup code -> label


def test_discovery_proposes_nothing_on_unrelated_columns() -> None:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"p": rng.normal(0, 1, N), "q": rng.normal(0, 1, N),
                       "c": rng.choice(["x", "y"], N), "d": rng.choice(["k", "l"], N)})
    schema = Schema(columns=(Column("p", ColumnKind.CONTINUOUS, dtype="float64"),
                             Column("q", ColumnKind.CONTINUOUS, dtype="float64"),
                             Column("c", ColumnKind.CATEGORICAL, dtype="object"),
                             Column("d", ColumnKind.CATEGORICAL, dtype="object")))
    assert discover(df, schema) == []
