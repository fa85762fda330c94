"""Constraint kinds: rules every synthetic row obeys, declared in the schema or proposed.

Each kind is a frozen dataclass with ``to_dict``/``from_dict`` (the YAML form under the
schema's top-level ``constraints:`` list), ``column_names`` (the columns it names),
``check_schema(schema)`` (a ``SchemaError`` naming the rule when it cannot apply) and
``violations(df, schema)`` (a vectorised boolean mask of the rows that break it).

Missing cells: a rule over numbers holds vacuously on a row where one of its cells is
missing (``a <= b`` says nothing when ``b`` is unknown). ``fixed_combinations`` and
``one_hot`` treat a missing cell as a value of its own.

Within-patient rules (``monotone``, ``time_derived``, ``event_consistency``,
``conditional``) read a child table grouped by the patient key ``by`` and ordered by
``order`` (both default to the table's link: the foreign key column and ``order_by``).
They also have ``repair(df, schema)``: the values that make the rule hold (a running
maximum, a recomputed column, a recomputed flag, the ``then`` value), so generators can
enforce them by construction. Every kind takes ``on_real_violation``: what to do when the
*real* data breaks a declared rule — ``error`` (default: refuse, naming the rule),
``drop`` (drop the rows that break it, counted) or ``repair`` (fix them, counted; kinds
with ``repair`` only).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from synthdata.errors import SchemaError
from synthdata.types import ColumnKind, to_native

NS_PER_DAY = 86_400 * 10**9
DERIVED_EXPRESSIONS = ("sum", "difference", "ratio", "lookup")
REAL_VIOLATION_POLICIES = ("error", "drop", "repair")


# -- numeric views ------------------------------------------------------------------------
def column_values(df: pd.DataFrame, name: str, schema: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing) of a number or datetime column; datetimes as int64 nanoseconds."""
    series = df[name]
    col = schema[name] if schema is not None and name in schema else None
    is_dt = (col is not None and col.kind == ColumnKind.DATETIME) or \
        pd.api.types.is_datetime64_any_dtype(series)
    if is_dt:
        parsed = to_datetime(series, col.datetime_format if col is not None else None)
        missing = parsed.isna().to_numpy()
        ns = parsed.to_numpy(dtype="datetime64[ns]").astype("int64")
        return np.where(missing, 0, ns), missing
    if pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=float)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(values)
    return values, missing


def to_datetime(series: pd.Series, fmt: str | None) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        out = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
        return out.astype("datetime64[ns]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(series, format=fmt, errors="coerce").astype("datetime64[ns]")


def _constant(value: Any, is_datetime: bool) -> float | int:
    if is_datetime:
        return int(pd.Timestamp(value).value)
    return float(value)


def _tuple(value: Any, what: str) -> tuple:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SchemaError(f"{what} must be a list, got {value!r}")
    return tuple(value)


def row_key(values: Any) -> str:
    """JSON key of one combination of values (missing → null)."""
    return json.dumps([to_native(v) for v in values])


# -- base ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    """Base of all kinds (not used directly)."""

    kind: ClassVar[str] = "constraint"
    # what to do when the real data breaks the rule: error | drop | repair
    on_real_violation: str = dataclasses.field(default="error", kw_only=True)

    def __post_init__(self) -> None:
        if self.on_real_violation not in REAL_VIOLATION_POLICIES:
            raise SchemaError(f"constraint {self.kind}: on_real_violation is "
                              f"{self.on_real_violation!r}; choose one of "
                              f"{list(REAL_VIOLATION_POLICIES)}")
        if self.on_real_violation == "repair" and not self.can_repair:
            raise SchemaError(f"constraint {self.kind}: on_real_violation: repair is not "
                              "available for this kind (no unique fix); use drop or error")

    @property
    def can_repair(self) -> bool:
        return False

    @property
    def column_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def names_in(self, schema: Any) -> tuple[str, ...]:
        """Every column of ``schema`` the rule reads (``column_names`` plus column ends)."""
        return self.column_names

    def __str__(self) -> str:
        return self.describe()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "strict" and not value) or \
                    (f.name == "on_real_violation" and value == "error"):
                continue
            out[f.name] = _plain(value)
        return out

    def check_schema(self, schema: Any) -> None:
        missing = [c for c in self.column_names if c not in schema]
        if missing:
            raise SchemaError(f"constraint {self.describe()!r} names column(s) {missing} that "
                              f"schema {schema.name!r} does not have; columns are {schema.names}")

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        raise NotImplementedError

    def _numeric(self, schema: Any, *names: str) -> None:
        kinds = {schema[n].kind for n in names}
        ok = {ColumnKind.CONTINUOUS, ColumnKind.INTEGER}
        if not (kinds <= ok or kinds == {ColumnKind.DATETIME}):
            raise SchemaError(f"constraint {self.describe()!r} compares columns of kinds "
                              f"{sorted(k.value for k in kinds)}; it needs numbers "
                              "(continuous/integer) or datetimes, not a mix")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if hasattr(value, "isoformat"):  # datetime.date / datetime from YAML
        return value.isoformat()
    return to_native(value)


# -- kinds ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inequality(Constraint):
    """``low <= high`` (``low < high`` when ``strict``) for numbers or datetimes."""

    low: str
    high: str
    strict: bool = False
    kind: ClassVar[str] = "inequality"

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.low, self.high)

    def describe(self) -> str:
        return f"{self.low} {'<' if self.strict else '<='} {self.high}"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        if self.low == self.high:
            raise SchemaError(f"constraint {self.describe()!r} compares a column with itself")
        self._numeric(schema, self.low, self.high)

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        a, ma = column_values(df, self.low, schema)
        b, mb = column_values(df, self.high, schema)
        bad = (a >= b) if self.strict else (a > b)
        return bad & ~ma & ~mb


