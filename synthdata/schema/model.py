"""Schema and Column: what each column is, so transformers and generators never guess."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.constraints.discover import discover
from synthdata.constraints.kinds import Constraint, constraint_from_dict, constraint_to_dict
from synthdata.errors import DataError, SchemaError
from synthdata.schema.column import MAX_PRECISION, Column
from synthdata.schema.infer import infer_columns
from synthdata.types import ColumnKind, PiiRole, to_native

# Column, ColumnKind, PiiRole, to_native and MAX_PRECISION live in synthdata.types and
# synthdata.schema.column; re-exported here, where callers have always found them.
__all__ = ["MAX_PRECISION", "SCHEMA_VERSION", "Column", "ColumnKind", "PiiRole", "Schema",
           "constraints_from_list", "load_yaml", "to_native"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Schema:
    """An ordered set of columns describing one table.

    Examples
    --------
    >>> schema = Schema.infer(df)                  # doctest: +SKIP
    >>> schema.save("schemas/flchain.yaml")        # doctest: +SKIP
    """

    columns: tuple[Column, ...]
    name: str = "table"
    primary_key: str | None = None
    notes: tuple[str, ...] = field(default=())
    # Rules every synthetic row obeys (synthdata.constraints kinds), enforced by every
    # generator; proposed ones come from discovery and are only reported until confirmed.
    constraints: tuple = ()
    proposed_constraints: tuple = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"schema {self.name!r} names column(s) {dupes} more than once")
        if isinstance(self.primary_key, (list, tuple)):
            raise SchemaError(f"schema {self.name!r}: primary key {list(self.primary_key)} is "
                              "composite; a single-table schema takes one key column. Declare "
                              "{kind: unique, columns: [...]} instead, or use a multi-table "
                              "schema (tables.<name>.primary_key takes a list)")
        if self.primary_key is not None and self.primary_key not in names:
            raise SchemaError(f"schema {self.name!r}: primary key {self.primary_key!r} is not a column")
        object.__setattr__(self, "constraints", tuple(self.constraints))
        object.__setattr__(self, "proposed_constraints", tuple(self.proposed_constraints))
        for rule in (*self.constraints, *self.proposed_constraints):
            rule.check_schema(self)

    # -- access -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def __getitem__(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise SchemaError(f"schema {self.name!r} has no column {name!r}; columns are {self.names}")

    def columns_of(self, *kinds: ColumnKind) -> list[Column]:
        return [c for c in self.columns if c.kind in kinds]

    def roles(self, role: PiiRole) -> list[str]:
        return [c.name for c in self.columns if c.pii == role]

    # -- construction ------------------------------------------------------------------
    @classmethod
    def infer(cls, df: pd.DataFrame, *, name: str = "table",
              discover_constraints: bool = False) -> Schema:
        """Propose a schema for ``df`` (kinds, nullability, bounds, categories, formats).

        With ``discover_constraints=True`` the rules that hold on every row (inequalities,
        fixed combinations, lookups, sums) land in ``proposed_constraints`` for a person to
        confirm; they are a property of the data, so not for private data under DP.
        """
        from synthdata.io.sql import as_pandas

        df = as_pandas(df, where=f"table {name!r}")  # pandas as is; polars converted
        columns, primary_key, notes = infer_columns(df, name=name)
        schema = cls(columns=columns, name=name, primary_key=primary_key, notes=notes)
        if discover_constraints:
            schema = dataclasses.replace(schema, proposed_constraints=tuple(discover(df, schema)))
        return schema

    def replace_columns(self, columns: Iterable[Column]) -> Schema:
        """A schema with ``columns``; constraints naming a removed column are dropped."""
        columns = tuple(columns)
        names = {c.name for c in columns}
        keep = lambda rules: tuple(r for r in rules if set(r.names_in(self)) <= names)  # noqa: E731
        return dataclasses.replace(self, columns=columns, constraints=keep(self.constraints),
                                   proposed_constraints=keep(self.proposed_constraints))

    def with_constraints(self, *constraints: Any) -> Schema:
        """A new schema that also declares ``constraints`` (e.g. ``sd.Inequality(...)``)."""
        bad = [c for c in constraints if not isinstance(c, Constraint)]
        if bad:
            raise SchemaError(f"with_constraints() takes constraint objects (sd.Inequality, "
                              f"sd.Range, ...), got {bad[0]!r}")
        return dataclasses.replace(self, constraints=(*self.constraints, *constraints))

    def with_overrides(self, overrides: Mapping[str, Any], *, where: str = "schema") -> Schema:
        """Return a schema where fields given in ``overrides`` (schema-dict form) win.

        Columns named in the overrides replace the matching fields of inferred columns;
        a column the table does not have is a ``SchemaError``.
        """
        if not isinstance(overrides, Mapping):
            raise SchemaError(f"{where}: a schema file must be a mapping with 'columns' (a "
                              f"list of column entries), got {type(overrides).__name__}")
        unknown = sorted(str(k) for k in set(overrides) - {
            "name", "columns", "primary_key", "version", "notes", "constraints"})
        if unknown:
            raise SchemaError(f"{where}: unknown top-level key(s) {unknown}; "
                              "allowed: name, columns, primary_key, version, constraints")
        by_name = {c.name: c for c in self.columns}
        entries = overrides.get("columns") or []
        if not isinstance(entries, list):
            raise SchemaError(f"{where}: 'columns' must be a list of column entries")
        for entry in entries:
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise SchemaError(f"{where}: every entry under 'columns' needs a 'name'")
            col_name = entry["name"]
            if not isinstance(col_name, str) or col_name not in by_name:
                raise SchemaError(f"{where}: column {col_name!r} is not in the data; "
                                  f"the data has {list(by_name)}")
            base = by_name[col_name].to_dict()
            if "kind" in entry and entry["kind"] != base["kind"]:
                # a new kind invalidates inferred kind-specific fields
                for key in ("categories", "datetime_format", "min", "max", "precision"):
                    base.pop(key, None)
                base.pop("dtype", None)
                base["dtype"] = by_name[col_name].dtype
            base.update(entry)
            by_name[col_name] = Column.from_dict(base, where=where)
        declared, proposed = self.constraints, self.proposed_constraints
        if overrides.get("constraints") is not None:  # the file's list replaces both
            declared, proposed = constraints_from_list(overrides["constraints"], where)
        _check_top_level(overrides, where)
        return Schema(columns=tuple(by_name[c.name] for c in self.columns),
                      name=overrides.get("name", self.name),
                      primary_key=overrides.get("primary_key", self.primary_key),
                      notes=self.notes, constraints=declared, proposed_constraints=proposed)

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SCHEMA_VERSION, "name": self.name}
        if self.primary_key:
            out["primary_key"] = self.primary_key
        out["columns"] = [c.to_dict() for c in self.columns]
        if self.constraints or self.proposed_constraints:

            out["constraints"] = [constraint_to_dict(c) for c in self.constraints] + \
                [constraint_to_dict(c, proposed=True) for c in self.proposed_constraints]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "schema") -> Schema:
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where}: expected a mapping with 'columns', got {type(data).__name__}")
        unknown = sorted(str(k) for k in set(data) - {
            "version", "name", "columns", "primary_key", "notes", "constraints"})
        if unknown:
            raise SchemaError(f"{where}: unknown top-level key(s) {unknown}")
        version = data.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise SchemaError(f"{where}: schema version {version} is not supported "
                              f"(this synthdata reads version {SCHEMA_VERSION})")
        entries = data.get("columns")
        if not isinstance(entries, list) or not entries:
            raise SchemaError(f"{where}: 'columns' must be a non-empty list")
        columns = tuple(Column.from_dict(e, where=where) for e in entries)
        declared, proposed = constraints_from_list(data.get("constraints") or [], where)
        _check_top_level(data, where)
        return cls(columns=columns, name=str(data.get("name", "table")),
                   primary_key=data.get("primary_key"), constraints=declared,
                   proposed_constraints=proposed)

    def save(self, path: str | Path) -> Path:
        """Write the schema as YAML (atomically)."""
        import yaml

        from synthdata.io.files import atomic_write_text

        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        return atomic_write_text(Path(path), text)

    @classmethod
    def load(cls, path: str | Path, *, data: pd.DataFrame | None = None) -> Schema:
        """Read a schema from YAML: a complete schema, or an override file with ``data``.

        A complete schema (every column has a ``kind``, as ``schema infer`` writes it) is
        read as is (and ``data``, when given, is checked against it). An override file
        (like ``schemas/flchain.yaml``: some columns name only ``pii`` or a description)
        needs the table: the schema is inferred from ``data`` and the file's fields win.

        Examples
        --------
        >>> schema = Schema.load("schema.yaml")                               # doctest: +SKIP
        >>> schema = Schema.load("schemas/flchain.yaml", data=df)             # doctest: +SKIP
        """
        raw = load_yaml(path)
        where = str(path)
        partial = _override_columns(raw)
        if not partial:
            schema = cls.from_dict(raw, where=where)
            if data is not None:
                schema.validate(data, where="data")
            return schema
        if data is None:
            raise SchemaError(
                f"{where} is an override file, not a complete schema: column(s) {partial[:5]} "
                "give no 'kind', so the table is needed to infer the rest; call "
                "Schema.load(path, data=df) (or Schema.infer(df).with_overrides(...)), or "
                "write a complete schema with `synthdata schema infer DATA -o schema.yaml`")
        name = raw.get("name") if isinstance(raw.get("name"), str) else "table"
        return cls.infer(data, name=name).with_overrides(raw, where=where)

    # -- validation --------------------------------------------------------------------
    def validate(self, df: pd.DataFrame, *, where: str = "data") -> None:
        """Raise ``DataError`` when ``df`` does not fit this schema (missing columns,
        unexpected nulls, non-numeric values in numeric columns, and the table shapes
        :func:`synthdata.schema.infer.check_frame` refuses: duplicate names, nested
        values, non-finite or extreme numbers)."""
        from synthdata.schema.infer import check_frame

        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
        check_frame(df[[c for c in df.columns if c in set(self.names)]]
                    if df.columns.is_unique else df, where=where)
        missing = [c for c in self.names if c not in df.columns]
        if missing:
            raise DataError(f"{where}: column(s) {missing} named in schema {self.name!r} are "
                            f"missing; the data has {list(df.columns)}")
        for col in self.columns:
            series = df[col.name]
            nulls = int(series.isna().sum())
            if nulls and not col.nullable and col.kind.is_learned:
                raise DataError(f"{where}: column {col.name!r} has {nulls} missing value(s) but "
                                "the schema says nullable: false; set nullable: true or fill them")
            if col.kind.is_numeric:
                _check_numeric(series, col, where)
            if col.kind == ColumnKind.DATETIME:
                _check_datetime(series, col, where)


def _check_top_level(data: Mapping[str, Any], where: str) -> None:
    for key in ("name", "primary_key"):
        value = data.get(key)
        if key == "primary_key" and isinstance(value, (list, tuple)):
            raise SchemaError(f"{where}: primary_key {list(value)!r:.60} is composite; a "
                              "single-table schema takes one key column. Declare {kind: "
                              "unique, columns: [...]} instead, or use a multi-table schema "
                              "(tables.<name>.primary_key takes a list)")
        if value is not None and not isinstance(value, str):
            raise SchemaError(f"{where}: {key} must be text, got {value!r:.60}")
    if data.get("notes") is not None and not isinstance(data["notes"], list):
        raise SchemaError(f"{where}: notes must be a list of text")


def constraints_from_list(entries: Any, where: str) -> tuple[tuple, tuple]:
    """(declared, proposed) constraints from the YAML ``constraints:`` list."""
    if not isinstance(entries, list):
        raise SchemaError(f"{where}: 'constraints' must be a list of constraint entries")
    declared: list[Any] = []
    proposed: list[Any] = []
    for entry in entries:
        rule, is_proposed = constraint_from_dict(entry, where=where)
        (proposed if is_proposed else declared).append(rule)
    return tuple(declared), tuple(proposed)


def _check_numeric(series: pd.Series, col: Column, where: str) -> None:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return
    converted = pd.to_numeric(series, errors="coerce")
    inf = np.isinf(converted.to_numpy(dtype=float, na_value=np.nan))
    if inf.any():
        raise DataError(f"{where}: column {col.name!r} has {int(inf.sum())} infinite value(s) "
                        "(e.g. 'inf'); replace them with finite values or leave them empty")
    bad = converted.isna() & series.notna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: column {col.name!r} has {int(bad.sum())} non-numeric value(s) "
                        f"(first: {series.iloc[first]!r}, row {first}); declare it categorical in "
                        "the schema or clean the values")


def _check_datetime(series: pd.Series, col: Column, where: str) -> None:
    if pd.api.types.is_datetime64_any_dtype(series):
        return
    parsed = pd.to_datetime(series, format=col.datetime_format, errors="coerce")
    bad = parsed.isna() & series.notna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: column {col.name!r} has {int(bad.sum())} value(s) that do not "
                        f"match datetime format {col.datetime_format!r} (first: "
                        f"{series.iloc[first]!r}, row {first})")


def _override_columns(raw: Any) -> list[str]:
    """Columns of a schema mapping that give no ``kind`` (an override file's entries)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("columns"), list):
        return []
    return [str(e.get("name")) for e in raw["columns"]
            if isinstance(e, Mapping) and "kind" not in e]


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with errors that name the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"YAML file not found: {p}")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise SchemaError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except yaml.YAMLError as err:
        raise SchemaError(f"{p}: not valid YAML: {err}") from err
