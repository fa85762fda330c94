"""Schema inference: propose a kind and its details for every column of a DataFrame."""

from __future__ import annotations

import datetime
import re
import warnings

import numpy as np
import pandas as pd

from synthdata.errors import DataError
from synthdata.schema.column import Column
from synthdata.types import ColumnKind, to_native

# A numeric column with at most this many distinct values (all whole numbers) is categorical.
MAX_NUMERIC_CATEGORIES = 10
# A string column whose share of distinct values is above this (with enough rows) is an id.
ID_UNIQUE_SHARE = 0.9
MIN_ROWS_FOR_ID = 20
_ID_NAME = re.compile(r"(^|[_.\s-])(id|key|uuid|guid|pid|mrn|index)$|^id[_.]", re.IGNORECASE)
_ZIP_NAME = re.compile(r"(^|[_.\s-])(zip|zipcode|zip_code|postal|postcode|postal_code)"
                       r"($|[_.\s-])|zip", re.IGNORECASE)
_CODE_NAME = re.compile(r"(^|[_.\s-])(id|mrn|code|number|no|nr|num|account|acct|record)$"
                        r"|^(id|mrn|code)([_.\s-]|$)", re.IGNORECASE)
_BOOL_STRINGS = ({"yes", "no"}, {"true", "false"}, {"y", "n"}, {"t", "f"})
# The largest magnitude a number may have: squares and sums of squares of a few billion
# such values stay finite in float64 (1e308), so variances, distances and reports hold.
MAX_ABS_VALUE = 1e100
_SCALARS = (str, bool, int, float, np.generic, pd.Timestamp, pd.Timedelta, datetime.date)