@dataclass(frozen=True)
class Range(Constraint):
    """``low <= column <= high``; each end is a column name, a constant, or None (open).

    A string end names a column; a string that is not a column is a datetime constant
    (for a datetime column). ``strict`` makes both ends strict.
    """

    column: str
    low: Any = None
    high: Any = None
    strict: bool = False
    kind: ClassVar[str] = "range"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low is None and self.high is None:
            raise SchemaError(f"constraint range on {self.column!r} needs 'low', 'high' or both")
        for end in ("low", "high"):
            value = getattr(self, end)
            if isinstance(value, bool) or not (value is None or isinstance(
                    value, (str, int, float, np.integer, np.floating, pd.Timestamp))
                    or hasattr(value, "isoformat")):
                raise SchemaError(f"constraint range on {self.column!r}: {end} must be a column "
                                  f"name, a number or a date, got {value!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.column,)

    def column_ends(self, schema: Any) -> dict[str, str]:
        """{'low'/'high': column name} for the ends that name a column."""
        return {end: getattr(self, end) for end in ("low", "high")
                if isinstance(getattr(self, end), str) and getattr(self, end) in schema}

    def names_in(self, schema: Any) -> tuple[str, ...]:
        return (self.column, *self.column_ends(schema).values())

    def constant_ends(self, schema: Any) -> dict[str, float | int]:
        is_dt = schema[self.column].kind == ColumnKind.DATETIME
        out = {}
        for end in ("low", "high"):
            value = getattr(self, end)
            if value is None or (isinstance(value, str) and value in schema):
                continue
            out[end] = _constant(value, is_dt)
        return out

    def describe(self) -> str:
        op = "<" if self.strict else "<="
        parts = [] if self.low is None else [f"{self.low} {op}"]
        parts.append(self.column)
        if self.high is not None:
            parts.append(f"{op} {self.high}")
        return " ".join(parts)

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        ends = self.column_ends(schema)
        self._numeric(schema, self.column, *ends.values())
        is_dt = schema[self.column].kind == ColumnKind.DATETIME
        for end in ("low", "high"):
            value = getattr(self, end)
            if value is None or end in ends:
                continue
            try:
                _constant(value, is_dt)
            except (TypeError, ValueError):
                what = "a date" if is_dt else "a number or a column name"
                raise SchemaError(f"constraint {self.describe()!r}: {end} {value!r} is neither a "
                                  f"column of schema {schema.name!r} nor {what}") from None
        const = self.constant_ends(schema)
        if "low" in const and "high" in const and const["low"] > const["high"]:
            raise SchemaError(f"constraint {self.describe()!r}: low is above high")

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        x, mx = column_values(df, self.column, schema)
        bad = np.zeros(len(df), dtype=bool)
        ends = self.column_ends(schema)
        const = self.constant_ends(schema)
        for end in ("low", "high"):
            v: np.ndarray | float
            if end in ends:
                v, mv = column_values(df, ends[end], schema)
            elif end in const:
                v, mv = const[end], np.zeros(len(df), dtype=bool)
            else:
                continue
            if end == "low":
                broken = (v >= x) if self.strict else (v > x)
            else:
                broken = (x >= v) if self.strict else (x > v)
            bad |= broken & ~mv
        return bad & ~mx


@dataclass(frozen=True)
class Positive(Constraint):
    """``column >= 0`` (``> 0`` when ``strict``)."""

    column: str
    strict: bool = False
    kind: ClassVar[str] = "positive"

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.column,)

    def as_range(self) -> Range:
        return Range(self.column, low=0, strict=self.strict)

    def describe(self) -> str:
        return f"{self.column} {'>' if self.strict else '>='} 0"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        if schema[self.column].kind not in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER):
            raise SchemaError(f"constraint {self.describe()!r} needs a number column")

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        return self.as_range().violations(df, schema)


@dataclass(frozen=True)
class Negative(Positive):
    """``column <= 0`` (``< 0`` when ``strict``)."""

    kind: ClassVar[str] = "negative"

    def as_range(self) -> Range:
        return Range(self.column, high=0, strict=self.strict)

    def describe(self) -> str:
        return f"{self.column} {'<' if self.strict else '<='} 0"


@dataclass(frozen=True)
class FixedCombinations(Constraint):
    """The tuple of ``columns`` only takes combinations seen in the training data, or
    only the declared ``combinations`` (then public knowledge, usable under DP)."""

    columns: tuple[str, ...]
    combinations: tuple[tuple[Any, ...], ...] | None = None
    kind: ClassVar[str] = "fixed_combinations"

    def __post_init__(self) -> None:
        super().__post_init__()
        cols = _tuple(self.columns, "fixed_combinations: columns")
        if len(cols) < 2 or len(set(cols)) != len(cols):
            raise SchemaError(f"fixed_combinations needs two or more distinct columns, got {list(cols)}")
        object.__setattr__(self, "columns", cols)
        if self.combinations is not None:
            combos = tuple(_tuple(c, "fixed_combinations: each combination") for c in self.combinations)
            if any(len(c) != len(cols) for c in combos):
                raise SchemaError(f"fixed_combinations {list(cols)}: every combination needs "
                                  f"{len(cols)} values")
            object.__setattr__(self, "combinations", combos)

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.columns

    def describe(self) -> str:
        return f"fixed combinations of ({', '.join(self.columns)})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "columns": list(self.columns)}
        if self.combinations is not None:
            out["combinations"] = [[_plain(v) for v in c] for c in self.combinations]
        return out

    def allowed_keys(self) -> set[str] | None:
        return None if self.combinations is None else {row_key(c) for c in self.combinations}

    def violations(self, df: pd.DataFrame, schema: Any, allowed: set[str] | None = None) -> np.ndarray:
        allowed = allowed if allowed is not None else self.allowed_keys()
        if allowed is None:
            return np.zeros(len(df), dtype=bool)  # learned combinations: checked by the enforcer
        keys = combination_keys(df, self.columns)
        return ~keys.isin(list(allowed)).to_numpy()


