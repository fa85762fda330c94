"""Linked-table evaluation: how well synthetic tables keep the links between tables."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from synthdata.relational.schema import MultiTableSchema


def total_variation(a: pd.Series, b: pd.Series) -> float:
    """Total-variation distance between the empirical distributions of two discrete series."""
    pa = a.value_counts(normalize=True, dropna=False)
    pb = b.value_counts(normalize=True, dropna=False)
    support = pa.index.union(pb.index)
    return float(0.5 * np.abs(pa.reindex(support, fill_value=0) - pb.reindex(support, fill_value=0)).sum())


def children_per_parent_tv(real: Mapping[str, pd.DataFrame], synthetic: Mapping[str, pd.DataFrame],
                           schema: MultiTableSchema) -> dict[str, float]:
    """TV distance of the children-per-parent distribution (zeros included), per enforced link."""
    out = {}
    for fk in schema.foreign_keys:
        if not fk.enforce or fk.child == fk.parent:
            continue
        out[fk.label] = total_variation(schema.children_per_parent(real, fk),
                                        schema.children_per_parent(synthetic, fk))
    return out
