"""The declared (public-only) schema of a DP run: nothing in it is read from the rows.

Under differential privacy the schema may hold only what the data owner declares, because
every fact inferred from the private table (a column's kind, its nullability, a date
format, the recording precision, min/max, categories) is a release outside the ledger:
adding one row can turn a column from categorical to integer, or add a third decimal to
every synthetic value. :func:`declared_schema` builds the schema from the YAML alone and
refuses, listing *every* missing declaration at once, when something the run needs would
otherwise be inferred.

What a DP run needs declared, per column of the data (after ``data.drop``):

* ``kind`` -- always;
* ``nullable`` -- for learned kinds (not ``id``/``text``); ``false`` columns with missing
  values are refused at load time, ``true`` columns get a missing slot whose rate is
  learned under DP;
* ``precision`` (decimals) -- continuous columns; ``precision: null`` declares full
  precision (floats are then output unrounded);
* ``datetime_format`` -- datetime columns (it fixes both the output text and the unit:
  the finest of day / hour / minute / second among its directives);
* ``min``/``max``/``categories`` are optional (estimated with DP when absent); when given
  they must be marked ``public: true``, since a declared fact is shipped as public.

Integers are output as whole numbers (precision 0 by kind); ``dtype`` defaults to the
kind's (``float64``, ``int64``, ``object``), so it is never read from the data either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdata.errors import ConfigError, SchemaError
from synthdata.schema.model import Column, ColumnKind, Schema

if TYPE_CHECKING:
    import pandas as pd

_NS_PER = {"day": 86_400 * 10**9, "hour": 3600 * 10**9, "minute": 60 * 10**9, "second": 10**9}
# strftime directives and the unit they resolve to (finest wins)
_DIRECTIVES = {"%d": "day", "%j": "day", "%x": "day", "%D": "day", "%F": "day",
               "%H": "hour", "%I": "hour", "%M": "minute", "%T": "second", "%S": "second",
               "%c": "second", "%X": "second", "%R": "minute", "%s": "second"}
_ORDER = ("day", "hour", "minute", "second")

INFER_HINT = ("`synthdata schema infer DATA -o SCHEMA.yaml --dp` drafts these keys, but running "
              "inference on the private data is itself outside the DP guarantee: use its "
              "output only after reviewing every value as public knowledge (remove learned "
              "min/max and categories that are not public)")


def datetime_unit_ns(fmt: str | None) -> int:
    """The output unit (nanoseconds) a datetime format records: its finest directive;
    a format without day-or-finer directives (e.g. ``%Y-%m``) still outputs whole days."""
    if not fmt:
        return _NS_PER["day"]
    found = [unit for d, unit in _DIRECTIVES.items() if d in fmt]
    finest = max(found, key=_ORDER.index) if found else "day"
    return _NS_PER[finest]


def _missing_fields(entry: Mapping[str, Any]) -> list[str]:
    """The declarations a DP run needs that ``entry`` (one YAML column) lacks."""
    if "kind" not in entry:
        return ["kind", "nullable"]
    try:
        kind = ColumnKind(entry["kind"])
    except ValueError:
        return []  # Column.from_dict names the bad kind
    if not kind.is_learned:
        return []
    missing = [] if "nullable" in entry else ["nullable"]
    if kind == ColumnKind.CONTINUOUS and "precision" not in entry:
        missing.append("precision")
    if kind == ColumnKind.DATETIME and not entry.get("datetime_format"):
        missing.append("datetime_format")
    learned_looking = [k for k in ("min", "max", "categories") if entry.get(k) is not None]
    if learned_looking and entry.get("public") is not True:
        missing.append(f"public: true (for the declared {'/'.join(learned_looking)})")
    return missing


def declared_schema(overrides: Any, data_columns: Sequence[str], *, name: str,
                    drop: Sequence[str] = (), where: str = "schema") -> Schema:
    """The schema of a DP run, built only from the declared YAML ``overrides``.

    ``data_columns`` (names are public metadata) fixes the column order and which columns
    must be declared. Raises ``ConfigError`` listing every undeclared column and field.
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where}: a schema must be a YAML mapping")
    entries = overrides.get("columns") or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping)
                                                 and isinstance(e.get("name"), str)
                                                 for e in entries):
        raise ConfigError(f"{where}: 'columns' must be a list of entries with a 'name' (text)")
    by_name = {e["name"]: e for e in entries if e["name"] not in drop}
    wanted = [c for c in data_columns if c not in drop]
    problems = []
    for column in wanted:
        entry = by_name.get(column)
        if entry is None:
            problems.append(f"column {column!r} is not declared (needs at least kind, nullable)")
            continue
        missing = _missing_fields(entry)
        if missing:
            problems.append(f"column {column!r} lacks {', '.join(missing)}")
    extra = sorted(set(by_name) - set(wanted))
    if extra:
        raise ConfigError(f"{where}: column(s) {extra} are declared but not in the data; the "
                          f"data has {list(wanted)}")
    if problems:
        raise ConfigError(
            f"{where if entries else 'data.schema'}: privacy is set, so the schema must declare "
            "every fact the run would otherwise infer from the private rows; "
            + "; ".join(problems)
            + ". Fix: add these keys to the schema file given as data.schema (README, section "
            "'Differential privacy', lists them). " + INFER_HINT)
    data = {k: v for k, v in overrides.items() if k != "columns"}
    data["columns"] = [dict(by_name[c]) for c in wanted]
    data.setdefault("name", name)
    try:
        return Schema.from_dict(data, where=where)
    except SchemaError as err:
        raise ConfigError(str(err)) from None