def combination_keys(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """One JSON key per row for the tuple of ``columns`` (vectorised over unique tuples)."""
    n = len(df)
    if n == 0:
        return pd.Series([], dtype=object)
    codes, uniques = [], []
    for c in columns:
        code, uniq = pd.factorize(df[c], use_na_sentinel=False)
        codes.append(code)
        uniques.append(uniq)
    shape = tuple(max(len(u), 1) for u in uniques)
    flat = np.ravel_multi_index(tuple(codes), shape) if math.prod(shape) < 2**62 else None
    if flat is None:  # pragma: no cover - astronomically many combinations
        return pd.Series([row_key(r) for r in zip(*(df[c] for c in columns))], dtype=object)
    uflat, inverse = np.unique(flat, return_inverse=True)
    parts = np.unravel_index(uflat, shape)
    keys = np.array([row_key([uniques[j][parts[j][i]] for j in range(len(columns))])
                     for i in range(len(uflat))], dtype=object)
    return pd.Series(keys[inverse], index=df.index, dtype=object)


@dataclass(frozen=True)
class OneHot(Constraint):
    """Exactly one of ``columns`` is 1 (true) and the others 0 (false) in every row."""

    columns: tuple[str, ...]
    kind: ClassVar[str] = "one_hot"

    def __post_init__(self) -> None:
        super().__post_init__()
        cols = _tuple(self.columns, "one_hot: columns")
        if len(cols) < 2 or len(set(cols)) != len(cols):
            raise SchemaError(f"one_hot needs two or more distinct columns, got {list(cols)}")
        object.__setattr__(self, "columns", cols)

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.columns

    def describe(self) -> str:
        return f"one hot ({', '.join(self.columns)})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": list(self.columns)}

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        block = np.column_stack([_as_01(df[c]) for c in self.columns])
        ok = np.isin(block, (0.0, 1.0)).all(axis=1) & (np.nansum(block, axis=1) == 1)
        return ~ok


def _as_01(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    text = series.astype(str).str.strip().str.lower()
    mapping = {"1": 1.0, "true": 1.0, "yes": 1.0, "y": 1.0, "t": 1.0,
               "0": 0.0, "false": 0.0, "no": 0.0, "n": 0.0, "f": 0.0}
    return text.map(mapping).to_numpy(dtype=float, na_value=np.nan)


@dataclass(frozen=True)
class Derived(Constraint):
    """``column`` computed from ``inputs`` by ``expression``.

    ``sum`` (a + b + ...), ``difference`` (a - b), ``ratio`` (a / b) or ``lookup`` (a table
    from the input value(s) to the column's value; learned from the training data when
    ``table`` is not declared). ``decimals`` rounds the computed numbers.
    """

    column: str
    expression: str
    inputs: tuple[str, ...]
    table: tuple[tuple[Any, ...], ...] | None = None
    decimals: int | None = None
    kind: ClassVar[str] = "derived"

    def __post_init__(self) -> None:
        super().__post_init__()
        inputs = _tuple(self.inputs, f"derived {self.column!r}: inputs") \
            if not isinstance(self.inputs, str) else (self.inputs,)
        object.__setattr__(self, "inputs", inputs)
        if self.expression not in DERIVED_EXPRESSIONS:
            raise SchemaError(f"derived {self.column!r}: expression is {self.expression!r}; "
                              f"choose one of {list(DERIVED_EXPRESSIONS)}")
        need = {"difference": 2, "ratio": 2}.get(self.expression)
        if (need and len(inputs) != need) or not inputs:
            raise SchemaError(f"derived {self.column!r}: {self.expression} needs "
                              f"{need or 'one or more'} input column(s), got {list(inputs)}")
        if self.column in inputs:
            raise SchemaError(f"derived {self.column!r} cannot be computed from itself")
        if self.table is not None:
            table = self.table
            if isinstance(table, Mapping):
                table = tuple((k, v) for k, v in table.items())
            rows = tuple(_tuple(r, f"derived {self.column!r}: each table row") for r in table)
            if any(len(r) != len(inputs) + 1 for r in rows):
                raise SchemaError(f"derived {self.column!r}: each table row needs "
                                  f"{len(inputs)} key value(s) and the result")
            object.__setattr__(self, "table", rows)

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.column, *self.inputs)

    def describe(self) -> str:
        if self.expression == "lookup":
            return f"{self.column} = lookup({', '.join(self.inputs)})"
        sym = {"sum": " + ", "difference": " - ", "ratio": " / "}[self.expression]
        return f"{self.column} = {sym.join(self.inputs)}"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        if self.expression != "lookup":
            kinds = {schema[c].kind for c in self.column_names}
            if not kinds <= {ColumnKind.CONTINUOUS, ColumnKind.INTEGER}:
                raise SchemaError(f"constraint {self.describe()!r}: {self.expression} needs "
                                  "number columns (continuous/integer)")

    def lookup_map(self) -> dict[str, Any]:
        return {row_key(r[:-1]): r[-1] for r in (self.table or ())}

    def compute(self, df: pd.DataFrame, schema: Any, table: dict[str, Any] | None = None) -> pd.Series:
        """The derived values (float for arithmetic, object for lookups; missing → NaN)."""
        if self.expression == "lookup":
            mapping = table if table is not None else self.lookup_map()
            keys = combination_keys(df, self.inputs)
            return keys.map(mapping)
        arrays = [column_values(df, c, schema)[0].astype(float) for c in self.inputs]
        if self.expression == "sum":
            out = np.sum(arrays, axis=0)
        elif self.expression == "difference":
            out = arrays[0] - arrays[1]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = arrays[0] / arrays[1]
            out = np.where(np.isfinite(out), out, np.nan)
        if self.decimals is not None:
            out = np.round(out, self.decimals)
        return pd.Series(out, index=df.index)

    def violations(self, df: pd.DataFrame, schema: Any, table: dict[str, Any] | None = None) -> np.ndarray:
        if self.expression == "lookup" and table is None and self.table is None:
            return np.zeros(len(df), dtype=bool)  # learned table: checked by the enforcer
        expected = self.compute(df, schema, table)
        inputs_missing = df[list(self.inputs)].isna().any(axis=1).to_numpy()
        if self.expression == "lookup":
            actual = df[self.column]
            exp_missing = expected.isna().to_numpy()
            same = np.array([row_key([a]) == row_key([e]) for a, e in zip(actual, expected)]) \
                if len(df) else np.zeros(0, dtype=bool)
            return ~same & ~(inputs_missing & exp_missing)
        actual, missing = column_values(df, self.column, schema)
        exp = expected.to_numpy(dtype=float)
        tol = 1e-9 * np.maximum(1.0, np.abs(exp)) if self.decimals is None else \
            0.5 * 10.0 ** -self.decimals
        close = np.abs(actual - exp) <= tol
        return ~close & ~inputs_missing & ~(missing & np.isnan(exp))