def check_frame(df: pd.DataFrame, *, where: str = "data") -> None:
    """Refuse a table whose shape no generator can learn; every failure names the column.

    Checked (fail closed, nothing is dropped or replaced silently): column names are unique
    strings; no column holds nested values (lists, arrays, dicts, structs, maps — e.g. Parquet
    list/struct/map columns); no number is infinite or beyond ``MAX_ABS_VALUE`` (``inf``
    is refused rather than read as missing: a sensor's overflow is not an absent value, and
    the user decides); integers beyond 64 bits are refused (store them as text: they are then
    labels); other Python objects (``decimal.Decimal``, ``bytes``, dates) are refused in a
    DataFrame given directly — the file and SQL readers convert whole columns of decimals to
    floats and of dates to datetimes (:func:`synthdata.io.files.normalize_cells`).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    names = list(df.columns)
    dupes = sorted({str(c) for c in names if names.count(c) > 1})
    if dupes:
        raise DataError(f"{where}: column name(s) {dupes} occur more than once; rename them so "
                        "every column has its own name")
    for i, name in enumerate(names):
        series = df.iloc[:, i]
        if pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_float_dtype(series) or pd.api.types.is_complex_dtype(series):
            _check_finite(name, series, where)
        elif pd.api.types.is_object_dtype(series):
            _check_cells(name, series, where)


def _check_finite(name: str, series: pd.Series, where: str) -> None:
    if pd.api.types.is_complex_dtype(series):
        raise DataError(f"{where}: column {name!r} holds complex numbers; split it into real "
                        "and imaginary columns or drop it (data.drop)")
    arr = series.to_numpy(dtype=float, na_value=np.nan)
    inf = np.isinf(arr)
    if inf.any():
        first = int(np.flatnonzero(inf)[0])
        raise DataError(f"{where}: column {name!r} has {int(inf.sum())} infinite value(s) "
                        f"(first: {arr[first]}, row {first}); replace them with a finite value "
                        "or leave the cell empty (missing), or drop the column (data.drop)")
    big = np.abs(np.nan_to_num(arr)) > MAX_ABS_VALUE
    if big.any():
        first = int(np.flatnonzero(big)[0])
        raise DataError(f"{where}: column {name!r} has {int(big.sum())} value(s) beyond "
                        f"±{MAX_ABS_VALUE:g} (first: {arr[first]:g}, row {first}); rescale the "
                        "column (e.g. another unit or a log) or drop it (data.drop)")


def _check_cells(name: str, series: pd.Series, where: str) -> None:
    import decimal

    values = series.dropna().to_numpy(dtype=object)
    odd = [v for v in values if not isinstance(v, _SCALARS)]
    if odd:
        first = odd[0]
        if isinstance(first, (list, tuple, dict, set, np.ndarray)):
            raise DataError(f"{where}: column {name!r} holds nested values "
                            f"({type(first).__name__}, e.g. {_short(first)}); a generator learns "
                            "flat columns only: flatten it (one column per field or element) "
                            "or drop it (data.drop)")
        if isinstance(first, decimal.Decimal):
            raise DataError(f"{where}: column {name!r} holds decimal.Decimal values; convert "
                            f"it to float (df[{name!r}].astype(float)) or to text")
        raise DataError(f"{where}: column {name!r} holds {type(first).__name__} values "
                        f"(e.g. {_short(first)}); convert them to numbers or text, or drop the "
                        "column (data.drop)")
    huge = [v for v in values if isinstance(v, int) and not isinstance(v, bool)
            and not -2**63 <= v < 2**64]
    if huge:
        raise DataError(f"{where}: column {name!r} has {len(huge)} integer(s) beyond 64 bits "
                        f"(first: {huge[0]}); numbers that long are codes: store them as text")
    floats = np.array([v for v in values if isinstance(v, (float, np.floating))], dtype=float)
    if len(floats):
        _check_finite(name, pd.Series(floats), where)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def infer_columns(df: pd.DataFrame, name: str = "table"
                  ) -> tuple[tuple[Column, ...], str | None, tuple[str, ...]]:
    """Propose the columns of ``df``, its primary key and notes (:meth:`Schema.infer` uses it).

    Kinds follow simple, documented rules: booleans are two-valued columns (0/1, yes/no,
    true/false); ZIP-named and fixed-width code-named whole numbers are categories or ids
    (labels, not amounts); numbers with few distinct whole values are categorical; whole-number
    columns are integers; strings that parse as dates with one format are datetimes;
    unique keys and high-cardinality strings are ids (never learned); long free text is
    text. Bounds and categories are read from the data (so they are *not* public).
    """
    if not isinstance(df, pd.DataFrame):  # a polars DataFrame is converted
        from synthdata.io.sql import as_pandas

        df = as_pandas(df, where=f"table {name!r}")
    if df.shape[1] == 0:
        raise DataError("the table has no columns")
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise DataError(f"column names must be strings; got {bad[:5]}")
    check_frame(df, where=f"table {name!r}")
    columns = [infer_column(df[c]) for c in df.columns]
    notes = []
    for col in columns:
        if col.kind == ColumnKind.ID:
            notes.append(f"{col.name}: looks like an identifier; regenerated, never learned")
        if col.kind == ColumnKind.TEXT:
            notes.append(f"{col.name}: free text; not synthesised (output is empty)")
    pk = next((c.name for c in columns if c.kind == ColumnKind.ID and df[c.name].is_unique
               and df[c.name].notna().all()), None)
    return tuple(columns), pk, tuple(notes)


def infer_column(series: pd.Series) -> Column:
    """Propose a :class:`Column` for one series."""
    name = str(series.name)
    dtype = str(series.dtype)
    nonnull = series.dropna()
    nullable = bool(len(nonnull) < len(series))
    n = len(series)
    if len(nonnull) == 0:
        # Entirely missing: a categorical with no categories; output stays missing.
        return Column(name, ColumnKind.CATEGORICAL, dtype=dtype, nullable=True, categories=())
    if pd.api.types.is_bool_dtype(series):
        return _discrete(name, ColumnKind.BOOLEAN, dtype, nullable, nonnull)
    if pd.api.types.is_datetime64_any_dtype(series):
        return Column(name, ColumnKind.DATETIME, dtype=dtype, nullable=nullable,
                      min=None, max=None)
    if pd.api.types.is_numeric_dtype(series):
        if _is_code(name, nonnull):  # ZIP codes and fixed-width codes are labels, not amounts
            unique_share = nonnull.nunique() / len(nonnull)
            if len(nonnull) >= MIN_ROWS_FOR_ID and unique_share > ID_UNIQUE_SHARE:
                return Column(name, ColumnKind.ID, dtype=dtype, nullable=nullable)
            return _discrete(name, ColumnKind.CATEGORICAL, dtype, nullable, nonnull)
        return _numeric(name, dtype, nullable, nonnull, n)
    values = nonnull.astype(str) if not _all_str(nonnull) else nonnull
    n_unique = values.nunique()
    if n_unique == 2 and {v.strip().lower() for v in values.unique()} in _BOOL_STRINGS:
        return _discrete(name, ColumnKind.BOOLEAN, dtype, nullable, nonnull)
    if _all_str(nonnull):
        fmt = _datetime_format(values)
        if fmt is not None:
            return Column(name, ColumnKind.DATETIME, dtype=dtype, nullable=nullable,
                          datetime_format=fmt)
    share = n_unique / max(len(nonnull), 1)
    if len(nonnull) >= MIN_ROWS_FOR_ID and share > ID_UNIQUE_SHARE:
        mean_len = float(values.str.len().mean())
        has_spaces = float(values.str.contains(" ", regex=False).mean()) > 0.5
        kind = ColumnKind.TEXT if (mean_len > 30 and has_spaces) else ColumnKind.ID
        return Column(name, kind, dtype=dtype, nullable=nullable)
    return _discrete(name, ColumnKind.CATEGORICAL, dtype, nullable, nonnull)


def _is_code(name: str, nonnull: pd.Series) -> bool:
    """Whole numbers that are codes: a ZIP/postal-code name, or a code/id/number name with every
    value of the same width (4 digits or more)."""
    if pd.api.types.is_bool_dtype(nonnull):
        return False
    arr = nonnull.to_numpy(dtype=float)
    if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.all(arr >= 0)):
        return False
    if _ZIP_NAME.search(name):
        return True
    if _CODE_NAME.search(name):
        widths = {len(str(int(v))) for v in arr}
        return len(widths) == 1 and min(widths) >= 4
    return False


def _all_str(values: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        return True
    return bool(values.map(type).eq(str).all())


def _discrete(name: str, kind: ColumnKind, dtype: str, nullable: bool,
              nonnull: pd.Series) -> Column:
    cats = _sorted_categories(nonnull.unique())
    return Column(name, kind, dtype=dtype, nullable=nullable, categories=tuple(cats))


def _sorted_categories(values: np.ndarray) -> list:
    natives = [to_native(v) for v in values]
    try:
        return sorted(natives)
    except TypeError:  # mixed types: order by type name, then value text
        return sorted(natives, key=lambda v: (type(v).__name__, str(v)))


def _numeric(name: str, dtype: str, nullable: bool, nonnull: pd.Series, n: int) -> Column:
    arr = nonnull.to_numpy(dtype=float)
    whole = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    uniques = np.unique(arr)
    if len(uniques) == 2 and set(uniques.tolist()) == {0.0, 1.0}:
        return _discrete(name, ColumnKind.BOOLEAN, dtype, nullable, nonnull)
    if whole and len(uniques) <= MAX_NUMERIC_CATEGORIES and n >= 3 * len(uniques):
        return _discrete(name, ColumnKind.CATEGORICAL, dtype, nullable, nonnull)
    if not whole and len(uniques) <= 5 and n >= 20 * len(uniques):
        return _discrete(name, ColumnKind.CATEGORICAL, dtype, nullable, nonnull)
    lo, hi = float(arr.min()), float(arr.max())
    if whole:
        named_like_id = _ID_NAME.search(name) is not None
        is_key = n >= MIN_ROWS_FOR_ID and (
            (len(uniques) == n and (named_like_id or hi - lo + 1 == n))
            or (named_like_id and len(uniques) > max(20, 0.05 * len(arr))))
        if is_key:
            return Column(name, ColumnKind.ID, dtype=dtype, nullable=nullable)
        return Column(name, ColumnKind.INTEGER, dtype=dtype, nullable=nullable,
                      min=int(lo), max=int(hi))
    return Column(name, ColumnKind.CONTINUOUS, dtype=dtype, nullable=nullable, min=lo, max=hi)


_DATE_HINT = re.compile(r"\d{1,4}[-/.:]\d{1,2}")


def _datetime_format(values: pd.Series) -> str | None:
    """Return one strftime format that parses and re-formats every value exactly, else None."""
    from pandas.tseries.api import guess_datetime_format

    sample = values.iloc[: min(len(values), 200)]
    if not sample.map(lambda v: bool(_DATE_HINT.search(v))).all():
        return None
    fmt = guess_datetime_format(str(sample.iloc[0]))
    if fmt is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    if parsed.isna().any():
        return None
    if not (parsed.dt.strftime(fmt) == values.to_numpy()).all():
        return None
    return fmt
