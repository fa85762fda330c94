"""The first pass of a streaming fit: a mergeable summary of a table read in batches.

A table larger than memory is read batch by batch. Before a model can learn anything the
transformer needs its metadata, so one pass over every batch builds a
:class:`TableSummary`, and :func:`fit_transformer_from_summary` fits the transformer from it:

- numeric columns (continuous, integer, datetime): exact count of missing cells, exact
  minimum and maximum, the rounding step (merged: none if any batch shows none, else the
  smallest), and the exact count of every distinct value while there are at most
  ``MAX_DISTINCT`` of them; beyond that the column's quantile map is read from the row
  sample below (weighted by its counts), the range staying exact;
- discrete columns: the exact count of every value and of missing cells;
- a row sample: the ``sample_rows`` distinct rows with the smallest seeded hash of their
  content, each with its exact number of occurrences. Hashing content (not position) makes
  the sample the same however the table is split into files, batches or cluster workers,
  so a local and a Ray fit start from the same sample. The model's initialisation (k-means,
  the choice of the number of components) runs on it.

Summaries of separate batches merge (:meth:`TableSummary.merge`) into the summary of their
union, exactly; that is what lets Ray workers summarise their blocks independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import DataError
from synthdata.schema.model import ColumnKind, Schema, to_native
from synthdata.transform.columns import CategoryEncoder, NumericEncoder, NumericMethod, as_float
from synthdata.transform.table import TableTransformer

MAX_DISTINCT = 100_000      # distinct values counted exactly per numeric column
SAMPLE_ROWS = 50_000        # distinct rows kept in the row sample
_HASH = "__synthdata_row_hash"
_COUNT = "__synthdata_row_count"


@dataclass
class NumericSummary:
    n_missing: int = 0
    lower: float = np.inf
    upper: float = -np.inf
    step: float | None = None           # None: no finite value seen yet
    values: np.ndarray | None = field(default_factory=lambda: np.empty(0))  # None: too many
    counts: np.ndarray = field(default_factory=lambda: np.empty(0))

    def merge(self, other: NumericSummary) -> None:
        self.n_missing += other.n_missing
        self.lower, self.upper = min(self.lower, other.lower), max(self.upper, other.upper)
        if other.step is not None:
            self.step = other.step if self.step is None else _merge_steps(self.step, other.step)
        if self.values is None or other.values is None:
            self.values, self.counts = None, np.empty(0)
            return
        self.values, self.counts = _add_counts(self.values, self.counts, other.values, other.counts)
        if self.values.size > MAX_DISTINCT:
            self.values, self.counts = None, np.empty(0)


@dataclass
class DiscreteSummary:
    n_missing: int = 0
    counts: dict[Any, int] = field(default_factory=dict)

    def merge(self, other: DiscreteSummary) -> None:
        self.n_missing += other.n_missing
        for value, count in other.counts.items():
            self.counts[value] = self.counts.get(value, 0) + count


class TableSummary:
    """Mergeable first-pass summary of a table (see the module docstring).

    ``TableSummary(schema, seed=...).update(batch)`` for every batch, or build one per batch
    and ``merge`` them; ``n_rows`` is the total row count.
    """

    def __init__(self, schema: Schema, *, seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> None:
        self.schema, self.seed, self.sample_rows = schema, int(seed), int(sample_rows)
        self.n_rows = 0
        self.columns: dict[str, NumericSummary | DiscreteSummary | None] = {}
        for col in schema.columns:
            if col.kind in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER, ColumnKind.DATETIME):
                self.columns[col.name] = NumericSummary()
            elif col.kind.is_discrete:
                self.columns[col.name] = DiscreteSummary()
            else:
                self.columns[col.name] = None  # ids and text are regenerated, never learned
        self.sample = pd.DataFrame()

    def update(self, batch: pd.DataFrame) -> TableSummary:
        """Add one batch (a DataFrame with the schema's columns); returns self."""
        other = TableSummary(self.schema, seed=self.seed, sample_rows=self.sample_rows)
        other._summarise(batch)
        return self.merge(other)

    def _summarise(self, batch: pd.DataFrame) -> None:
        missing = [c for c in self.schema.names if c not in batch.columns]
        if missing:
            raise DataError(f"column(s) {missing} of schema {self.schema.name!r} are missing from "
                            f"a batch of the data; it has {list(batch.columns)}")
        batch = batch[self.schema.names].reset_index(drop=True)
        self.n_rows = len(batch)
        for name, summary in self.columns.items():
            col = self.schema[name]
            if isinstance(summary, NumericSummary):
                values = as_float(batch[name], col)
                finite = values[~np.isnan(values)]
                summary.n_missing = int(values.size - finite.size)
                if finite.size:
                    summary.lower, summary.upper = float(finite.min()), float(finite.max())
                    summary.step = NumericEncoder(col, NumericMethod.QUANTILE).resolution(finite)
                    uniq, counts = np.unique(finite, return_counts=True)
                    summary.values, summary.counts = (uniq, counts.astype(np.int64)) \
                        if uniq.size <= MAX_DISTINCT else (None, np.empty(0))
            elif isinstance(summary, DiscreteSummary):
                series = batch[name]
                summary.n_missing = int(series.isna().sum())
                for value, count in series.value_counts(dropna=True).items():
                    key = to_native(value)
                    summary.counts[key] = summary.counts.get(key, 0) + int(count)
        hashes = row_hashes(batch, self.seed)
        uniq, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        keep = slice(0, self.sample_rows)  # np.unique sorts: the smallest hashes first
        sample = batch.iloc[first[keep]].reset_index(drop=True)
        sample[_HASH] = uniq[keep]
        sample[_COUNT] = counts[keep].astype(np.int64)
        self.sample = sample

    def merge(self, other: TableSummary) -> TableSummary:
        """Fold ``other`` (a summary of other rows of the same table) into this one."""
        if other.schema.names != self.schema.names or other.seed != self.seed:
            raise DataError("summaries of different schemas or seeds cannot be merged")
        self.n_rows += other.n_rows
        for name, summary in self.columns.items():
            theirs = other.columns[name]
            if summary is not None and theirs is not None:
                summary.merge(theirs)  # type: ignore[arg-type]
        self.sample = _merge_samples(self.sample, other.sample, self.sample_rows)
        return self

    def row_sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        """At most ``n_rows`` rows of the sample, drawn by their occurrence counts (every
        sampled row once when no row repeats)."""
        if self.sample.empty:
            raise DataError("the table has no rows")
        counts = self.sample[_COUNT].to_numpy()
        rows = self.sample.drop(columns=[_HASH, _COUNT])
        if counts.max() == 1 and len(rows) <= n_rows:
            return rows.reset_index(drop=True)
        size = int(min(n_rows, counts.sum()))
        idx = np.sort(rng.choice(len(rows), size=size, p=counts / counts.sum()))
        return rows.iloc[idx].reset_index(drop=True)


def fit_transformer_from_summary(transformer: TableTransformer, summary: TableSummary,
                                 rng: np.random.Generator) -> TableTransformer:
    """Fit ``transformer``'s encoders from ``summary`` (no pass over the rows); returns it."""
    encoders: dict[str, Any] = {}
    for name in transformer.schema.names:
        enc = transformer.make_encoder(name)
        col = summary.columns[name]
        if isinstance(enc, NumericEncoder):
            assert isinstance(col, NumericSummary)
            if col.values is not None:
                values, counts = col.values, col.counts
            else:  # too many distinct values: the row sample's, weighted by their counts
                sample = summary.sample
                x = as_float(sample[name], transformer.schema[name])
                ok = ~np.isnan(x)
                values, counts = x[ok], sample[_COUNT].to_numpy()[ok]
            empty = col.step is None
            enc.fit_summary(values, counts, lower=0.0 if empty else col.lower,
                            upper=0.0 if empty else col.upper,
                            step=0.0 if empty else col.step,  # type: ignore[arg-type]
                            has_missing=col.n_missing > 0, rng=rng)
        elif isinstance(enc, CategoryEncoder):
            assert isinstance(col, DiscreteSummary)
            enc.fit_counts(col.counts, col.n_missing)
        else:
            enc.fit(summary.sample[name] if name in summary.sample else pd.Series([], dtype=object))
        encoders[name] = enc
    transformer.set_encoders(encoders)
    return transformer


def row_hashes(batch: pd.DataFrame, seed: int) -> np.ndarray:
    """A seeded 64-bit hash of each row's content, the same whatever the batch's dtypes
    (numbers as float64, everything else as its text), so every reader gives the same
    hashes."""
    key = _hash_key(seed)
    out = np.zeros(len(batch), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in batch.columns:
            series = batch[name]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                col = pd.util.hash_array(series.to_numpy(dtype="float64", na_value=np.nan),
                                         hash_key=key)
            else:  # hash each distinct value's text once
                codes, uniques = pd.factorize(series, use_na_sentinel=True)
                text = np.array([str(to_native(v)) for v in uniques] + ["\x00missing"], dtype=object)
                col = pd.util.hash_array(text, hash_key=key)[np.where(codes >= 0, codes, len(uniques))]
            out = (out * np.uint64(0x9E3779B97F4A7C15)) ^ col.astype(np.uint64)
    return out


def _hash_key(seed: int) -> str:
    # hash_pandas_object takes a 16-character key
    return f"{seed % 10**16:016d}"


def _merge_samples(a: pd.DataFrame, b: pd.DataFrame, size: int) -> pd.DataFrame:
    if a.empty:
        return b
    if b.empty:
        return a
    both = pd.concat([a, b], ignore_index=True)
    counts = both.groupby(_HASH, sort=True)[_COUNT].sum()
    first = both.drop_duplicates(_HASH).set_index(_HASH)
    first[_COUNT] = counts
    return first.sort_index().iloc[:size].reset_index()[list(a.columns)]


def _add_counts(va: np.ndarray, ca: np.ndarray, vb: np.ndarray, cb: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    values, inverse = np.unique(np.concatenate([va, vb]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([ca, cb]), minlength=values.size)
    return values, counts.astype(np.int64)


def _merge_steps(a: float, b: float) -> float:
    if a == 0 or b == 0:
        return 0.0
    return min(a, b)