@dataclass(frozen=True)
class Proportional(Constraint):
    """``column`` grows in proportion to the product of ``factors`` (e.g. a total charge
    with tenure × monthly charge): a declared *shape*, not an exact formula.

    Generators model the ratio ``column / (factor₁ × factor₂ × ...)`` in place of
    ``column`` and rebuild ``column = ratio × product`` on output, so the proportionality
    the real rows show survives even where a model cannot learn a product (binned
    marginals, one Gaussian copula). The only rows that break it are those where the
    product is 0 or missing but ``column`` is a non-zero number: no ratio can rebuild them.
    """

    column: str
    factors: tuple[str, ...]
    kind: ClassVar[str] = "proportional"

    def __post_init__(self) -> None:
        super().__post_init__()
        factors = (self.factors,) if isinstance(self.factors, str) else \
            _tuple(self.factors, f"proportional {self.column!r}: factors")
        if not factors or len(set(factors)) != len(factors):
            raise SchemaError(f"proportional {self.column!r} needs one or more distinct factor "
                              f"columns, got {list(factors)}")
        if self.column in factors:
            raise SchemaError(f"proportional {self.column!r} cannot be a factor of itself")
        object.__setattr__(self, "factors", factors)

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.column, *self.factors)

    def describe(self) -> str:
        return f"{self.column} ∝ {' × '.join(self.factors)}"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        kinds = {schema[c].kind for c in self.column_names}
        if not kinds <= {ColumnKind.CONTINUOUS, ColumnKind.INTEGER}:
            raise SchemaError(f"constraint {self.describe()!r}: proportional needs number "
                              "columns (continuous/integer)")

    def product(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        """The product of the factors (NaN where one is missing)."""
        out = np.ones(len(df))
        for c in self.factors:
            values, missing = column_values(df, c, schema)
            out = out * np.where(missing, np.nan, values)
        return out

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        values, missing = column_values(df, self.column, schema)
        prod = self.product(df, schema)
        return ~missing & (values != 0) & ~(np.isfinite(prod) & (prod != 0))


@dataclass(frozen=True)
class Unique(Constraint):
    """No two rows share the same values of ``columns`` (rows with a missing cell ignored)."""

    columns: tuple[str, ...]
    kind: ClassVar[str] = "unique"

    def __post_init__(self) -> None:
        super().__post_init__()
        cols = (self.columns,) if isinstance(self.columns, str) else \
            _tuple(self.columns, "unique: columns")
        if not cols:
            raise SchemaError("unique needs at least one column")
        object.__setattr__(self, "columns", cols)

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.columns

    def describe(self) -> str:
        return f"unique ({', '.join(self.columns)})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": list(self.columns)}

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        sub = df[list(self.columns)]
        complete = sub.notna().all(axis=1).to_numpy()
        return sub.duplicated(keep="first").to_numpy() & complete


