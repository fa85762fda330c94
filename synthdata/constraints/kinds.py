"""Constraint kinds: rules every synthetic row obeys, declared in the schema or proposed.

Each kind is a frozen dataclass with ``to_dict``/``from_dict`` (the YAML form under the
schema's top-level ``constraints:`` list), ``column_names`` (the columns it names),
``check_schema(schema)`` (a ``SchemaError`` naming the rule when it cannot apply) and
``violations(df, schema)`` (a vectorised boolean mask of the rows that break it).

Missing cells: a rule over numbers holds vacuously on a row where one of its cells is
missing (``a <= b`` says nothing when ``b`` is unknown). ``fixed_combinations`` and
``one_hot`` treat a missing cell as a value of its own.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
            if value is None or (f.name == "strict" and not value):
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
class Unique(Constraint):
    """No two rows share the same values of ``columns`` (rows with a missing cell ignored)."""

    columns: tuple[str, ...]
    kind: ClassVar[str] = "unique"

    def __post_init__(self) -> None:
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


KINDS: dict[str, type[Constraint]] = {k.kind: k for k in (
    Inequality, Range, Positive, Negative, FixedCombinations, OneHot, Derived, Unique)}


def constraint_from_dict(data: Mapping[str, Any], *, where: str = "schema") -> tuple[Constraint, bool]:
    """Build one constraint from its YAML form; returns ``(constraint, proposed)``."""
    if not isinstance(data, Mapping):
        raise SchemaError(f"{where}: every entry under 'constraints' must be a mapping, got {data!r}")
    values = dict(data)
    kind = values.pop("kind", None)
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
    if proposed:
        out["proposed"] = True
    return out
