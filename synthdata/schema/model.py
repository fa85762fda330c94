"""Schema and Column: what each column is, so transformers and generators never guess."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import DataError, SchemaError

SCHEMA_VERSION = 1
MAX_PRECISION = 12  # decimals a continuous column may declare


class ColumnKind(str, Enum):
    """What a column holds; decides its transformer."""

    CONTINUOUS = "continuous"
    INTEGER = "integer"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    ID = "id"
    TEXT = "text"

    @property
    def is_numeric(self) -> bool:
        return self in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER)

    @property
    def is_discrete(self) -> bool:
        return self in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)

    @property
    def is_learned(self) -> bool:
        """Ids and free text are never learned from the data."""
        return self not in (ColumnKind.ID, ColumnKind.TEXT)


class PiiRole(str, Enum):
    """Privacy role of a column (used by de-identification and risk metrics)."""

    DIRECT = "direct"
    QUASI = "quasi"
    SENSITIVE = "sensitive"
    # Reviewed and not an identifier: silences the identifier check for this column
    # (synthdata.medical.identifiers); de-identification leaves it as it is.
    NONE = "none"


def to_native(value: Any) -> Any:
    """Convert numpy/pandas scalars to plain Python values (YAML/JSON safe)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        name = data.get("name")
        if unknown:
            raise SchemaError(f"{where}: column {name!r} has unknown key(s) {unknown}; "
                              f"allowed keys are {sorted(known)}")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}: every column needs a non-empty 'name'")
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


def _default_dtype(kind: ColumnKind) -> str:
    return {ColumnKind.CONTINUOUS: "float64", ColumnKind.INTEGER: "int64",
            ColumnKind.BOOLEAN: "object", ColumnKind.DATETIME: "object"}.get(kind, "object")


def _enum(enum: type[Enum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = [e.value for e in enum]  # type: ignore[attr-defined]
        raise SchemaError(f"{where} is {value!r}; choose one of {choices}") from None


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
        from synthdata.schema.infer import infer_schema

        schema = infer_schema(df, name=name)
        if discover_constraints:
            from synthdata.constraints.discover import discover

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
        from synthdata.constraints.kinds import Constraint

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
        unknown = sorted(set(overrides) - {"name", "columns", "primary_key", "version", "notes",
                                           "constraints"})
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
            if col_name not in by_name:
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
            declared, proposed = _constraints_from_list(overrides["constraints"], where)
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
            from synthdata.constraints.kinds import constraint_to_dict

            out["constraints"] = [constraint_to_dict(c) for c in self.constraints] + \
                [constraint_to_dict(c, proposed=True) for c in self.proposed_constraints]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "schema") -> Schema:
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where}: expected a mapping with 'columns', got {type(data).__name__}")
        unknown = sorted(set(data) - {"version", "name", "columns", "primary_key", "notes",
                                      "constraints"})
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
        declared, proposed = _constraints_from_list(data.get("constraints") or [], where)
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
    def load(cls, path: str | Path) -> Schema:
        """Read a complete schema from YAML."""
        return cls.from_dict(load_yaml(path), where=str(path))

    # -- validation --------------------------------------------------------------------
    def validate(self, df: pd.DataFrame, *, where: str = "data") -> None:
        """Raise ``DataError`` when ``df`` does not fit this schema (missing columns,
        unexpected nulls, non-numeric values in numeric columns)."""
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


def _constraints_from_list(entries: Any, where: str) -> tuple[tuple, tuple]:
    """(declared, proposed) constraints from the YAML ``constraints:`` list."""
    from synthdata.constraints.kinds import constraint_from_dict

    if not isinstance(entries, list):
        raise SchemaError(f"{where}: 'constraints' must be a list of constraint entries")
    declared, proposed = [], []
    for entry in entries:
        rule, is_proposed = constraint_from_dict(entry, where=where)
        (proposed if is_proposed else declared).append(rule)
    return tuple(declared), tuple(proposed)


def _check_numeric(series: pd.Series, col: Column, where: str) -> None:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return
    converted = pd.to_numeric(series, errors="coerce")
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
