"""Conditions for ``sample(n, conditions=...)``: checked against the schema before any work.

Two forms, which may be mixed:

* equality on a discrete (categorical or boolean) column: ``{"death": 1}``; the generator
  draws only rows with that value;
* a numeric range on a continuous or integer column: ``{"age": {"min": 60}}``,
  ``{"age": {"min": 60, "max": 70}}`` (both ends inclusive); rows are drawn and those
  outside the range are rejected (bounded reject-and-resample), so a range that the
  model almost never produces is a ``ConfigError`` saying how rare it was. Missing values
  are outside every range.

:func:`split_conditions` runs before fitting in the pipeline (``sample.conditions``) and
again in ``sample()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError
from synthdata.schema.model import ColumnKind, Schema

__all__ = ["RangeCondition", "split_conditions"]

RANGE_KEYS = ("min", "max")


@dataclass(frozen=True)
class RangeCondition:
    """``min <= column <= max`` (either end may be open)."""

    column: str
    min: float | None = None
    max: float | None = None

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of ``frame`` inside the range (missing values are outside)."""
        values = pd.to_numeric(frame[self.column], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(values)
        if self.min is not None:
            ok &= values >= self.min
        if self.max is not None:
            ok &= values <= self.max
        return np.asarray(ok, dtype=bool)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)} <= {self.column} <= {_num(self.max)}"
        if self.min is not None:
            return f"{self.column} >= {_num(self.min)}"
        return f"{self.column} <= {_num(self.max)}"


def split_conditions(schema: Schema, conditions: Mapping[str, Any] | None, *,
                     where: str = "conditions") -> tuple[dict[str, Any], list[RangeCondition]]:
    """Check ``conditions`` against ``schema``; return (equalities, ranges).

    Raises ``ConfigError`` naming the column and what is allowed: an unknown column, a
    range on a non-numeric column, an equality on a numeric column, a value outside the
    declared categories, or a malformed range.
    """
    if conditions is None:
        return {}, []
    if not isinstance(conditions, Mapping):
        raise ConfigError(f"{where} must be a mapping {{column: value}} or {{column: {{'min': "
                          f"x, 'max': y}}}}, got {type(conditions).__name__}")
    equal: dict[str, Any] = {}
    ranges: list[RangeCondition] = []
    for column, value in conditions.items():
        if column not in schema:
            raise ConfigError(f"{where}: condition on unknown column {column!r}; columns are "
                              f"{schema.names}")
        kind = schema[column].kind
        if isinstance(value, Mapping):
            cond = _range(column, kind, value, where)
            _check_overlap(cond, schema[column].min, schema[column].max, where)
            ranges.append(cond)
            continue
        if not kind.is_discrete:
            hint = (f"for numbers give a range such as {{{column!r}: {{'min': ..., 'max': ...}}}}"
                    if kind.is_numeric else "condition on a categorical, boolean or numeric "
                    "column instead")
            raise ConfigError(f"{where}: condition {column}={value!r}: column {column!r} is "
                              f"{kind.value}; a value condition takes only discrete "
                              f"(categorical or boolean) columns; {hint}")
        categories = schema[column].categories
        if categories is not None and not _among(value, categories):
            raise ConfigError(f"{where}: condition {column}={value!r}: value not seen in "
                              f"training (not a category of {column!r}); categories are "
                              f"{list(categories)}")
        equal[column] = value
    return equal, ranges


def _range(column: str, kind: ColumnKind, value: Mapping[str, Any], where: str) -> RangeCondition:
    if kind not in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER):
        raise ConfigError(f"{where}: range condition on column {column!r} ({kind.value}): "
                          "ranges work on continuous and integer columns; for a categorical "
                          f"or boolean column give the value, e.g. {{{column!r}: value}}")
    unknown = sorted(str(k) for k in value if k not in RANGE_KEYS)
    if unknown or not value:
        raise ConfigError(f"{where}: range condition on {column!r} has key(s) "
                          f"{unknown or '(none)'}; give 'min', 'max' or both, e.g. "
                          f"{{{column!r}: {{'min': 60, 'max': 70}}}}")
    bounds: dict[str, float | None] = {}
    for key in RANGE_KEYS:
        raw = value.get(key)
        if raw is None:
            bounds[key] = None
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(raw)):
            raise ConfigError(f"{where}: range condition {column}.{key} must be a finite number, "
                              f"got {raw!r}")
        bounds[key] = float(raw)
    low, high = bounds["min"], bounds["max"]
    if low is None and high is None:
        raise ConfigError(f"{where}: range condition on {column!r} gives neither 'min' nor "
                          "'max'")
    if low is not None and high is not None and low > high:
        raise ConfigError(f"{where}: range condition on {column!r} has min {_num(low)} > max "
                          f"{_num(high)}")
    return RangeCondition(column, low, high)


def _check_overlap(cond: RangeCondition, low: float | None, high: float | None,
                   where: str) -> None:
    """A range that misses the column's schema bounds can never be met: say so now."""
    if (low is not None and cond.max is not None and cond.max < low) or \
            (high is not None and cond.min is not None and cond.min > high):
        raise ConfigError(f"{where}: range condition {cond.describe()} lies outside the "
                          f"bounds of {cond.column!r} in the schema [{low}, {high}]; no "
                          "generated value can meet it")


def _num(value: float | None) -> str:
    """``60.0`` -> ``"60"``; ``96.999999999`` stays exact (no rounding in messages)."""
    if value is None:
        return "None"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _among(value: Any, categories: tuple[Any, ...]) -> bool:
    """``value`` is one of ``categories`` (YAML and CLI values may arrive as text: "1")."""
    try:
        if value in categories:
            return True
    except TypeError:
        pass
    return str(value) in {str(c) for c in categories}
