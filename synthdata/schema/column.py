"""Column: one column of a table (kind, bounds, categories, format, privacy role)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from synthdata.errors import SchemaError
from synthdata.types import ColumnKind, PiiRole, to_native

MAX_PRECISION = 12  # decimals a continuous column may declare


@dataclass(frozen=True)
class Column:
    """One column of a table.

    ``categories`` holds the known values of a discrete column in their original type;
    ``dtype`` is the pandas dtype to restore on output; ``public`` says that bounds and
    categories are public knowledge (not learned from the private data); ``precision`` is
    the number of decimals a continuous column is recorded with (outputs are rounded to
    it; ``None``: learned from the data without privacy, full precision under DP).
    """

    name: str
    kind: ColumnKind
    dtype: str = "object"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None
    datetime_format: str | None = None
    pii: PiiRole | None = None
    public: bool = False
    description: str | None = None
    precision: int | None = None  # last: positional construction stays as it was

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind.value, "dtype": self.dtype,
                               "nullable": self.nullable}
        for key in ("min", "max", "datetime_format", "precision", "description"):
            value = getattr(self, key)
            if value is not None:
                out[key] = to_native(value)
        if self.categories is not None:
            out["categories"] = [to_native(c) for c in self.categories]
        if self.pii is not None:
            out["pii"] = self.pii.value
        if self.public:
            out["public"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "schema") -> Column:
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where}: every entry under 'columns' must be a mapping with a "
                              f"'name' (e.g. {{name: age, kind: integer}}), got {data!r:.60}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        name = data.get("name")
        if unknown:
            raise SchemaError(f"{where}: column {name!r} has unknown key(s) {unknown}; "
                              f"allowed keys are {sorted(known)}")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}: every column needs a non-empty 'name' (text), got "
                              f"{name!r:.60}")
        _check_field_types(data, name, where)
        values = dict(data)
        values["kind"] = _enum(ColumnKind, values.get("kind"), f"{where}: column {name!r} kind")
        if values.get("pii") is not None:
            values["pii"] = _enum(PiiRole, values["pii"], f"{where}: column {name!r} pii")
        if values.get("categories") is not None:
            if not isinstance(values["categories"], (list, tuple)):
                raise SchemaError(f"{where}: column {name!r} categories must be a list")
            values["categories"] = tuple(values["categories"])
        for key in ("min", "max"):
            if values.get(key) is not None and not isinstance(values[key], (int, float)):
                raise SchemaError(f"{where}: column {name!r} {key} must be a number, "
                                  f"got {values[key]!r}")
        precision = values.get("precision")
        if precision is not None and (isinstance(precision, bool) or not isinstance(precision, int)
                                      or not 0 <= precision <= MAX_PRECISION):
            raise SchemaError(f"{where}: column {name!r} precision must be a whole number of "
                              f"decimals from 0 to {MAX_PRECISION}, got {precision!r}")
        if precision is not None and values["kind"] != ColumnKind.CONTINUOUS:
            raise SchemaError(f"{where}: column {name!r} is {values['kind'].value}; precision "
                              "(decimals) applies to continuous columns only")
        values.setdefault("dtype", _default_dtype(values["kind"]))
        return cls(**values)


_SCALAR_TYPES = (str, int, float, bool, type(None))


def _check_field_types(data: Mapping[str, Any], name: str, where: str) -> None:
    """Each column field has the YAML type it needs (a wrong type is a SchemaError)."""
    for key in ("nullable", "public"):
        if key in data and not isinstance(data[key], bool):
            raise SchemaError(f"{where}: column {name!r} {key} must be true or false, got "
                              f"{data[key]!r:.60}")
    for key in ("dtype", "datetime_format", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise SchemaError(f"{where}: column {name!r} {key} must be text, got "
                              f"{data[key]!r:.60}")
    for key in ("min", "max"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise SchemaError(f"{where}: column {name!r} {key} must be a finite number, "
                              f"got {value!r:.60}")
    lo, hi = data.get("min"), data.get("max")
    if lo is not None and hi is not None and lo > hi:
        raise SchemaError(f"{where}: column {name!r} min {lo} is above max {hi}; swap them")
    cats = data.get("categories")
    if isinstance(cats, (list, tuple)):
        bad = [c for c in cats if not isinstance(c, _SCALAR_TYPES)
               or (isinstance(c, float) and math.isnan(c))]
        if bad:
            raise SchemaError(f"{where}: column {name!r} categories must be plain values "
                              f"(text, numbers, true/false), got {bad[0]!r:.60}")
        try:
            dupes = len(set(cats)) != len(cats)
        except TypeError:
            dupes = False
        if dupes:
            raise SchemaError(f"{where}: column {name!r} lists a category more than once")


def _default_dtype(kind: ColumnKind) -> str:
    return {ColumnKind.CONTINUOUS: "float64", ColumnKind.INTEGER: "int64",
            ColumnKind.BOOLEAN: "object", ColumnKind.DATETIME: "object"}.get(kind, "object")


def _enum(enum: type[Enum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = [e.value for e in enum]
        raise SchemaError(f"{where} is {value!r}; choose one of {choices}") from None