MAX_DRAFT_DECIMALS = 6  # a column needing more decimals is drafted as full precision

DRAFT_HEADER = """\
# DRAFT of a declared (public) schema for a differentially private run.
# It was READ FROM THE DATA: running it on the private table is itself outside the DP
# guarantee, and nothing below is public until you have reviewed it. Keep a value only if
# it is public knowledge (a documented recording precision, a measurement that cannot be
# negative, a coding system's category list); otherwise delete it. Under DP only what this
# file declares is treated as public: precision rounds the output, `min: 0` with
# `public: true` keeps the output non-negative; bounds and categories you delete are
# estimated with DP on the ledger instead.
"""


DRAFT_SHARE = 0.999  # share of values that must sit on a precision's grid in a draft


def recording_decimals(values: np.ndarray, share: float = DRAFT_SHARE) -> int | None:
    """The fewest decimals (0..``MAX_DRAFT_DECIMALS``) at least ``share`` of the finite
    values are recorded with (a stray value with more decimals does not decide), or
    ``None`` (full precision). Reads the values: a draft, not a DP release."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return None
    tolerance = 1e-9 * np.maximum(1.0, np.abs(finite))
    for decimals in range(MAX_DRAFT_DECIMALS + 1):
        on_grid = np.abs(np.round(finite, decimals) - finite) <= tolerance
        if on_grid.mean() >= share:
            return decimals
    return None


def declared_dict(schema: Schema) -> dict[str, Any]:
    """``schema`` as a declared-schema mapping: like ``Schema.to_dict`` but every
    continuous column states ``precision`` (``null`` = full precision), which a DP run
    requires to be written out."""
    data = schema.to_dict()
    for entry, col in zip(data["columns"], schema.columns, strict=True):
        if col.kind == ColumnKind.CONTINUOUS:
            entry.setdefault("precision", None)
    return data


def draft_declared_schema(df: pd.DataFrame, *, name: str = "table") -> Schema:
    """A draft of the declared schema a DP run needs, proposed from ``df``.

    Kinds and nullability come from :meth:`Schema.infer`; continuous columns get the
    ``precision`` their values are recorded with; numeric columns whose values are all
    non-negative get ``min: 0`` marked ``public: true`` (the sign); two-valued (boolean)
    columns keep their two categories as public. Learned ranges and other category lists
    are left out, so a DP run estimates them on the ledger. Reading ``df`` is not private:
    the result is for the data custodian to review (see :data:`DRAFT_HEADER`), never to
    ship unreviewed.
    """
    inferred = Schema.infer(df, name=name)
    columns: list[Column] = []
    for col in inferred.columns:
        changes: dict[str, Any] = {"min": None, "max": None, "public": False}
        if col.kind in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER):
            values = _as_floats(df[col.name])
            if col.kind == ColumnKind.CONTINUOUS:
                changes["precision"] = recording_decimals(values)
            finite = values[np.isfinite(values)]
            if finite.size and finite.min() >= 0:
                changes.update(min=0, public=True)
        if col.kind.is_discrete:
            keep = col.kind == ColumnKind.BOOLEAN and col.categories is not None
            changes.update(categories=col.categories if keep else None, public=keep)
        columns.append(dataclasses.replace(col, **changes))
    return inferred.replace_columns(columns)


def _as_floats(series: pd.Series) -> np.ndarray:
    """The column as floats (missing as NaN)."""
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


__all__ = ["DRAFT_HEADER", "INFER_HINT", "datetime_unit_ns", "declared_dict", "declared_schema",
           "draft_declared_schema", "recording_decimals"]
