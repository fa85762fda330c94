"""Rare categories: merged (or suppressed) before fitting, so no generator learns them.

A category that fewer than ``k`` rows of the table hold (a rare diagnosis, a name read as a
category) identifies the few people who have it; a generator that learns it as a category
replays it verbatim. By default every categorical column's categories rarer than ``k = 10``
are merged into one ``other`` value before the split (the generator, the evaluation and the
shipped schema see the merged column); ``action: suppress`` makes them missing instead,
``action: keep`` (or ``rare_categories: false``) turns it off. The report's
``rare_categories`` section names the columns and how many categories were merged (never
which values).

Under differential privacy the merge is not applied: choosing what to merge reads exact
counts of the private rows (one row more or less can flip a category across ``k`` and change
every row holding it), which no DP guarantee covers. There the category sets are released
with noisy, thresholded counts (:mod:`synthdata.transform.private`), which drops rare
categories for the same purpose.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from synthdata.pipeline.config import RareCategoriesConfig
from synthdata.schema import ColumnKind
from synthdata.schema.model import Schema

SECTION = "rare_categories"


def merge_rare_categories(df: pd.DataFrame, schema: Schema, cfg: RareCategoriesConfig, *,
                          private: bool = False
                          ) -> tuple[pd.DataFrame, Schema, dict[str, Any]]:
    """Merge (or suppress) the categories rarer than ``cfg.k``: new frame, schema, section.

    ``private`` (a DP run): nothing changes and the section says why.
    """
    section: dict[str, Any] = {"enabled": cfg.action != "keep", "k": cfg.k,
                               "action": cfg.action, "columns": []}
    if cfg.action == "keep":
        section["note"] = "deid.rare_categories.action: keep: rare categories were learned as is"
        return df, schema, section
    if private:
        section.update(enabled=False, note=(
            "not applied under differential privacy: choosing rare categories reads exact "
            "counts; the DP category release (noisy counts with a threshold) drops rare "
            "categories instead"))
        return df, schema, section
    wanted = set(cfg.columns) if cfg.columns is not None else None
    out = df
    columns = []
    for col in schema.columns:
        if col.kind != ColumnKind.CATEGORICAL or col.name not in df.columns:
            continue
        if wanted is not None and col.name not in wanted:
            continue
        counts = df[col.name].value_counts(dropna=True)
        rare = counts.index[counts.to_numpy() < cfg.k]
        if len(rare) == 0:
            continue
        if out is df:
            out = df.copy()
        is_rare = df[col.name].isin(rare).to_numpy()
        entry: dict[str, Any] = {"column": col.name, "n_categories": int(len(counts)),
                                 "n_merged": int(len(rare)), "n_rows_changed": int(is_rare.sum())}
        kept = [c for c in counts.index if c not in set(rare)]
        if cfg.action == "merge":
            label = cfg.other
            if pd.api.types.is_numeric_dtype(df[col.name]) or pd.api.types.is_bool_dtype(
                    df[col.name]):
                # numeric codes cannot hold the "other" label: the column becomes text
                values = df[col.name].map(_text, na_action="ignore").astype(object)
                kept = [_text(c) for c in kept]
            else:
                values = df[col.name].astype(object)
            values = values.where(~is_rare, label)
            out[col.name] = values
            categories = tuple(kept) + (() if label in kept else (label,))
            new = dataclasses.replace(col, categories=categories if col.categories is not None
                                      else None)
            entry["into"] = label
        else:
            out[col.name] = df[col.name].where(~is_rare, np.nan)
            new = dataclasses.replace(col, nullable=True, categories=(
                tuple(c for c in col.categories if c not in set(rare))
                if col.categories is not None else None))
            entry["into"] = "missing"
        schema = schema.replace_columns([new if c.name == col.name else c
                                         for c in schema.columns])
        columns.append(entry)
    section["columns"] = columns
    section["n_columns"] = len(columns)
    section["n_categories_merged"] = sum(c["n_merged"] for c in columns)
    return out, schema, section


def _text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
