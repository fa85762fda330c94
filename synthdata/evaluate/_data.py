"""Shared preparation for every metric: typed arrays per column, one row encoder.

Every metric reads the same :class:`Prepared` tables, so "the same value" means the same
thing everywhere: discrete values are matched by a normalised text key (``1``, ``1.0`` and
``"1"`` are one category), numbers and datetimes become float64 (datetimes in days since
1970-01-01), and missing cells are kept as NaN (numeric) or as their own code (discrete).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synthdata.errors import DataError
from synthdata.schema import Column, ColumnKind, Schema

# Distances one-hot at most this many categories per column (most frequent in train); rarer
# ones share the "other" slot. Bounds the encoded width, which drives nearest-neighbour cost.
ENCODER_MAX_CATEGORIES = 20
# Discrete columns keep at most this many categories as their own code (most frequent in
# train first); the rest share one "other" code. Keeps one-hot widths and contingency
# tables bounded on high-cardinality columns.
MAX_CATEGORIES = 100
_NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class ColumnInfo:
    """How one evaluated column is represented.

    For discrete columns, codes ``0..n_categories-1`` are real categories (train order by
    frequency), ``other_code`` marks values unseen in the real data (or beyond
    ``MAX_CATEGORIES``) and ``missing_code`` marks missing cells.
    """

    name: str
    kind: ColumnKind
    is_numeric: bool
    categories: tuple[str, ...] = ()

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def other_code(self) -> int:
        return len(self.categories)

    @property
    def missing_code(self) -> int:
        return len(self.categories) + 1

    @property
    def n_codes(self) -> int:
        return len(self.categories) + 2


@dataclass
class Table:
    """One frame as arrays: ``values[name]`` is float64 (numeric) or int64 codes (discrete)."""

    label: str
    n_rows: int
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, idx: np.ndarray) -> Table:
        return Table(self.label, len(idx), {k: v[idx] for k, v in self.values.items()})


@dataclass
class Prepared:
    """The evaluated columns and the train / synthetic / holdout tables."""

    columns: list[ColumnInfo]
    excluded: dict[str, str]
    train: Table
    synth: Table
    holdout: Table | None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def info(self, name: str) -> ColumnInfo:
        return next(c for c in self.columns if c.name == name)

    @property
    def numeric(self) -> list[ColumnInfo]:
        return [c for c in self.columns if c.is_numeric]

    @property
    def discrete(self) -> list[ColumnInfo]:
        return [c for c in self.columns if not c.is_numeric]


def prepare(train: pd.DataFrame, synth: pd.DataFrame, holdout: pd.DataFrame | None,
            schema: Schema) -> Prepared:
    """Convert the frames to typed arrays for the columns the metrics use.

    Columns of kind id/text are excluded (they are never learned); a column missing from
    the synthetic data or the holdout is a ``DataError``.
    """
    frames = {"train": train, "synthetic": synth}
    if holdout is not None:
        frames["holdout"] = holdout
    for label, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"evaluate: {label} must be a pandas DataFrame, "
                            f"got {type(frame).__name__}")
        if len(frame) == 0:
            raise DataError(f"evaluate: the {label} data has no rows")
    excluded: dict[str, str] = {}
    used: list[Column] = []
    for col in schema.columns:
        if not col.kind.is_learned:
            excluded[col.name] = f"kind {col.kind.value} is never learned"
            continue
        missing_in = [label for label, frame in frames.items() if col.name not in frame.columns]
        if missing_in:
            raise DataError(f"evaluate: column {col.name!r} of schema {schema.name!r} is missing "
                            f"from the {', '.join(missing_in)} data; give frames with the "
                            "schema's columns")
        used.append(col)
    if not used:
        raise DataError(f"evaluate: schema {schema.name!r} has no column to evaluate "
                        "(all are id/text)")
    infos: list[ColumnInfo] = []
    tables = {label: Table(label, len(frame)) for label, frame in frames.items()}
    for col in used:
        is_numeric = col.kind.is_numeric or col.kind == ColumnKind.DATETIME
        if is_numeric:
            infos.append(ColumnInfo(col.name, col.kind, True))
            for label, frame in frames.items():
                tables[label].values[col.name] = _to_float(frame[col.name], col, label)
        else:
            keys = {label: category_keys(frame[col.name]) for label, frame in frames.items()}
            real = keys["train"]
            order = real.value_counts(dropna=True)
            cats = list(order.index[:MAX_CATEGORIES])
            info = ColumnInfo(col.name, col.kind, False, tuple(str(c) for c in cats))
            infos.append(info)
            for label, key in keys.items():
                tables[label].values[col.name] = _codes(key, info)
    return Prepared(infos, excluded, tables["train"], tables["synthetic"], tables.get("holdout"))


def _to_float(series: pd.Series, col: Column, label: str) -> np.ndarray:
    if col.kind == ColumnKind.DATETIME:
        if pd.api.types.is_datetime64_any_dtype(series):
            parsed = series
        else:
            parsed = pd.to_datetime(series, format=col.datetime_format, errors="coerce")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = parsed.astype("datetime64[ns]")
        out = ns.to_numpy().astype("int64").astype(float) / _NS_PER_DAY
        out[parsed.isna().to_numpy()] = np.nan
        return out
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"evaluate: column {col.name!r} of the {label} data has {int(bad.sum())} "
                        f"non-numeric value(s) (first at row {first}); the schema says "
                        f"{col.kind.value}")
    return converted.to_numpy(dtype=float, na_value=np.nan)


def _norm_key(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def category_keys(series: pd.Series) -> pd.Series:
    """Normalised text key per cell (NaN where missing)."""
    missing = series.isna().to_numpy()
    values = series.to_numpy(dtype=object)
    present = pd.Series(values[~missing], dtype=object)
    lookup = {u: _norm_key(u) for u in pd.unique(present)}
    out = np.full(len(values), np.nan, dtype=object)
    out[~missing] = present.map(lookup).to_numpy(dtype=object)
    return pd.Series(out, dtype=object)


def _codes(keys: pd.Series, info: ColumnInfo) -> np.ndarray:
    codes = pd.Index(list(info.categories), dtype=object).get_indexer(keys).astype(np.int64)
    missing = keys.isna().to_numpy()
    codes[(codes < 0) & ~missing] = info.other_code
    codes[missing] = info.missing_code
    return codes


# -- row encoding ------------------------------------------------------------------------

@dataclass(frozen=True)
class RowEncoder:
    """Encode rows as float32 vectors for nearest-neighbour searches.

    Fitted on the real (train) data only and applied to every table, so all distances live
    in one space. Numbers: ``(x - median) / scale`` where scale is the 5%-95% range
    (``"robust"``) or the min-max range (``"range"``, Gower-style); a missing number is 0
    plus an indicator column. Discrete: one-hot of the codes times ``onehot_weight``
    (``1/sqrt(2)`` makes a mismatch cost 1 in euclidean distance, ``0.5`` in manhattan).
    """

    columns: tuple[str, ...]
    centers: Mapping[str, float]
    scales: Mapping[str, float]
    has_missing: Mapping[str, bool]
    n_codes: Mapping[str, int]
    missing_codes: Mapping[str, int]
    onehot_weight: float

    @classmethod
    def fit(cls, prepared: Prepared, columns: list[str] | None = None, *, scale: str = "robust",
            onehot_weight: float = 2 ** -0.5) -> RowEncoder:
        names = columns if columns is not None else prepared.names
        tables = [t for t in (prepared.train, prepared.synth, prepared.holdout) if t is not None]
        centers, scales, has_missing, n_codes, missing_codes = {}, {}, {}, {}, {}
        for name in names:
            info = prepared.info(name)
            if info.is_numeric:
                x = prepared.train.values[name]
                finite = x[np.isfinite(x)]
                if len(finite) == 0:
                    center, width = 0.0, 1.0
                elif scale == "range":
                    center = float(np.min(finite))
                    width = float(np.max(finite) - np.min(finite))
                else:
                    center = float(np.median(finite))
                    lo, hi = np.quantile(finite, [0.05, 0.95])
                    width = float(hi - lo)
                    if width <= 0:
                        width = float(np.max(finite) - np.min(finite))
                centers[name], scales[name] = center, (width if width > 0 else 1.0)
                has_missing[name] = any(bool(np.isnan(t.values[name]).any()) for t in tables)
            else:
                n_codes[name] = min(info.n_categories, ENCODER_MAX_CATEGORIES) + 2
                missing_codes[name] = info.missing_code
        return cls(tuple(names), centers, scales, has_missing, n_codes, missing_codes,
                   onehot_weight)

    def transform(self, table: Table) -> np.ndarray:
        blocks = []
        for name in self.columns:
            x = table.values[name]
            if name in self.centers:
                z = (x - self.centers[name]) / self.scales[name]
                miss = np.isnan(z)
                # clip far outliers so one extreme value does not dominate every distance
                blocks.append(np.clip(np.where(miss, 0.0, z), -10, 10)[:, None])
                if self.has_missing[name]:
                    blocks.append(miss.astype(float)[:, None])
            else:
                width = self.n_codes[name]
                kept = width - 2
                # codes are categories by train frequency, then "other", then missing
                slot = np.where(x < kept, x, np.where(x == self.missing_codes[name],
                                                      kept + 1, kept))
                onehot = np.zeros((table.n_rows, width), dtype=np.float32)
                onehot[np.arange(table.n_rows), slot] = self.onehot_weight
                blocks.append(onehot)
        mat = np.hstack(blocks).astype(np.float32) if blocks else np.zeros((table.n_rows, 0))
        return np.ascontiguousarray(mat)


# Gradient boosting for detection, utility and the classifier attack: 60 rounds at a
# learning rate of 0.15 fit as well as the default 100 x 0.1 here at 60% of the time.
HGB_PARAMS = {"max_iter": 60, "learning_rate": 0.15, "early_stopping": False}


def model_matrix(prepared: Prepared, table: Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features for gradient boosting: numbers as is (NaN allowed), codes as categories.

    Returns the matrix and the boolean mask of categorical features.
    """
    cols, is_cat = [], []
    for name in columns:
        info = prepared.info(name)
        x = table.values[name]
        if info.is_numeric:
            cols.append(x.astype(float))
            is_cat.append(False)
        else:
            # HistGradientBoosting takes at most 255 bins per categorical feature
            cols.append(np.minimum(x, 250).astype(float))
            is_cat.append(True)
    return np.column_stack(cols), np.array(is_cat, dtype=bool)


def subsample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a uniform subsample (all rows when ``size >= n``)."""
    if size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))
