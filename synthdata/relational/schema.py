"""Multi-table schemas: tables, primary keys, foreign keys (parent -> child), integrity checks.

A YAML file holds one schema per table plus the links between them::

    version: 1
    name: pbc
    tables:
      pbc:     {primary_key: id, columns: [...]}          # Schema entries, as in single-table files
      pbcseq:
        primary_key: [id, day]                             # composite keys are lists
        columns: [...]
        constraints:                                       # rules within one table
          - {kind: range, column: day, low: 0, high: futime}   # enrolment <= visit <= follow-up end
    foreign_keys:
      - child: pbcseq
        column: id
        parent: pbc
        parent_column: id
        order_by: day           # time column kept in order within each parent
        parent_level: [futime, status, trt, age, sex]   # constant within a parent
    constraints:                # rules across a link: qualified table.column names
      - {kind: inequality, low: labs.days, high: subjects.futime}   # (as in schemas/nafld.yaml)
    survival:
      pbc: {time: time, event: status, event_values: [2]}

Only ``child``/``column``/``parent``/``parent_column`` are needed for integrity checks; the other
keys guide relational generation (:mod:`synthdata.relational.synthesizer`). ``enforce: false`` keeps a
link for documentation while integrity checks only count its orphans (e.g. nafld1.case.id).

Time order and bounds are declared as constraints (:mod:`synthdata.constraints`): a table's
own ``constraints:`` list as in single-table schemas, and a top-level ``constraints:`` list of
``inequality``/``range`` rules between a child table and its parent, with every column written
``table.column``. The real data must obey every declared rule (``validate`` names the rule and
how many rows break it); every synthetic output obeys them (see ``constraint_violations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthdata.errors import DataError, SchemaError
from synthdata.relational.keys import (
    CompositeLink,
    compile_link,
    declared_table,
    pack,
    type_mismatch,
    unpack,
)
from synthdata.schema.model import ColumnKind, Schema, load_yaml

MULTI_SCHEMA_VERSION = 1
TIME_UNITS = ("days", "months", "years")
_FK_KEYS = {"child", "column", "parent", "parent_column", "order_by", "parent_level", "context",
            "enforce"}
_TOP_KEYS = ("version", "name", "tables", "foreign_keys", "survival", "constraints")


@dataclass(frozen=True)
class ForeignKey:
    """``child.column`` points to ``parent.parent_column`` (many children per parent)."""

    child: str
    column: str
    parent: str
    parent_column: str
    order_by: str | None = None
    parent_level: tuple[str, ...] = ()
    context: tuple[str, ...] | None = None
    enforce: bool = True
    # a composite link is carried by one surrogate column: its label names the declared ones
    display: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"child": self.child, "column": self.column, "parent": self.parent,
                               "parent_column": self.parent_column}
        if self.order_by is not None:
            out["order_by"] = self.order_by
        if self.parent_level:
            out["parent_level"] = list(self.parent_level)
        if self.context is not None:
            out["context"] = list(self.context)
        if not self.enforce:
            out["enforce"] = False
        return out

    @property
    def label(self) -> str:
        if self.display is not None:
            return self.display
        return f"{self.child}.{self.column} -> {self.parent}.{self.parent_column}"


@dataclass(frozen=True)
class SurvivalSpec:
    """Time-to-event endpoint of a table: ``time`` column and ``event`` indicator."""

    time: str
    event: str
    event_values: tuple[Any, ...] = (1,)
    unit: str | None = None   # days | months | years: the report plots days/months in years

    def __post_init__(self) -> None:
        if self.unit not in (None, *TIME_UNITS):
            raise SchemaError(f"survival time {self.time!r}: unit is {self.unit!r}; choose one "
                              f"of {list(TIME_UNITS)}")

    def time_unit(self, schema: Schema | None = None) -> str | None:
        """The declared unit, else 'days'/'months'/'years' when the time column's
        description says so (e.g. "number of days between registration and ...")."""
        if self.unit is not None:
            return self.unit
        col = schema[self.time] if schema is not None and self.time in schema else None
        text = f" {(col.description or '') if col is not None else ''} ".lower()
        for unit in TIME_UNITS:
            if f" {unit} " in text or f" {unit}," in text or f"{unit})" in text:
                return unit
        return None

    def is_event(self, series: pd.Series) -> pd.Series:
        return series.isin(list(self.event_values))


@dataclass(frozen=True)
class IntegrityReport:
    """What :meth:`MultiTableSchema.check` found. ``problems`` empty means referentially sound."""

    n_rows: dict[str, int]
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    n_orphans: dict[str, int] = field(default_factory=dict)
    n_duplicate_keys: dict[str, int] = field(default_factory=dict)

    @property
    def is_ok(self) -> bool:
        return not self.problems

    @property
    def integrity(self) -> float:
        """Share of enforced child rows whose key points to an existing parent (1.0 = 100%)."""
        total = sum(self.n_rows.get(label.split(".")[0], 0) for label in self.n_orphans)
        bad = sum(self.n_orphans.values())
        return 1.0 if total == 0 else 1.0 - bad / total

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": dict(self.n_rows), "problems": list(self.problems),
                "warnings": list(self.warnings), "n_orphans": dict(self.n_orphans),
                "n_duplicate_keys": dict(self.n_duplicate_keys), "integrity": self.integrity}


def _key_tuple(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SchemaError(f"{where}: primary key must be a column name or a list of names, got {value!r}")


@dataclass(frozen=True)
class MultiTableSchema:
    """Several tables linked by keys.

    Parameters
    ----------
    tables
        ``{table name: Schema}``.
    primary_keys
        ``{table name: column or (columns...)}``; tables without a key may be left out.
    foreign_keys
        ``ForeignKey`` objects or tuples ``(child, fk_column, parent, pk_column)``.
    survival
        ``{table name: SurvivalSpec}`` for time-to-event endpoints.
    constraints
        ``Inequality``/``Range`` rules between a child table and its parent, columns written
        ``table.column`` (rules within one table belong in that table's ``Schema``).

    Examples
    --------
    >>> ms = MultiTableSchema.load("schemas/pbc.yaml")         # doctest: +SKIP
    >>> ms.validate({"pbc": pbc, "pbcseq": pbcseq})            # doctest: +SKIP
    """

    tables: Mapping[str, Schema]
    primary_keys: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    # after __post_init__ every entry is a ForeignKey; a 4-tuple (child, column, parent,
    # parent_column) is also accepted at run time and converted there
    foreign_keys: Sequence[ForeignKey] = ()
    survival: Mapping[str, SurvivalSpec] = field(default_factory=dict)
    name: str = "dataset"
    constraints: Sequence[Any] = ()
    composite_keys: Sequence[CompositeLink] = ()

    def __post_init__(self) -> None:
        tables = dict(self.tables)
        if not tables:
            raise SchemaError(f"multi-table schema {self.name!r} has no tables")
        for tname, schema in tables.items():
            if not isinstance(schema, Schema):
                raise SchemaError(f"table {tname!r}: expected a Schema, got {type(schema).__name__}")
        pks: dict[str, tuple[str, ...]] = {}
        for tname, key in dict(self.primary_keys).items():
            if tname not in tables:
                raise SchemaError(f"primary key given for unknown table {tname!r}; tables are {list(tables)}")
            cols = _key_tuple(key, f"table {tname!r}")
            if cols is None:
                continue
            missing = [c for c in cols if c not in tables[tname]]
            if missing:
                raise SchemaError(f"table {tname!r}: primary key column(s) {missing} are not in its "
                                  f"schema; columns are {tables[tname].names}")
            pks[tname] = cols
        fks = []
        for fk in self.foreign_keys:
            if not isinstance(fk, ForeignKey):
                if not (isinstance(fk, (tuple, list)) and len(fk) == 4):
                    raise SchemaError(f"foreign key {fk!r}: expected (child, column, parent, parent_column)")
                fk = ForeignKey(*fk)
            fks.append(fk)
            for tname, col in ((fk.child, fk.column), (fk.parent, fk.parent_column)):
                if tname not in tables:
                    raise SchemaError(f"foreign key {fk.label}: table {tname!r} is not declared; "
                                      f"tables are {list(tables)}")
                if col not in tables[tname]:
                    raise SchemaError(f"foreign key {fk.label}: column {col!r} is not in table "
                                      f"{tname!r}; columns are {tables[tname].names}")
            if pks.get(fk.parent) != (fk.parent_column,):
                raise SchemaError(f"foreign key {fk.label}: {fk.parent}.{fk.parent_column} must be the "
                                  f"primary key of {fk.parent!r} (declare primary_key: "
                                  f"{fk.parent_column}; a composite key is a list, linked by "
                                  "a list of as many columns)")
            child = tables[fk.child]
            if fk.order_by is not None and fk.order_by not in child:
                raise SchemaError(f"foreign key {fk.label}: order_by column {fk.order_by!r} is not "
                                  f"in table {fk.child!r}")
            for col in fk.parent_level:
                if col not in child:
                    raise SchemaError(f"foreign key {fk.label}: parent_level column {col!r} is not "
                                      f"in table {fk.child!r}")
            for col in fk.context or ():
                if col not in tables[fk.parent]:
                    raise SchemaError(f"foreign key {fk.label}: context column {col!r} is not in "
                                      f"table {fk.parent!r}")
        surv = {}
        for tname, spec in dict(self.survival).items():
            if not isinstance(spec, SurvivalSpec):
                spec = SurvivalSpec(**spec)
            for col in (spec.time, spec.event):
                if tname not in tables or col not in tables[tname]:
                    raise SchemaError(f"survival for table {tname!r}: column {col!r} is not declared")
            surv[tname] = spec
        object.__setattr__(self, "tables", tables)
        object.__setattr__(self, "primary_keys", pks)
        object.__setattr__(self, "foreign_keys", tuple(fks))
        object.__setattr__(self, "survival", surv)
        object.__setattr__(self, "constraints", tuple(self.constraints))
        object.__setattr__(self, "composite_keys", tuple(self.composite_keys))
        self._fill_history_groups()
        for rule in self.constraints:
            self._check_link_rule(rule)

    def _fill_history_groups(self) -> None:
        """Within-patient rules left without ``by``/``order`` take the table's link: its
        foreign key column and ``order_by`` (qualified ``table.column`` at the top level)."""
        import dataclasses

        from synthdata.constraints.kinds import HistoryRule

        def link_of(tname: str) -> ForeignKey | None:
            links = [fk for fk in self.foreign_keys if fk.child == tname and fk.enforce
                     and fk.parent != tname]
            return links[0] if links else None

        tables = dict(self.tables)
        for tname, schema in tables.items():
            link = link_of(tname)
            if link is None:
                continue
            fill = lambda rules: tuple(  # noqa: E731
                r.with_group(link.column, link.order_by) if isinstance(r, HistoryRule) else r
                for r in rules)
            declared, proposed = fill(schema.constraints), fill(schema.proposed_constraints)
            if declared != schema.constraints or proposed != schema.proposed_constraints:
                try:
                    tables[tname] = dataclasses.replace(schema, constraints=declared,
                                                        proposed_constraints=proposed)
                except SchemaError as err:
                    raise SchemaError(f"table {tname!r}: {err}") from None
        object.__setattr__(self, "tables", tables)
        for tname, schema in tables.items():
            for rule in (*schema.constraints, *schema.proposed_constraints):
                if isinstance(rule, HistoryRule):
                    rule.check_group(f"table {tname!r}")
        rules = []
        for rule in self.constraints:
            if isinstance(rule, HistoryRule):
                child = self.link_rule_table(rule)
                link = link_of(child)
                if link is not None:
                    rule = rule.with_group(f"{child}.{link.column}", None if link.order_by is None
                                           else f"{child}.{link.order_by}")
                rule.check_group("constraints across tables")
            rules.append(rule)
        object.__setattr__(self, "constraints", tuple(rules))

    # -- structure -----------------------------------------------------------------------
    def children_of(self, parent: str, *, enforced_only: bool = True) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys
                if fk.parent == parent and fk.child != parent and (fk.enforce or not enforced_only)]

    def parent_link(self, table: str) -> ForeignKey | None:
        """The one enforced link that makes ``table`` a child (None for a root table)."""
        links = [fk for fk in self.foreign_keys if fk.child == table and fk.enforce
                 and fk.parent != table]
        if len(links) > 1:
            raise SchemaError(f"table {table!r} has {len(links)} parent tables "
                              f"({[fk.parent for fk in links]}); relational generation supports one")
        return links[0] if links else None

    def order(self) -> list[str]:
        """Tables in generation order: every parent before its children."""
        done: list[str] = []
        pending = list(self.tables)
        while pending:
            progressed = False
            for t in list(pending):
                link = self.parent_link(t)
                if link is None or link.parent in done:
                    done.append(t)
                    pending.remove(t)
                    progressed = True
            if not progressed:
                raise SchemaError(f"foreign keys form a cycle among tables {pending}")
        return done

    # -- rules across a link --------------------------------------------------------------
    def _check_link_rule(self, rule: Any) -> None:
        from synthdata.constraints.kinds import HistoryRule, Inequality, Range

        if not isinstance(rule, (Inequality, Range, HistoryRule)):
            raise SchemaError(f"constraint {rule.describe()!r} ({rule.kind}): only inequality, "
                              "range and within-patient rules (monotone, time_derived, "
                              "event_consistency, conditional) may span tables; put other kinds "
                              "in a table's own constraints list")
        child = self.link_rule_table(rule)
        rule.check_schema(self.joined_schema(child))

    def link_rule_table(self, rule: Any) -> str:
        """The child table a cross-table rule is about (its columns' tables: child + parent)."""
        names = [n for n in (*rule.column_names, *(
            v for v in (getattr(rule, "low", None), getattr(rule, "high", None))
            if isinstance(v, str) and "." in v and v.split(".", 1)[0] in self.tables))]
        tables = []
        for name in names:
            tname, _ = self.split_qualified(name, f"constraint {rule.describe()!r}")
            if tname not in tables:
                tables.append(tname)
        for tname in tables:
            link = self.parent_link(tname)
            if set(tables) <= {tname, *([link.parent] if link else [])}:
                return tname
        raise SchemaError(f"constraint {rule.describe()!r} spans tables {tables}: a rule may "
                          "only relate a table to itself or to its parent table")

    def split_qualified(self, name: str, what: str,
                        error: type[Exception] = SchemaError) -> tuple[str, str]:
        """``"table.column"`` -> ``(table, column)`` (column names may hold dots); raises
        ``error`` naming ``what`` when the table or the column is unknown."""
        tname, _, column = str(name).partition(".")
        if tname not in self.tables or not column:
            raise error(f"{what}: {name!r} must be written table.column with a table among "
                        f"{list(self.tables)}")
        if column not in self.tables[tname]:
            raise error(f"{what}: table {tname!r} has no column {column!r}; columns are "
                        f"{self.tables[tname].names}")
        return tname, column

    def joined_schema(self, table: str) -> Schema:
        """``table``'s columns and its parent's, each named ``table.column``."""
        import dataclasses

        link = self.parent_link(table)
        cols = [dataclasses.replace(c, name=f"{t}.{c.name}")
                for t in [table, *([link.parent] if link else [])] for c in self.tables[t].columns]
        return Schema(columns=tuple(cols), name=f"{table} joined with its parent")

    def joined_view(self, tables: Mapping[str, pd.DataFrame], table: str) -> pd.DataFrame:
        """``table``'s rows with their parent row's columns (``table.column`` names)."""
        link = self.parent_link(table)
        child = tables[table].add_prefix(f"{table}.")
        if link is None:
            return child
        parent = tables[link.parent].drop_duplicates(link.parent_column)
        parent = parent.set_index(link.parent_column, drop=False).add_prefix(f"{link.parent}.")
        joined = parent.reindex(tables[table][link.column].to_numpy())
        return pd.concat([child.reset_index(drop=True), joined.reset_index(drop=True)], axis=1)

    def constraint_violations(self, tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
        """Rows breaking each declared rule: ``"<table>: <rule>"`` for a table's own rules,
        the rule itself (qualified names) for rules across a link."""
        out: dict[str, int] = {}
        for tname, schema in self.tables.items():
            if tname in tables:
                for rule in schema.constraints:
                    out[f"{tname}: {rule.describe()}"] = int(rule.violations(tables[tname], schema).sum())
        for rule in self.constraints:
            child = self.link_rule_table(rule)
            view = self.joined_view(tables, child)
            out[rule.describe()] = int(rule.violations(view, self.joined_schema(child)).sum())
        return out

    # -- integrity -------------------------------------------------------------------------
    def check(self, tables: Mapping[str, pd.DataFrame]) -> IntegrityReport:
        """Count missing tables/columns, null or duplicate keys and orphan children."""
        if self.composite_keys:
            try:
                tables = self.pack_keys(tables)
            except DataError as err:
                return IntegrityReport(n_rows={t: len(df) for t, df in tables.items()},
                                       problems=(str(err),))
        problems: list[str] = []
        warnings: list[str] = []
        n_rows = {t: len(df) for t, df in tables.items()}
        orphans: dict[str, int] = {}
        dupes: dict[str, int] = {}
        missing = [t for t in self.tables if t not in tables]
        if missing:
            problems.append(f"table(s) {missing} are missing; expected {list(self.tables)}")
        for tname, cols in self.primary_keys.items():
            if tname not in tables:
                continue
            df = tables[tname]
            absent = [c for c in cols if c not in df.columns]
            if absent:
                problems.append(f"table {tname!r}: key column(s) {absent} are missing")
                continue
            nulls = int(df[list(cols)].isna().any(axis=1).sum())
            if nulls:
                problems.append(f"table {tname!r}: {nulls} row(s) have a missing primary key "
                                f"{'/'.join(cols)}")
            dup = df.duplicated(list(cols), keep=False)
            dupes[tname] = int(dup.sum())
            if dup.any():
                first = df.loc[dup, list(cols)].iloc[0].tolist()
                problems.append(f"table {tname!r}: {int(dup.sum())} row(s) share a primary key "
                                f"{'/'.join(cols)} with another row (first: {first}); keys must be unique")
        for fk in self.foreign_keys:
            if fk.child not in tables or fk.parent not in tables:
                continue
            child, parent = tables[fk.child], tables[fk.parent]
            absent = [f"{t}.{c}" for t, c, df in ((fk.child, fk.column, child),
                                                   (fk.parent, fk.parent_column, parent))
                      if c not in df.columns]
            if absent:
                problems.append(f"{fk.label}: key column(s) {absent} are missing in the data")
                continue
            values = child[fk.column]
            mismatch = type_mismatch(values, parent[fk.parent_column])
            if mismatch:
                problems.append(f"{fk.label}: type mismatch: {fk.child}.{fk.column} holds "
                                f"{mismatch[0]} but {fk.parent}.{fk.parent_column} holds "
                                f"{mismatch[1]}; the same key must be written the same way in "
                                "both tables")
                continue
            known = pd.Index(parent[fk.parent_column].dropna().unique())
            bad = values.notna() & ~values.isin(known)
            label = f"{fk.child}.{fk.column}"
            n_bad = int(bad.sum())
            if fk.enforce:
                orphans[label] = n_bad
                n_null = int(values.isna().sum())
                if n_null:
                    problems.append(f"{fk.label}: {n_null} child row(s) have no parent key")
            if n_bad:
                first = values[bad].iloc[:3].tolist()
                msg = (f"{fk.label}: {n_bad} orphan row(s) in {fk.child!r} point to no row of "
                       f"{fk.parent!r} (first keys: {first})")
                (problems if fk.enforce else warnings).append(msg)
        return IntegrityReport(n_rows=n_rows, problems=tuple(problems), warnings=tuple(warnings),
                               n_orphans=orphans, n_duplicate_keys=dupes)

    def check_keys(self, tables: Mapping[str, pd.DataFrame]) -> IntegrityReport:
        """Raise ``DataError`` naming every missing table or key column, missing or duplicate
        key and dangling foreign key (tables and columns named); return the report."""
        report = self.check(tables)
        if not report.is_ok:
            raise DataError(f"dataset {self.name!r} fails referential integrity: "
                            + "; ".join(report.problems))
        return report

    def validate(self, tables: Mapping[str, pd.DataFrame]) -> IntegrityReport:
        """Raise ``DataError`` listing every integrity problem; return the report when sound.

        Also checks each table against its own schema (columns, nulls, numeric values).
        """
        tables = self.pack_keys(tables)
        report = self.check_keys(tables)
        for tname, schema in self.tables.items():
            schema.validate(tables[tname], where=f"table {tname!r}")
        broken = {rule: n for rule, n in self.constraint_violations(tables).items() if n}
        if broken:
            raise DataError(f"dataset {self.name!r} breaks declared constraint(s): "
                            + "; ".join(f"{rule!r} on {n} row(s)" for rule, n in broken.items())
                            + "; fix the data or remove the rule from the schema")
        return report

    def apply_real_violation_policy(self, tables: Mapping[str, pd.DataFrame]
                                    ) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
        """Apply each declared rule's ``on_real_violation`` to the real tables.

        ``drop`` removes the rows that break the rule (and, for a parent table, their
        children); ``repair`` fixes them with the rule's ``repair``; ``error`` (default)
        leaves them for :meth:`validate` to refuse. Returns the tables and one entry per
        rule with a policy: ``{"rule", "table", "policy", "rows"}`` (rows broken in the real
        data), plus ``"rows dropped with their parent"`` entries for cascaded drops.
        """
        out = {t: df.reset_index(drop=True) for t, df in tables.items()}
        done: list[dict[str, Any]] = []
        dropped_from: set[str] = set()
        from synthdata.constraints.enforce import apply_real_policy

        for tname, schema in self.tables.items():
            if tname not in out:
                continue
            n_before = len(out[tname])
            out[tname], entries = apply_real_policy(out[tname], schema, table=tname)
            if len(out[tname]) < n_before:
                dropped_from.add(tname)
            done += entries
        for rule in self.constraints:
            if rule.on_real_violation == "error":
                continue
            child = self.link_rule_table(rule)
            if child not in out or any(t not in out for t in self._rule_tables(rule)):
                continue
            view = self.joined_view(out, child)
            joined = self.joined_schema(child)
            bad = rule.violations(view, joined)
            entry = {"rule": rule.describe(), "table": child, "policy": rule.on_real_violation,
                     "rows": int(bad.sum())}
            if bad.any() and rule.on_real_violation == "drop":
                out[child] = out[child].loc[~bad].reset_index(drop=True)
                dropped_from.add(child)
            elif bad.any():
                fixed, _ = rule.repair(view, joined)
                prefix = f"{child}."
                for col in out[child].columns:
                    out[child][col] = fixed[prefix + col].to_numpy()
            done.append(entry)
        if dropped_from:  # children of dropped parent rows go too (no orphans)
            for tname in self.order():
                link = self.parent_link(tname)
                if link is None or tname not in out or link.parent not in out:
                    continue
                keys = out[link.parent][link.parent_column]
                orphan = ~out[tname][link.column].isin(set(keys.dropna().tolist())) & \
                    out[tname][link.column].notna()
                # only children whose parent this call dropped (real orphans are validate()'s)
                before = tables[link.parent][link.parent_column]
                orphan &= out[tname][link.column].isin(set(before.dropna().tolist()))
                if orphan.any():
                    out[tname] = out[tname].loc[~orphan].reset_index(drop=True)
                    done.append({"rule": f"rows dropped with their parent row in {link.parent!r}",
                                 "table": tname, "policy": "drop", "rows": int(orphan.sum())})
        return out, done

    def _rule_tables(self, rule: Any) -> list[str]:
        child = self.link_rule_table(rule)
        link = self.parent_link(child)
        return [child, *([link.parent] if link else [])]

    def children_per_parent(self, tables: Mapping[str, pd.DataFrame], fk: ForeignKey) -> pd.Series:
        """Number of ``fk.child`` rows of every parent row (0 included), indexed by parent key."""
        parent_keys = tables[fk.parent][fk.parent_column]
        counts = tables[fk.child].groupby(fk.column, sort=False).size()
        return counts.reindex(parent_keys.to_numpy(), fill_value=0).astype("int64")

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        tables = {}
        for tname, schema in self.tables.items():
            pk = self.primary_keys.get(tname)
            if any(tname in (link.parent, link.child) for link in self.composite_keys):
                schema, declared_key, _ = declared_table(schema, tname, self.composite_keys)
                pk = declared_key if declared_key is not None else pk
            entry = schema.to_dict()
            entry.pop("version", None)
            entry.pop("name", None)
            entry.pop("primary_key", None)
            if pk:
                entry = {"primary_key": pk[0] if len(pk) == 1 else list(pk), **entry}
            tables[tname] = entry
        out: dict[str, Any] = {"version": MULTI_SCHEMA_VERSION, "name": self.name, "tables": tables,
                               "foreign_keys": [self._declared_link(fk) for fk in self.foreign_keys]}
        if self.constraints:
            out["constraints"] = [r.to_dict() for r in self.constraints]
        if self.survival:
            out["survival"] = {t: {"time": s.time, "event": s.event,
                                   "event_values": list(s.event_values),
                                   **({"unit": s.unit} if s.unit else {})}
                               for t, s in self.survival.items()}
        return out

    def _declared_link(self, fk: ForeignKey) -> dict[str, Any]:
        out = fk.to_dict()
        for link in self.composite_keys:
            if (link.child, link.parent, link.surrogate) == (fk.child, fk.parent, fk.column):
                out.update(column=list(link.columns), parent_column=list(link.parent_columns))
        return out

    # -- composite keys -------------------------------------------------------------------
    def pack_keys(self, tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Tables as the schema links them: one surrogate column per composite link (see
        :mod:`synthdata.relational.keys`); ``DataError`` naming table and columns for a
        missing key column, a missing or duplicate key, orphan rows or a type mismatch.
        Tables without composite links (or already packed) come back as they are."""
        if not self.composite_keys:
            return dict(tables)
        return pack(tables, self.composite_keys, self.order())

    def unpack_keys(self, tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """The declared columns back (composite link columns instead of surrogates)."""
        if not self.composite_keys:
            return dict(tables)
        schemas = {t: declared_table(s, t, self.composite_keys)[0] for t, s in self.tables.items()}
        return unpack(tables, self.composite_keys, schemas, self.order())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "schema") -> MultiTableSchema:
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where}: expected a mapping with 'tables', got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise SchemaError(f"{where}: unknown top-level key(s) {unknown}; allowed: "
                              + ", ".join(_TOP_KEYS))
        version = data.get("version", MULTI_SCHEMA_VERSION)
        if version != MULTI_SCHEMA_VERSION:
            raise SchemaError(f"{where}: multi-table schema version {version} is not supported "
                              f"(this synthdata reads version {MULTI_SCHEMA_VERSION})")
        raw_tables = data.get("tables")
        if not isinstance(raw_tables, Mapping) or not raw_tables:
            raise SchemaError(f"{where}: 'tables' must map table names to schemas")
        tables: dict[str, Schema] = {}
        pks: dict[str, Any] = {}
        links: list[CompositeLink] = []
        for tname, entry in raw_tables.items():
            if not isinstance(entry, Mapping):
                raise SchemaError(f"{where}: tables.{tname} must be a mapping with 'columns'")
            entry = dict(entry)
            pk = _key_tuple(entry.pop("primary_key", None), f"{where}: tables.{tname}")
            if pk is not None:
                pks[tname] = pk
            if len(pk or ()) == 1:
                entry["primary_key"] = pk[0]  # type: ignore[index]
            entry.setdefault("name", tname)
            tables[str(tname)] = Schema.from_dict(entry, where=f"{where}: tables.{tname}")
        fks = []
        for i, raw in enumerate(data.get("foreign_keys") or []):
            if not isinstance(raw, Mapping):
                raise SchemaError(f"{where}: foreign_keys[{i}] must be a mapping")
            bad = sorted(set(raw) - _FK_KEYS)
            if {"min_value", "max_column"} & set(bad):
                raise SchemaError(f"{where}: foreign_keys[{i}]: min_value/max_column were replaced "
                                  "by constraints, e.g. {kind: range, column: day, low: 0, high: "
                                  "futime} in the child table's constraints list, or a top-level "
                                  "{kind: inequality, low: child.day, high: parent.futime}")
            if bad:
                raise SchemaError(f"{where}: foreign_keys[{i}] has unknown key(s) {bad}; allowed: "
                                  f"{sorted(_FK_KEYS)}")
            need = [k for k in ("child", "column", "parent", "parent_column") if k not in raw]
            if need:
                raise SchemaError(f"{where}: foreign_keys[{i}] needs {need}")
            values = dict(raw)
            label = f"{where}: foreign_keys[{i}] ({raw['child']} -> {raw['parent']})"
            for key in ("column", "parent_column"):
                value = values[key]
                if isinstance(value, (list, tuple)) and len(value) == 1:
                    values[key] = value = value[0]
                if not isinstance(value, (str, list, tuple)):
                    raise SchemaError(f"{label}: {key} must be a column name, got {value!r}")
            # never None: both values were checked to be names above
            child_cols, parent_cols = (_key_tuple(values[k], label) or () for k in
                                       ("column", "parent_column"))
            if len(child_cols) != len(parent_cols):
                raise SchemaError(f"{label}: composite key mismatch: column {list(child_cols)} "
                                  f"has {len(child_cols)} column(s) but parent_column "
                                  f"{list(parent_cols)} has {len(parent_cols)}; list the same "
                                  "number of columns, in the parent key's order")
            composite = None
            if len(child_cols) > 1:
                # carried by one surrogate key column (synthdata.relational.keys)
                composite = compile_link(tables, pks, values, child_cols, parent_cols, label)
                links.append(composite)
            for key in ("parent_level", "context"):
                if isinstance(values.get(key), str):
                    values[key] = [values[key]]
                if values.get(key) is not None and not (
                        isinstance(values[key], (list, tuple))
                        and all(isinstance(v, str) for v in values[key])):
                    raise SchemaError(f"{label}: {key} must be a list of column names, got "
                                      f"{values[key]!r}")
            if values.get("order_by") is not None and not isinstance(values["order_by"], str):
                raise SchemaError(f"{label}: order_by must be one column name, got "
                                  f"{values['order_by']!r}")
            values["parent_level"] = tuple(values.get("parent_level") or ())
            if values.get("context") is not None:
                values["context"] = tuple(values["context"])
            fks.append(ForeignKey(**values, display=composite.label if composite else None))
        surv = {}
        for tname, raw in (data.get("survival") or {}).items():
            if not isinstance(raw, Mapping) or not {"time", "event"} <= set(raw):
                raise SchemaError(f"{where}: survival.{tname} needs 'time' and 'event'")
            surv[str(tname)] = SurvivalSpec(time=raw["time"], event=raw["event"],
                                            event_values=tuple(raw.get("event_values", (1,))),
                                            unit=raw.get("unit"))
        from synthdata.schema.model import constraints_from_list

        declared, proposed = constraints_from_list(data.get("constraints") or [],
                                                    f"{where}: constraints")
        if proposed:
            raise SchemaError(f"{where}: constraints across tables cannot be 'proposed'; declare "
                              "them or remove them")
        try:
            return cls(tables=tables, primary_keys=pks, foreign_keys=fks, survival=surv,
                       name=str(data.get("name", "dataset")), constraints=declared,
                       composite_keys=links)
        except SchemaError as err:
            raise SchemaError(f"{where}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> MultiTableSchema:
        """Read a multi-table schema from YAML."""
        return cls.from_dict(load_yaml(path), where=str(path))

    def save(self, path: str | Path) -> Path:
        import yaml

        from synthdata.io.files import atomic_write_text

        return atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def infer(cls, tables: Mapping[str, pd.DataFrame], *,
              primary_keys: Mapping[str, str | Iterable[str]],
              foreign_keys: Iterable[ForeignKey | tuple[str, str, str, str]] = (),
              name: str = "dataset") -> MultiTableSchema:
        """Infer each table's schema; key columns become ``id`` columns."""
        schemas = {}
        fks = [fk if isinstance(fk, ForeignKey) else ForeignKey(*fk) for fk in foreign_keys]
        for tname, df in tables.items():
            schema = Schema.infer(df, name=tname)
            keys = {fk.column for fk in fks if fk.child == tname}
            keys |= {fk.parent_column for fk in fks if fk.parent == tname}
            pk = primary_keys.get(tname)
            if isinstance(pk, str):
                keys.add(pk)
            cols = [c if c.name not in keys or c.kind == ColumnKind.ID
                    else type(c)(c.name, ColumnKind.ID, dtype=c.dtype, nullable=c.nullable)
                    for c in schema.columns]
            schemas[tname] = Schema(columns=tuple(cols), name=tname,
                                    primary_key=pk if isinstance(pk, str) else None)
        pks = {t: (k if isinstance(k, str) else tuple(k)) for t, k in primary_keys.items()}
        return cls(tables=schemas, primary_keys=pks, foreign_keys=fks, name=name)
