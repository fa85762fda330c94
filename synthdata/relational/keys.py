"""Composite keys across linked tables: a link of several columns, carried as one surrogate.

A foreign key may list several columns (``column: [site, pno]`` -> ``parent_column: [site,
pno]``, the parent's primary key). Everything that links rows (integrity checks, splitting by
patient, the relational synthesizer, children-per-parent and history evaluation) works on one
key column, so a composite link is *compiled* when the schema is read:

* the parent table gets one surrogate key column (``_<parent>_key``, kind ``id``), its primary
  key while the tables are linked; its own key columns stay ordinary columns;
* the child table's link columns are replaced by the same surrogate column (they are a copy
  of the parent's key, so they are never learned on their own);
* :func:`pack` adds the surrogate to the real tables (the position of each distinct parent
  key), after checking every key: missing columns, missing or duplicate parent keys, child
  rows pointing to no parent and key columns of different types are each a ``DataError``
  naming the table and columns;
* :func:`unpack` turns synthetic (or packed real) tables back into the declared columns: the
  child's link columns are copied from its parent row, the surrogate is dropped; the
  parent's ``id`` key columns are regenerated when synthetic keys would collide.

The declared form (lists of columns) is what ``to_dict``/``save`` write back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import DataError, SchemaError
from synthdata.schema.model import Column, Schema
from synthdata.types import ColumnKind, PiiRole, to_native


@dataclass(frozen=True)
class CompositeLink:
    """``child.columns`` -> ``parent.parent_columns`` (the parent's primary key), carried as
    the surrogate column ``surrogate`` in both tables."""

    child: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    surrogate: str
    child_columns: tuple[Column, ...]        # the declared link columns of the child
    child_positions: tuple[int, ...]         # their places among the child's columns
    child_key: tuple[str, ...] | None = None  # the child's declared primary key

    @property
    def label(self) -> str:
        return (f"{self.child}.({', '.join(self.columns)}) -> "
                f"{self.parent}.({', '.join(self.parent_columns)})")


def surrogate_name(parent: str, taken: Sequence[str]) -> str:
    name = f"_{parent}_key"
    while name in taken:
        name = f"_{name}"
    return name


def _family(col: Column) -> str | None:
    """Numbers or text, from a declared dtype (None: not declared; the data check decides)."""
    dtype = col.dtype or "object"
    if dtype.startswith(("int", "uint", "float", "Int", "UInt", "Float")):
        return "number"
    return "text" if dtype in ("str", "string") else None


def compile_link(tables: dict[str, Schema], pks: dict[str, tuple[str, ...]],
                 values: dict[str, Any], child_cols: tuple[str, ...],
                 parent_cols: tuple[str, ...], label: str) -> CompositeLink:
    """Check a composite link against the table schemas and rewrite ``tables``/``pks``/
    ``values`` in place to link by one surrogate column; return the link."""
    child, parent = str(values["child"]), str(values["parent"])
    for tname, cols, what in ((child, child_cols, "column"), (parent, parent_cols,
                                                               "parent_column")):
        if tname not in tables:
            raise SchemaError(f"{label}: table {tname!r} is not declared; tables are "
                              f"{list(tables)}")
        missing = [c for c in cols if c not in tables[tname]]
        if missing:
            raise SchemaError(f"{label}: {what} {missing} not in table {tname!r}; columns "
                              f"are {tables[tname].names}")
    if pks.get(parent) != parent_cols:
        raise SchemaError(f"{label}: {parent}.{list(parent_cols)} must be the primary key of "
                          f"{parent!r} (declare primary_key: {list(parent_cols)})")
    for c, p in zip(child_cols, parent_cols, strict=True):
        fc, fp = _family(tables[child][c]), _family(tables[parent][p])
        if fc is not None and fp is not None and fc != fp:
            raise SchemaError(f"{label}: type mismatch: {child}.{c} holds {fc}s "
                              f"(dtype {tables[child][c].dtype}) but {parent}.{p} holds {fp}s "
                              f"(dtype {tables[parent][p].dtype}); declare the same dtype")
    if not any(tables[parent][p].kind == ColumnKind.ID for p in parent_cols):
        raise SchemaError(f"{label}: declare at least one of {parent}.{list(parent_cols)} "
                          "kind: id, so that synthetic keys are regenerated and stay unique")
    level = values.get("parent_level") or ()
    used = [values.get("order_by"), *([level] if isinstance(level, str) else level)]
    clash = [c for c in child_cols if c in used]
    if clash:
        raise SchemaError(f"{label}: link column(s) {clash} cannot also be order_by or "
                          "parent_level")
    surrogate = surrogate_name(parent, [*tables[parent].names, *tables[child].names])
    key_col = Column(surrogate, ColumnKind.ID, dtype="int64", nullable=False, pii=PiiRole.NONE,
                     description=f"surrogate for the composite key {list(parent_cols)}")
    ccols = tables[child].columns
    positions = tuple(i for i, c in enumerate(ccols) if c.name in child_cols)
    link = CompositeLink(child=child, columns=child_cols, parent=parent,
                         parent_columns=parent_cols, surrogate=surrogate,
                         child_columns=tuple(ccols[i] for i in positions),
                         child_positions=positions, child_key=pks.get(child))
    kept = [c for c in ccols if c.name not in child_cols]
    kept.insert(positions[0], key_col)
    tables[child] = _with_columns(tables[child], kept, child)
    tables[parent] = _with_columns(tables[parent], [key_col, *tables[parent].columns], parent)
    pks[parent] = (surrogate,)
    if child in pks:
        key = [surrogate if c in child_cols else c for c in pks[child]]
        pks[child] = tuple(dict.fromkeys(key))
    values.update(column=surrogate, parent_column=surrogate)
    return link


def _with_columns(schema: Schema, columns: list[Column], tname: str) -> Schema:
    try:
        names = {c.name for c in columns}
        return dataclasses.replace(schema, columns=tuple(columns), primary_key=(
            schema.primary_key if schema.primary_key in names else None))
    except SchemaError as err:
        raise SchemaError(f"table {tname!r}: {err}") from None


def declared_table(schema: Schema, tname: str, links: Sequence[CompositeLink]
                   ) -> tuple[Schema, tuple[str, ...] | None, list[str]]:
    """The declared (unpacked) schema of one table, its declared key if a composite link
    changed it, and the surrogate columns to leave out."""
    cols = list(schema.columns)
    drop = [link.surrogate for link in links if tname in (link.parent, link.child)]
    key = None
    for link in links:
        if link.child == tname:
            cols = [c for c in cols if c.name != link.surrogate]
            for pos, col in zip(link.child_positions, link.child_columns, strict=True):
                cols.insert(pos, col)
            key = link.child_key
        if link.parent == tname:
            key = link.parent_columns if key is None else key
    cols = [c for c in cols if c.name not in drop]
    return dataclasses.replace(schema, columns=tuple(cols), primary_key=None), key, drop


# -- data ------------------------------------------------------------------------------------
def pack(tables: Mapping[str, pd.DataFrame], links: Sequence[CompositeLink],
         order: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Add each composite link's surrogate column (and drop the child's link columns).

    Tables that already carry the surrogate are left as they are. Raises ``DataError``
    naming the table and columns for a missing key column, a missing or duplicate parent
    key, child rows whose key matches no parent row, and key columns of different types.
    """
    out = dict(tables)
    todo = [link for link in links if link.child in out and link.parent in out
            and link.surrogate not in out[link.child].columns]
    if not todo:
        return out
    for tname in order:  # surrogates from the declared columns, before any is dropped
        for link in todo:
            if link.parent == tname:
                _check_columns(out, link)
    keys = {link.label: _parent_keys(out[link.parent], link) for link in todo}
    child_keys = {link.label: _child_keys(out, link, keys[link.label]) for link in todo}
    for link in todo:
        parent = out[link.parent]
        if link.surrogate not in parent.columns:
            parent = parent.copy()
            parent.insert(0, link.surrogate, np.arange(len(parent), dtype=np.int64))
            out[link.parent] = parent
    for link in todo:
        child = out[link.child].drop(columns=list(link.columns))
        child.insert(min(link.child_positions[0], child.shape[1]), link.surrogate,
                     child_keys[link.label])
        out[link.child] = child
    return out


def _check_columns(tables: Mapping[str, pd.DataFrame], link: CompositeLink) -> None:
    for tname, cols in ((link.child, link.columns), (link.parent, link.parent_columns)):
        missing = [c for c in cols if c not in tables[tname].columns]
        if missing:
            raise DataError(f"{link.label}: key column(s) {missing} are missing in table "
                            f"{tname!r}")
    child, parent = tables[link.child], tables[link.parent]
    for c, p in zip(link.columns, link.parent_columns, strict=True):
        mismatch = type_mismatch(child[c], parent[p])
        if mismatch:
            raise DataError(f"{link.label}: type mismatch: {link.child}.{c} holds "
                            f"{mismatch[0]} but {link.parent}.{p} holds {mismatch[1]}; the "
                            "same key must be written the same way in both tables")


def type_mismatch(child: pd.Series, parent: pd.Series) -> tuple[str, str] | None:
    """("text", "numbers") when a key is written as numbers on one side and text on the
    other (every child row would be an orphan); None otherwise."""
    c, p = child.dropna(), parent.dropna()
    if not len(c) or not len(p):
        return None
    kinds = ["numbers" if pd.api.types.is_numeric_dtype(x.infer_objects()) else "text"
             for x in (c, p)]
    return (kinds[0], kinds[1]) if kinds[0] != kinds[1] else None


def _parent_keys(parent: pd.DataFrame, link: CompositeLink) -> pd.MultiIndex:
    cols = list(link.parent_columns)
    nulls = parent[cols].isna().any(axis=1)
    if nulls.any():
        raise DataError(f"table {link.parent!r}: {int(nulls.sum())} row(s) have a missing "
                        f"primary key {'/'.join(cols)}")
    dup = parent.duplicated(cols, keep=False)
    if dup.any():
        first = [to_native(v) for v in parent.loc[dup, cols].iloc[0]]
        raise DataError(f"table {link.parent!r}: {int(dup.sum())} row(s) share a primary key "
                        f"{'/'.join(cols)} with another row (first: {first}); keys must be "
                        "unique")
    return pd.MultiIndex.from_frame(parent[cols].astype(object))


def _child_keys(tables: Mapping[str, pd.DataFrame], link: CompositeLink,
                keys: pd.MultiIndex) -> np.ndarray:
    child = tables[link.child]
    cols = list(link.columns)
    missing = child[cols].isna().any(axis=1)
    if missing.any():
        raise DataError(f"{link.label}: {int(missing.sum())} row(s) of {link.child!r} have no "
                        f"parent key (a missing value in {'/'.join(cols)})")
    pos = keys.get_indexer(pd.MultiIndex.from_frame(child[cols].astype(object)))
    if (pos < 0).any():
        bad = child.loc[pos < 0, cols]
        first = [tuple(to_native(v) for v in r) for r in bad.iloc[:3].itertuples(index=False)]
        raise DataError(f"{link.label}: {len(bad)} orphan row(s) in {link.child!r} point to "
                        f"no row of {link.parent!r} (first keys: {first})")
    return pos.astype(np.int64)


def unpack(tables: Mapping[str, pd.DataFrame], links: Sequence[CompositeLink],
           schemas: Mapping[str, Schema], order: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The declared columns back: child link columns copied from the parent row, parent ``id``
    key columns regenerated if keys collide, surrogate columns dropped, declared order."""
    out = dict(tables)
    todo = [link for link in links if link.child in out and link.parent in out
            and link.surrogate in out[link.child].columns]
    for tname in order:
        for link in todo:
            if link.parent == tname:
                out[tname] = _unique_parent_keys(out[tname], link, schemas[tname])
            if link.child == tname:
                parent = out[link.parent].set_index(link.surrogate)
                rows = parent.reindex(out[tname][link.surrogate].to_numpy())
                child = out[tname].copy()
                for c, p in zip(link.columns, link.parent_columns, strict=True):
                    child[c] = rows[p].to_numpy()
                out[tname] = child
    for tname in out:
        drop = {link.surrogate for link in todo if tname in (link.parent, link.child)}
        if drop:
            frame = out[tname]
            names = schemas[tname].names if tname in schemas else []
            cols = [c for c in names if c in frame.columns]
            cols += [c for c in frame.columns if c not in cols and c not in drop]
            out[tname] = frame[cols]
    return out


def _unique_parent_keys(parent: pd.DataFrame, link: CompositeLink, schema: Schema
                        ) -> pd.DataFrame:
    cols = list(link.parent_columns)
    if not parent.duplicated(cols).any():
        return parent
    parent = parent.copy()
    for c in cols:
        if schema[c].kind == ColumnKind.ID:
            numeric = (schema[c].dtype or "").startswith(("int", "uint", "float", "Int"))
            parent[c] = (np.arange(1, len(parent) + 1) if numeric
                         else [f"s{i}" for i in range(1, len(parent) + 1)])
            break
    return parent