# -- within-patient rules -------------------------------------------------------------------
def group_order(df: pd.DataFrame, by: str | None, order: str | None, schema: Any) -> np.ndarray:
    """Row positions sorted by (``by``, ``order``), stable (missing times last in a group)."""
    if by is None:
        raise SchemaError("a within-patient rule needs 'by' (the patient key column) and "
                          "'order' (the time column); declare them in the rule")
    codes, _ = pd.factorize(df[by], use_na_sentinel=True)
    if order is None:
        return np.argsort(codes, kind="stable")
    t, mt = column_values(df, order, schema)
    t = np.where(mt, np.inf, t.astype(float))
    return np.lexsort((t, codes))


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the first row of each run of equal ``keys`` (already sorted)."""
    first = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        first[1:] = keys[1:] != keys[:-1]
    return first


@dataclass(frozen=True)
class HistoryRule(Constraint):
    """Base of the within-patient kinds: ``by`` (patient key) and ``order`` (time column)."""

    by: str | None = dataclasses.field(default=None, kw_only=True)
    order: str | None = dataclasses.field(default=None, kw_only=True)
    grouped: ClassVar[bool] = True

    @property
    def can_repair(self) -> bool:
        return True

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.by, self.order) if n is not None)

    def names_in(self, schema: Any) -> tuple[str, ...]:
        return (*self.column_names, *self.group_names)

    def check_schema(self, schema: Any) -> None:
        group = self.group_names if self.needs_group else ()
        missing = [c for c in (*self.column_names, *group) if c not in schema]
        if missing:
            raise SchemaError(f"constraint {self.describe()!r} ({self.kind}) names column(s) "
                              f"{missing} that schema {schema.name!r} does not have; columns are "
                              f"{schema.names}")

    def check_group(self, where: str) -> None:
        """``SchemaError`` when a grouped rule has no patient key (no link to default to)."""
        if self.needs_group and self.by is None:
            raise SchemaError(f"{where}: constraint {self.describe()!r} ({self.kind}) needs 'by' "
                              "(the patient key) and 'order' (the time column); they default to "
                              "the table's foreign key and its order_by in a multi-table schema")

    @property
    def needs_group(self) -> bool:
        return self.grouped

    def with_group(self, by: str | None, order: str | None) -> HistoryRule:
        """This rule with ``by``/``order`` filled where they were left out."""
        if not self.needs_group:
            return self
        return dataclasses.replace(self, by=self.by or by, order=self.order or order)

    def repair(self, df: pd.DataFrame, schema: Any) -> tuple[pd.DataFrame, int]:
        """(``df`` with the rule holding, number of rows changed)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Monotone(HistoryRule):
    """``column`` never decreases (``direction: decreasing``: never increases) along
    ``order`` within each ``by`` group: ages, cumulative counts, "ever" flags that stay 1.
    Repaired by sorting each patient's values along time (the values drawn are kept)."""

    column: str
    direction: str = "increasing"
    kind: ClassVar[str] = "monotone"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.direction not in ("increasing", "decreasing"):
            raise SchemaError(f"monotone {self.column!r}: direction is {self.direction!r}; "
                              "choose increasing or decreasing")

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.column,)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.direction == "increasing":
            out.pop("direction", None)
        return out

    def describe(self) -> str:
        word = "non-decreasing" if self.direction == "increasing" else "non-increasing"
        return f"{self.column} {word} over {self.order or 'time'} per {self.by or 'patient'}"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        if schema[self.column].kind not in (ColumnKind_numeric() | ColumnKind_boolean()):
            raise SchemaError(f"constraint {self.describe()!r}: {self.column!r} must be a number, "
                              "boolean or datetime column")

    def _running(self, df: pd.DataFrame, schema: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row order, values in that order, running max/min in that order)."""
        idx = group_order(df, self.by, self.order, schema)
        x, mx = column_values(df, self.column, schema)
        x = np.where(mx, np.nan, x.astype(float))[idx]
        keys = pd.factorize(df[self.by])[0][idx]
        sign = 1.0 if self.direction == "increasing" else -1.0
        run = pd.Series(sign * x).groupby(keys).cummax().to_numpy() * sign
        return idx, x, run

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        if len(df) == 0:
            return np.zeros(0, dtype=bool)
        idx, x, run = self._running(df, schema)
        bad = np.zeros(len(df), dtype=bool)
        bad[idx] = ~np.isnan(x) & (x != run)
        return bad

    def repair(self, df: pd.DataFrame, schema: Any) -> tuple[pd.DataFrame, int]:
        """Sort each patient's values along time (missing cells stay where they are).

        A permutation within the patient keeps every value that was drawn, so the column's
        marginal distribution is unchanged; a running maximum would instead raise every
        value after a high one (measured on a generated cohort: an "ever" flag's share went
        from 0.32 to 0.60 with a running maximum)."""
        if len(df) == 0:
            return df, 0
        idx, x, run = self._running(df, schema)
        if not (~np.isnan(x) & (x != run)).any():
            return df, 0
        keys = pd.factorize(df[self.by])[0][idx]
        known = np.flatnonzero(~np.isnan(x))
        sign = 1.0 if self.direction == "increasing" else -1.0
        order = np.lexsort((sign * x[known], keys[known]))  # by patient, then by value
        fixed = x.copy()
        fixed[known] = x[known][order]   # rows of ``known`` are already grouped by patient
        changed = ~np.isnan(x) & (fixed != x)
        values = np.empty(len(df))
        values[idx] = fixed
        out = df.copy()
        out[self.column] = _cast_like(values, df[self.column], schema, self.column)
        return out, int(changed.sum())


@dataclass(frozen=True)
class TimeDerived(HistoryRule):
    """``column = baseline + (time - baseline_time) / scale`` within ``tolerance``.

    ``baseline`` is a column (e.g. the parent's ``age`` in a cross-table rule) or left out:
    then it is the patient's first value of ``column`` (along ``order``), and
    ``baseline_time`` defaults to the patient's first ``time``. ``baseline_time`` is a
    column or a number (default 0 when ``baseline`` is given). ``scale`` 365.25 turns days
    into years. ``decimals`` rounds the recomputed values.
    """

    column: str
    time: str
    baseline: str | None = None
    baseline_time: Any = None
    scale: float = 365.25
    tolerance: float = 0.01
    decimals: int | None = None
    kind: ClassVar[str] = "time_derived"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or self.scale == 0:
            raise SchemaError(f"time_derived {self.column!r}: scale must be a non-zero number, "
                              f"got {self.scale!r}")
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, (int, float)) \
                or self.tolerance < 0:
            raise SchemaError(f"time_derived {self.column!r}: tolerance must be a number >= 0, "
                              f"got {self.tolerance!r}")
        if self.column in (self.time, self.baseline):
            raise SchemaError(f"time_derived {self.column!r} cannot be computed from itself")

    @property
    def needs_group(self) -> bool:
        return self.baseline is None

    @property
    def column_names(self) -> tuple[str, ...]:
        extra = [self.baseline] if self.baseline else []
        if isinstance(self.baseline_time, str):
            extra.append(self.baseline_time)
        return (self.column, self.time, *extra)

    def names_in(self, schema: Any) -> tuple[str, ...]:
        return (*self.column_names, *(self.group_names if self.needs_group else ()))

    def describe(self) -> str:
        base = self.baseline or f"first {self.column}"
        t0 = self.baseline_time if self.baseline_time is not None else \
            ("0" if self.baseline else f"first {self.time}")
        return f"{self.column} = {base} + ({self.time} - {t0}) / {self.scale:g}"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        if isinstance(self.baseline_time, str) and self.baseline_time not in schema:
            raise SchemaError(f"constraint {self.describe()!r}: baseline_time "
                              f"{self.baseline_time!r} is not a column of {schema.name!r}")
        for name in self.column_names:
            if schema[name].kind not in ColumnKind_numeric():
                raise SchemaError(f"constraint {self.describe()!r}: {name!r} must be a number "
                                  "or datetime column")

    def expected(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        t, mt = column_values(df, self.time, schema)
        t = np.where(mt, np.nan, t.astype(float))
        scale = float(self.scale) * (NS_PER_DAY if _is_datetime(schema, self.time) else 1.0)
        if self.baseline is not None:
            base, mb = column_values(df, self.baseline, schema)
            base = np.where(mb, np.nan, base.astype(float))
            if isinstance(self.baseline_time, str):
                t0, m0 = column_values(df, self.baseline_time, schema)
                t0 = np.where(m0, np.nan, t0.astype(float))
            else:
                t0 = np.full(len(df), 0.0 if self.baseline_time is None else
                             float(_constant(self.baseline_time, _is_datetime(schema, self.time))))
        else:
            idx = group_order(df, self.by, self.order, schema)
            x, mx = column_values(df, self.column, schema)
            x = np.where(mx, np.nan, x.astype(float))
            keys = pd.factorize(df[self.by])[0]
            first = pd.DataFrame({"k": keys[idx], "x": x[idx], "t": t[idx]}).groupby(
                "k", sort=False).transform("first")
            base, t0 = np.empty(len(df)), np.empty(len(df))
            base[idx], t0[idx] = first["x"].to_numpy(), first["t"].to_numpy()
            if self.baseline_time is not None:
                t0 = (column_values(df, self.baseline_time, schema)[0].astype(float)
                      if isinstance(self.baseline_time, str) else np.full(len(df), float(
                          _constant(self.baseline_time, _is_datetime(schema, self.time)))))
        out = base + (t - t0) / scale
        if self.decimals is not None:
            out = np.round(out, self.decimals)
        return out

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        if len(df) == 0:
            return np.zeros(0, dtype=bool)
        x, mx = column_values(df, self.column, schema)
        exp = self.expected(df, schema)
        tol = float(self.tolerance) + 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(exp)))
        return ~mx & ~np.isnan(exp) & (np.abs(x - exp) > tol)

    def repair(self, df: pd.DataFrame, schema: Any) -> tuple[pd.DataFrame, int]:
        bad = self.violations(df, schema)
        if not bad.any():
            return df, 0
        x, mx = column_values(df, self.column, schema)
        values = np.where(bad, self.expected(df, schema), np.where(mx, np.nan, x.astype(float)))
        out = df.copy()
        out[self.column] = _cast_like(values, df[self.column], schema, self.column)
        return out, int(bad.sum())


@dataclass(frozen=True)
class EventConsistency(HistoryRule):
    """``flag`` is an event (one of ``event_values``) exactly when ``time`` is known and
    before ``end`` (``time < end``; ``<=`` unless ``strict``; no ``end``: whenever ``time``
    is known). Repaired by recomputing the flag (``event_values[0]`` or ``no_event``).
    Example: ``death == 1 <=> death_day is known and death_day <= futime``."""

    flag: str
    time: str
    end: Any = None
    event_values: tuple[Any, ...] = (1,)
    no_event: Any = 0
    strict: bool = False
    kind: ClassVar[str] = "event_consistency"
    grouped: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        values = self.event_values
        values = (values,) if isinstance(values, (str, int, float)) else \
            _tuple(values, f"event_consistency {self.flag!r}: event_values")
        if not values:
            raise SchemaError(f"event_consistency {self.flag!r}: event_values is empty")
        object.__setattr__(self, "event_values", values)

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.flag, self.time, *([self.end] if isinstance(self.end, str) else []))

    def names_in(self, schema: Any) -> tuple[str, ...]:
        return self.column_names

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key, default in (("event_values", [1]), ("no_event", 0)):
            if out.get(key) == default:
                out.pop(key)
        return out

    def describe(self) -> str:
        cond = f"{self.time} known"
        if self.end is not None:
            cond += f" and {self.time} {'<' if self.strict else '<='} {self.end}"
        events = ", ".join(str(v) for v in self.event_values)
        return f"{self.flag} in ({events}) <=> {cond}"

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        if self.end is not None and not isinstance(self.end, str):
            try:
                _constant(self.end, _is_datetime(schema, self.time))
            except (TypeError, ValueError):
                raise SchemaError(f"constraint {self.describe()!r}: end {self.end!r} is neither a "
                                  f"column of {schema.name!r} nor a number/date") from None
        self._numeric(schema, *[c for c in (self.time, self.end) if isinstance(c, str)])

    def happened(self, df: pd.DataFrame, schema: Any) -> tuple[np.ndarray, np.ndarray]:
        """(event by the times, rule applies): the rule says nothing where ``end`` is missing."""
        t, mt = column_values(df, self.time, schema)
        ok = ~mt
        applies = np.ones(len(df), dtype=bool)
        if self.end is not None:
            if isinstance(self.end, str) and self.end in schema:
                e, me = column_values(df, self.end, schema)
                applies = ~me
            else:
                e = np.full(len(df), _constant(self.end, _is_datetime(schema, self.time)))
            ok &= (t < e) if self.strict else (t <= e)
        return ok, applies

    def _is_event(self, df: pd.DataFrame) -> np.ndarray:
        keys = combination_keys(df, (self.flag,))
        return keys.isin([row_key([v]) for v in self.event_values]).to_numpy()

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        if len(df) == 0:
            return np.zeros(0, dtype=bool)
        should, applies = self.happened(df, schema)
        return applies & (self._is_event(df) != should)

    def repair(self, df: pd.DataFrame, schema: Any) -> tuple[pd.DataFrame, int]:
        bad = self.violations(df, schema)
        if not bad.any():
            return df, 0
        should, _ = self.happened(df, schema)
        values = df[self.flag].astype(object).copy()
        values[bad & should] = self.event_values[0]
        values[bad & ~should] = self.no_event
        out = df.copy()
        out[self.flag] = _restore_like(values, df[self.flag])
        return out, int(bad.sum())


_OPS = ("is not null", "is null", "not in", "==", "!=", "<=", ">=", "<", ">", "in")
_CLAUSE = re.compile(r"^\s*(?P<col>.+?)\s+(?P<op>is not null|is null|not in|==|!=|<=|>=|<|>|in)"
                     r"(?:\s+(?P<value>.+?))?\s*$")


@dataclass(frozen=True)
class Clause:
    """``column op value``: ops ``== != < <= > >= in`` / ``not in`` (a list) and
    ``is null`` / ``is not null`` (no value)."""

    column: str
    op: str
    value: Any = None

    @classmethod
    def parse(cls, text: Any, what: str) -> Clause:
        if isinstance(text, Clause):
            return text
        import yaml

        match = _CLAUSE.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise SchemaError(f"{what}: {text!r} is not a condition; write 'column op value' "
                              f"with op one of {list(_OPS)} and spaces around it, e.g. "
                              "'diabetes == 1' or 'stage in [3, 4]'")
        op, raw = match["op"], match["value"]
        if op.startswith("is"):
            if raw:
                raise SchemaError(f"{what}: {text!r}: '{op}' takes no value")
            return cls(match["col"], op)
        if raw is None:
            raise SchemaError(f"{what}: {text!r}: '{op}' needs a value")
        value = yaml.safe_load(raw)
        if op in ("in", "not in"):
            if not isinstance(value, list) or not value:
                raise SchemaError(f"{what}: {text!r}: '{op}' needs a non-empty list, e.g. [1, 2]")
            value = tuple(value)
        return cls(match["col"], op, value)

    def __str__(self) -> str:
        if self.op.startswith("is"):
            return f"{self.column} {self.op}"
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.column} {self.op} {json.dumps(_plain(value))}"

    def holds(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        """Where the clause is true (a missing cell makes it false, except ``is null``)."""
        series = df[self.column]
        missing = series.isna().to_numpy()
        if self.op == "is null":
            return missing
        if self.op == "is not null":
            return ~missing
        if self.op in ("==", "!=", "in", "not in"):
            values = self.value if self.op in ("in", "not in") else (self.value,)
            keys = combination_keys(df, (self.column,))
            hit = keys.isin([row_key([v]) for v in values]).to_numpy()
            if not hit.any() and pd.api.types.is_numeric_dtype(series):
                num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                hit = np.isin(num, [float(v) for v in values if _is_number(v)])
            return (hit if self.op in ("==", "in") else ~hit) & ~missing
        x, mx = column_values(df, self.column, schema)
        v = _constant(self.value, _is_datetime(schema, self.column))
        out = {"<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[self.op]
        return out & ~mx

    @property
    def repairable(self) -> bool:
        return self.op in ("==", "in", "<", "<=", ">", ">=", "is null")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Conditional(HistoryRule):
    """If ``when`` holds then ``then`` holds (YAML keys ``if``/``then``), e.g.
    ``{kind: conditional, if: "status == 2", then: "death_day is not null"}``. Repaired
    where the ``then`` clause names one fix (``==``, the first of ``in``, a bound of
    ``<``/``<=``/``>``/``>=``, ``is null``); otherwise rows that break it are redrawn or
    dropped."""

    when: Any
    then: Any
    kind: ClassVar[str] = "conditional"
    grouped: ClassVar[bool] = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", Clause.parse(self.when, "conditional: if"))
        object.__setattr__(self, "then", Clause.parse(self.then, "conditional: then"))
        super().__post_init__()

    @property
    def can_repair(self) -> bool:
        return self.then.repairable

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.when.column, self.then.column)))

    def names_in(self, schema: Any) -> tuple[str, ...]:
        return self.column_names

    def describe(self) -> str:
        return f"if {self.when} then {self.then}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "if": str(self.when), "then": str(self.then)}
        for name in ("by", "order"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def check_schema(self, schema: Any) -> None:
        super().check_schema(schema)
        for clause in (self.when, self.then):
            if clause.op in ("<", "<=", ">", ">="):
                if not schema[clause.column].kind.is_learned:  # numeric codes compare too
                    raise SchemaError(f"constraint {self.describe()!r}: {clause.column!r} is "
                                      f"an {schema[clause.column].kind.value} column; "
                                      f"{clause.op} needs numbers or dates")
                try:
                    _constant(clause.value, _is_datetime(schema, clause.column))
                except (TypeError, ValueError):
                    raise SchemaError(f"constraint {self.describe()!r}: {clause.value!r} is not a "
                                      f"number/date for {clause.op}") from None

    def violations(self, df: pd.DataFrame, schema: Any) -> np.ndarray:
        if len(df) == 0:
            return np.zeros(0, dtype=bool)
        return self.when.holds(df, schema) & ~self.then.holds(df, schema)

    def repair(self, df: pd.DataFrame, schema: Any) -> tuple[pd.DataFrame, int]:
        bad = self.violations(df, schema)
        if not bad.any() or not self.can_repair:
            return df, 0
        c = self.then
        out = df.copy()
        if c.op == "is null":
            values = out[c.column].astype(object).copy()
            values[bad] = None
            out[c.column] = _restore_like(values, df[c.column], allow_na=True)
        elif c.op in ("==", "in"):
            values = out[c.column].astype(object).copy()
            values[bad] = c.value if c.op == "==" else c.value[0]
            out[c.column] = _restore_like(values, df[c.column])
        else:
            x, mx = column_values(df, c.column, schema)
            x = np.where(mx, np.nan, x.astype(float))
            v = float(_constant(c.value, _is_datetime(schema, c.column)))
            is_int = schema is not None and c.column in schema and \
                schema[c.column].kind.value == "integer"
            step = 1.0 if is_int else 0.0
            fix = {"<=": v, ">=": v, "<": v - step if is_int else np.nextafter(v, -np.inf),
                   ">": v + step if is_int else np.nextafter(v, np.inf)}[c.op]
            x = np.where(bad, fix, x)
            out[c.column] = _cast_like(x, df[c.column], schema, c.column)
        return out, int(bad.sum())


def _is_datetime(schema: Any, name: str) -> bool:
    return schema is not None and name in schema and schema[name].kind.value == "datetime"


def ColumnKind_numeric() -> set:  # noqa: N802 - kinds whose values compare as numbers
    return {ColumnKind.CONTINUOUS, ColumnKind.INTEGER, ColumnKind.DATETIME}


def ColumnKind_boolean() -> set:  # noqa: N802
    return {ColumnKind.BOOLEAN}


def _cast_like(values: np.ndarray, like: pd.Series, schema: Any, name: str) -> pd.Series:
    """Numbers (datetimes as ns) back to the dtype of ``like``."""
    if _is_datetime(schema, name) or pd.api.types.is_datetime64_any_dtype(like):
        missing = np.isnan(values)
        stamps = pd.Series(pd.to_datetime(np.where(missing, 0, values).astype(np.int64), unit="ns"),
                           index=like.index).mask(pd.Series(missing, index=like.index))
        if pd.api.types.is_datetime64_any_dtype(like):
            return stamps
        fmt = schema[name].datetime_format if schema is not None and name in schema else None
        return stamps.dt.strftime(fmt) if fmt else stamps.astype(str).where(~missing, None)
    series = pd.Series(values, index=like.index)
    if pd.api.types.is_integer_dtype(like.dtype):
        series = series.round()
        return series.astype(like.dtype) if series.notna().all() else series.astype("Int64")
    if pd.api.types.is_bool_dtype(like.dtype):
        return series.astype(bool) if series.notna().all() else series
    return series.astype(float) if pd.api.types.is_numeric_dtype(like.dtype) else series.astype(object)


def _restore_like(values: pd.Series, like: pd.Series, allow_na: bool = False) -> pd.Series:
    try:
        if pd.api.types.is_integer_dtype(like.dtype) and values.isna().any():
            return pd.to_numeric(values, errors="coerce").astype("float64")
        if pd.api.types.is_numeric_dtype(like.dtype) and not pd.api.types.is_bool_dtype(like.dtype):
            return pd.to_numeric(values, errors="coerce").astype(like.dtype if not (
                allow_na and pd.api.types.is_integer_dtype(like.dtype)) else "float64")
        return values.astype(like.dtype)
    except (TypeError, ValueError):
        return values


HISTORY_KINDS = (Monotone, TimeDerived, EventConsistency, Conditional)


KINDS: dict[str, type[Constraint]] = {k.kind: k for k in (
    Inequality, Range, Positive, Negative, FixedCombinations, OneHot, Derived, Proportional,
    Unique, *HISTORY_KINDS)}


def constraint_from_dict(data: Mapping[str, Any], *, where: str = "schema") -> tuple[Constraint, bool]:
    """Build one constraint from its YAML form; returns ``(constraint, proposed)``."""
    if not isinstance(data, Mapping):
        raise SchemaError(f"{where}: every entry under 'constraints' must be a mapping, got {data!r}")
    values = dict(data)
    kind = values.pop("kind", None)
    if kind == "conditional" and "if" in values:  # `if` is a Python keyword: field `when`
        values["when"] = values.pop("if")
    proposed = bool(values.pop("proposed", False))
    if kind not in KINDS:
        raise SchemaError(f"{where}: constraint kind is {kind!r}; choose one of {sorted(KINDS)}")
    cls = KINDS[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING and f.name not in values)
    if unknown or missing:
        raise SchemaError(f"{where}: constraint {kind} {dict(data)!r}: "
                          + (f"unknown key(s) {unknown}; " if unknown else "")
                          + (f"missing key(s) {missing}; " if missing else "")
                          + f"keys are {sorted(known)}")
    try:
        return cls(**values), proposed
    except TypeError as err:
        raise SchemaError(f"{where}: constraint {kind}: {err}") from None


def constraint_to_dict(constraint: Constraint, *, proposed: bool = False) -> dict[str, Any]:
    out = constraint.to_dict()
    if constraint.on_real_violation != "error":
        out["on_real_violation"] = constraint.on_real_violation
    if proposed:
        out["proposed"] = True
    return out
