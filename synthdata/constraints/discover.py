"""Discovery: propose constraints that hold on every row of a table.

What it looks for (each kind tests at most ``max_pairs`` column pairs, so a wide table
stays fast: 50k rows × 50 columns in a few seconds):

* ``Inequality`` between two number columns or two datetime columns;
* ``FixedCombinations`` between two low-cardinality discrete columns (some pairs of
  values never occur together);
* ``Derived`` lookups: a column whose value is fixed by another column's value (a code
  and its description);
* ``Derived`` sums: ``c = a + b`` for number columns.

A rule that holds by accident is not proposed: under independence of the columns (their
observed marginals), the rule would be broken on at least ``min_expected`` rows, so
seeing it never broken is evidence of structure (chance ≈ e^-min_expected). Inequalities
that the columns' ranges already imply (disjoint ranges) are skipped for the same reason.

Discovered rules are a property of the data: under differential privacy the pipeline
does not run discovery (see :func:`synthdata.pipeline.runner`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from synthdata.constraints.kinds import (
    Constraint,
    Derived,
    FixedCombinations,
    Inequality,
    column_values,
)
from synthdata.types import ColumnKind, to_native

if TYPE_CHECKING:  # type only: the schema module calls discover(), so no runtime import back
    from synthdata.schema.model import Schema

MAX_PAIRS = 1500          # column pairs tested per kind
MIN_EXPECTED = 10.0       # violations expected under independence before a rule counts
MAX_CATEGORIES = 20       # discrete columns with more values are not combined
MAX_LOOKUP_KEYS = 50      # a lookup's input has at most this many values...
MIN_KEY_SUPPORT = 5       # ...each seen on at least this many rows
PRESCREEN_ROWS = 512


def discover(df: pd.DataFrame, schema: Schema, *, max_pairs: int = MAX_PAIRS,
             min_expected: float = MIN_EXPECTED, seed: int = 0) -> list[Constraint]:
    """Rules that hold on 100% of the rows of ``df`` (see the module docstring)."""
    if len(df) < 2 * min_expected:
        return []
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(df), size=min(len(df), PRESCREEN_ROWS), replace=False))
    out: list[Constraint] = []
    out += _inequalities(df, schema, rows, max_pairs, min_expected)
    combos = _combinations(df, schema, max_pairs, min_expected)
    out += combos
    covered = {frozenset(c.columns) for c in combos}
    out += _lookups(df, schema, max_pairs, min_expected, covered)
    out += _sums(df, schema, rows, max_pairs, min_expected)
    return out


def _learned(schema: Schema, df: pd.DataFrame, kinds: tuple[ColumnKind, ...]) -> list[str]:
    return [c.name for c in schema.columns
            if c.kind in kinds and c.name in df.columns and df[c.name].nunique() > 1]


def _pairs(names: list[str], max_pairs: int) -> list[tuple[int, int]]:
    return list(itertools.islice(itertools.combinations(range(len(names)), 2), max_pairs))


# -- inequalities ------------------------------------------------------------------------
def _inequalities(df: pd.DataFrame, schema: Schema, rows: np.ndarray, max_pairs: int,
                  min_expected: float) -> list[Constraint]:
    out: list[Constraint] = []
    families = (_learned(schema, df, (ColumnKind.CONTINUOUS, ColumnKind.INTEGER)),
                _learned(schema, df, (ColumnKind.DATETIME,)))
    budget = max_pairs
    for names in families:
        if len(names) < 2 or budget <= 0:
            continue
        full = np.column_stack([_float(df, c, schema) for c in names])
        sample = full[rows]
        pairs = _pairs(names, budget)
        budget -= len(pairs)
        i_idx = np.array([p[0] for p in pairs])
        j_idx = np.array([p[1] for p in pairs])
        a, b = sample[:, i_idx], sample[:, j_idx]
        nan = np.isnan(a) | np.isnan(b)
        le = np.all((a <= b) | nan, axis=0)
        ge = np.all((a >= b) | nan, axis=0)
        for k in np.flatnonzero(le ^ ge):
            lo, hi = (i_idx[k], j_idx[k]) if le[k] else (j_idx[k], i_idx[k])
            x, y = full[:, lo], full[:, hi]
            ok = ~np.isnan(x) & ~np.isnan(y)
            x, y = x[ok], y[ok]
            if x.size == 0 or np.any(x > y) or np.all(x == y):
                continue
            # P(X > Y) for independent draws from the two marginals, times the rows
            expected = np.searchsorted(np.sort(y), x, side="left").sum() / x.size
            if expected >= min_expected:
                out.append(Inequality(names[lo], names[hi]))
    return out


def _float(df: pd.DataFrame, name: str, schema: Schema) -> np.ndarray:
    values, missing = column_values(df, name, schema)
    values = values.astype(float)
    values[missing] = np.nan
    return values


# -- fixed combinations ------------------------------------------------------------------
def _codes(series: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniq = pd.factorize(series, use_na_sentinel=False)
    return codes.astype(np.int64), len(uniq)


def _combinations(df: pd.DataFrame, schema: Schema, max_pairs: int,
                  min_expected: float) -> list[FixedCombinations]:
    """Pairs whose missing combinations are structural, not rare.

    A missing combination ``(u, v)`` counts when neither the line of ``u`` nor that of
    ``v`` holds a rare exception (a combination seen on 1-4 rows that is under 10% of both
    its row and its column: then rare combinations do happen there), and the missing ones together would
    hold at least ``min_expected`` rows under independence. Columns with a value seen
    once are skipped (unseen values are then likely, Good-Turing).
    """
    names = [c for c in _learned(schema, df, (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN))
             if df[c].nunique(dropna=False) <= MAX_CATEGORIES
             and df[c].value_counts(dropna=False).min() > 1]
    coded = [_codes(df[c]) for c in names]
    n = len(df)
    out: list[FixedCombinations] = []
    for i, j in _pairs(names, max_pairs):
        (ci, ki), (cj, kj) = coded[i], coded[j]
        counts = np.bincount(ci * kj + cj, minlength=ki * kj).reshape(ki, kj)
        zero = counts == 0
        if not zero.any():
            continue
        rows, cols = counts.sum(axis=1), counts.sum(axis=0)
        exception = (counts > 0) & (counts < MIN_KEY_SUPPORT) & \
            (counts < 0.1 * rows[:, None]) & (counts < 0.1 * cols[None, :])
        leaky_row, leaky_col = exception.any(axis=1), exception.any(axis=0)
        if (zero & (leaky_row[:, None] | leaky_col[None, :])).any():
            continue
        expected = np.outer(rows, cols) / n
        if expected[zero].sum() >= min_expected:
            out.append(FixedCombinations((names[i], names[j])))
    return out


# -- lookups ----------------------------------------------------------------------------
def _lookups(df: pd.DataFrame, schema: Schema, max_pairs: int, min_expected: float,
             covered: set[frozenset[str]]) -> list[Constraint]:
    learned = [c.name for c in schema.columns if c.kind.is_learned and c.name in df.columns
               and df[c.name].nunique() > 1]
    keys = [c for c in learned if df[c].nunique(dropna=False) <= MAX_LOOKUP_KEYS
            and df[c].value_counts(dropna=False).min() >= MIN_KEY_SUPPORT]
    coded = {c: _codes(df[c]) for c in learned}
    out: list[Constraint] = []
    tested = 0
    for key in keys:
        ck, kk = coded[key]
        support = np.bincount(ck, minlength=kk)
        for target in learned:
            if target == key or frozenset((key, target)) in covered:
                continue
            if tested >= max_pairs:
                return out
            tested += 1
            ct, kt = coded[target]
            if kt >= len(df) / MIN_KEY_SUPPORT:
                continue
            pairs = np.unique(ck * kt + ct)
            if pairs.size != kk:  # some key has more than one value
                continue
            share = np.bincount(ct, minlength=kt).max() / len(df)
            if (support * (1 - share)).sum() < min_expected:
                continue
            first = pd.DataFrame({"k": df[key], "v": df[target]}).drop_duplicates("k")
            table = tuple((to_native(k), to_native(v)) for k, v in zip(first["k"], first["v"]))
            out.append(Derived(target, "lookup", (key,), table=table))
    return out


# -- sums ---------------------------------------------------------------------------------
def _sums(df: pd.DataFrame, schema: Schema, rows: np.ndarray, max_pairs: int,
          min_expected: float) -> list[Constraint]:
    names = _learned(schema, df, (ColumnKind.CONTINUOUS, ColumnKind.INTEGER))
    if len(names) < 3:
        return []
    full = np.column_stack([_float(df, c, schema) for c in names])
    sample = full[rows]
    out: list[Constraint] = []
    for i, j in _pairs(names, max_pairs):
        s = sample[:, i] + sample[:, j]
        close = np.abs(sample - s[:, None]) <= 1e-9 * np.maximum(1.0, np.abs(s))[:, None]
        close |= np.isnan(sample) | np.isnan(s)[:, None]
        for k in np.flatnonzero(close.all(axis=0)):
            if k in (i, j):
                continue
            a, b, c = full[:, i], full[:, j], full[:, k]
            ok = ~np.isnan(a) & ~np.isnan(b) & ~np.isnan(c)
            total = a[ok] + b[ok]
            if not np.all(np.abs(c[ok] - total) <= 1e-9 * np.maximum(1.0, np.abs(total))):
                continue
            if min((c[ok] != a[ok]).sum(), (c[ok] != b[ok]).sum()) < min_expected:
                continue  # one addend is (nearly) always zero: not a real sum
            decimals = _decimals(c[ok]) if schema[names[k]].kind == ColumnKind.CONTINUOUS else None
            out.append(Derived(names[k], "sum", (names[i], names[j]), decimals=decimals))
    return out


def _decimals(values: np.ndarray) -> int | None:
    for k in range(9):
        if np.array_equal(np.round(values, k), values):
            return k
    return None


# -- within-patient rules -------------------------------------------------------------------
TIME_SCALES = (365.25, 1.0)      # days -> years, or the same unit
TIME_TOLERANCE = 0.01


def discover_history(tables: Mapping[str, pd.DataFrame], ms: Any, *,
                     min_expected: float = MIN_EXPECTED
                     ) -> tuple[dict[str, list[Constraint]], list[Constraint]]:
    """Within-patient rules that hold on every real patient of every child table.

    Returns ``({table: rules over its own columns}, [rules across a link])``:

    * ``monotone``: a number/boolean column that never decreases (or never increases) along
      the link's ``order_by`` in any patient, and changes in at least ``min_expected``
      consecutive pairs (a column constant within patients is a parent-level value instead);
    * ``time_derived``: a number column equal to the patient's first value plus the elapsed
      order time / 365.25 (or / 1) within 0.01, in every patient with two or more rows,
      and not constant within patients;
    * ``inequality`` across the link: the child's order column is never after a number
      column of the parent (nothing dated after the end of follow-up), where independent
      draws would break it on at least ``min_expected`` rows.

    Discovered rules read the real rows: the relational synthesizer uses them only without
    differential privacy (under DP a rule must be declared in the schema).
    """
    from synthdata.constraints.kinds import Monotone, TimeDerived

    own: dict[str, list[Constraint]] = {}
    across: list[Constraint] = []
    declared = {r.describe() for r in ms.constraints}
    for fk in ms.foreign_keys:
        if not fk.enforce or fk.child == fk.parent or fk.order_by is None:
            continue
        if fk.child not in tables or fk.parent not in tables:
            continue
        df, schema = tables[fk.child], ms.tables[fk.child]
        if len(df) < 2 * min_expected:
            continue
        order_kind = schema[fk.order_by].kind
        keys = pd.factorize(df[fk.column])[0]
        t, mt = column_values(df, fk.order_by, schema)
        t = np.where(mt, np.nan, t.astype(float))
        idx = np.lexsort((np.where(np.isnan(t), np.inf, t), keys))
        k_sorted, t_sorted = keys[idx], t[idx]
        same = np.r_[False, k_sorted[1:] == k_sorted[:-1]]   # row follows a row of its patient
        known = {r.describe() for r in schema.constraints}
        found: list[Constraint] = []
        skip = {fk.column, fk.order_by, *fk.parent_level}
        candidates = [c for c in schema.columns if c.name not in skip and c.name in df.columns
                      and (c.kind.is_numeric or c.kind == ColumnKind.BOOLEAN)]
        for col in candidates:
            x, mx = column_values(df, col.name, schema)
            x = np.where(mx, np.nan, x.astype(float))[idx]
            prev = np.r_[np.nan, x[:-1]]
            pair = same & ~np.isnan(x) & ~np.isnan(prev)
            if not pair.any():
                continue
            diff = (x - prev)[pair]
            for direction, ok in (("increasing", diff >= 0), ("decreasing", diff <= 0)):
                moves = int((diff != 0).sum())
                if ok.all() and moves >= min_expected:
                    found.append(Monotone(col.name, direction=direction, by=fk.column,
                                          order=fk.order_by))
                    break
            if col.kind.is_numeric and order_kind in (ColumnKind.INTEGER, ColumnKind.CONTINUOUS):
                first_x = pd.Series(x).groupby(k_sorted).transform("first").to_numpy()
                first_t = pd.Series(t_sorted).groupby(k_sorted).transform("first").to_numpy()
                rows = same & ~np.isnan(x) & ~np.isnan(t_sorted)
                if rows.sum() < min_expected or np.all(diff == 0):
                    continue
                for scale in TIME_SCALES:
                    expected = first_x + (t_sorted - first_t) / scale
                    if np.all(np.abs(x[rows] - expected[rows]) <= TIME_TOLERANCE):
                        found.append(TimeDerived(col.name, fk.order_by, scale=scale,
                                                 tolerance=TIME_TOLERANCE, by=fk.column,
                                                 order=fk.order_by))
                        break
        own[fk.child] = [r for r in found if r.describe() not in known]
        # nothing dated after the parent's end of follow-up: child.order <= parent.column
        if order_kind not in (ColumnKind.INTEGER, ColumnKind.CONTINUOUS):
            continue
        pschema = ms.tables[fk.parent]
        parent = tables[fk.parent].drop_duplicates(fk.parent_column).set_index(fk.parent_column)
        for pcol in pschema.columns:
            if not pcol.kind.is_numeric or pcol.name == fk.parent_column:
                continue
            p = pd.to_numeric(parent[pcol.name], errors="coerce").reindex(
                df[fk.column].to_numpy()).to_numpy(dtype=float, na_value=np.nan)
            ok = ~np.isnan(p) & ~np.isnan(t)
            if ok.sum() < 2 * min_expected or np.any(t[ok] > p[ok]):
                continue
            # rows independent draws would put after the parent's value
            expected = np.searchsorted(np.sort(p[ok]), t[ok], side="left").sum() / ok.sum()
            rule = Inequality(f"{fk.child}.{fk.order_by}", f"{fk.parent}.{pcol.name}")
            if expected >= min_expected and rule.describe() not in declared:
                across.append(rule)
    return own, across
