"""One row per patient: the view on linked tables that per-patient leakage metrics read.

Row-level leakage metrics on a child table treat two visits of one patient as two people;
the unit of privacy is the patient. :func:`patient_table` flattens each root row (a patient)
with a summary of their linked rows — the number of rows in each child table, the mean of
each numeric child column and the most frequent value of each discrete one — so DCR,
membership inference and singling-out can be computed with one record per patient.
Summaries are computed the same way for real and synthetic tables (never fitted on either).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from synthdata.relational.schema import MultiTableSchema
from synthdata.schema.model import Column, ColumnKind, Schema

__all__ = ["parent_child_correlations", "patient_schema", "patient_table"]


def _summarised(ms: MultiTableSchema, child: str) -> list[Column]:
    """Child columns that describe the patient (not keys, links or parent-level copies)."""
    link = ms.parent_link(child)
    skip = set(ms.primary_keys.get(child, ())) | {fk.column for fk in ms.foreign_keys
                                                  if fk.child == child}
    if link is not None:
        skip |= set(link.parent_level)
    return [c for c in ms.tables[child].columns if c.name not in skip and c.kind.is_learned]


def patient_schema(ms: MultiTableSchema) -> Schema:
    """The schema of :func:`patient_table`: the root's columns (pii roles kept) + summaries."""
    root = ms.order()[0]
    cols = [c for c in ms.tables[root].columns if c.name not in ms.primary_keys.get(root, ())]
    for fk in ms.children_of(root):
        cols.append(Column(f"{fk.child}.n_rows", ColumnKind.INTEGER, dtype="int64", min=0.0))
        for c in _summarised(ms, fk.child):
            if c.kind.is_numeric:
                cols.append(Column(f"{fk.child}.mean_{c.name}", ColumnKind.CONTINUOUS,
                                   dtype="float64", nullable=True))
            else:
                cols.append(dataclasses.replace(c, name=f"{fk.child}.mode_{c.name}", nullable=True,
                                                pii=None))
    return Schema(columns=tuple(cols), name=f"{ms.name} patients")


def patient_table(tables: Mapping[str, pd.DataFrame], ms: MultiTableSchema) -> pd.DataFrame:
    """One row per root row, in the root table's order (see the module docstring)."""
    root = ms.order()[0]
    pk = ms.primary_keys[root][0]
    base = tables[root]
    keys = base[pk].to_numpy()
    out = base.drop(columns=list(ms.primary_keys.get(root, ()))).reset_index(drop=True)
    for fk in ms.children_of(root):
        child = tables[fk.child]
        groups = child.groupby(fk.column, sort=False)
        out[f"{fk.child}.n_rows"] = groups.size().reindex(keys, fill_value=0).to_numpy().astype("int64")
        for c in _summarised(ms, fk.child):
            if c.kind.is_numeric:
                values = pd.to_numeric(child[c.name], errors="coerce")
                mean = values.groupby(child[fk.column].to_numpy()).mean()
                out[f"{fk.child}.mean_{c.name}"] = mean.reindex(keys).to_numpy(dtype=float)
            else:
                mode = (child[[fk.column, c.name]].dropna()
                        .value_counts(sort=True).reset_index()
                        .drop_duplicates(fk.column).set_index(fk.column)[c.name])
                out[f"{fk.child}.mode_{c.name}"] = mode.reindex(keys).to_numpy()
    return out


def parent_child_correlations(real: pd.DataFrame, synthetic: pd.DataFrame,
                              ms: MultiTableSchema) -> dict[str, Any]:
    """Spearman correlation of each numeric root column with each child column's per-patient
    mean (e.g. age vs mean lab value), real vs synthetic, on :func:`patient_table` frames.

    Returns ``{"pairs": [{parent, child, real, synthetic}], "mean_abs_difference": float}``;
    pairs where either side is undefined (a constant or empty column) are left out.
    """
    root = ms.order()[0]
    parents = [c.name for c in ms.tables[root].columns
               if c.kind.is_numeric and c.name not in ms.primary_keys.get(root, ())]
    children = [name for name in real.columns if ".mean_" in name]
    pairs = []
    for p in parents:
        for c in children:
            r = _spearman(real[p], real[c])
            s = _spearman(synthetic[p], synthetic[c])
            if r is not None and s is not None:
                pairs.append({"parent": p, "child": c, "real": r, "synthetic": s})
    diff = float(np.mean([abs(x["real"] - x["synthetic"]) for x in pairs])) if pairs else None
    return {"pairs": pairs, "mean_abs_difference": diff}


def _spearman(a: pd.Series, b: pd.Series) -> float | None:
    x = pd.to_numeric(a, errors="coerce")
    y = pd.to_numeric(b, errors="coerce")
    both = x.notna() & y.notna()
    if both.sum() < 3 or x[both].nunique() < 2 or y[both].nunique() < 2:
        return None
    return float(x[both].rank().corr(y[both].rank()))
