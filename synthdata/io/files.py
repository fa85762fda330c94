"""Read tables with clear errors; write files atomically (temp file, then rename).

Written files are private: created mode 0600 (``tempfile.mkstemp``) inside folders made
with :func:`private_dir` (0700): a run folder holds rows derived from patient data and must
not be readable by other users of the machine.

CSV exports neutralise spreadsheet formulas by default (:func:`neutralize_formulas`): a
text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, or holding a
``|`` DDE call, is written with a leading single quote, so Excel, LibreOffice and Google
Sheets show it as text instead of running it (CSV injection, OWASP). Numeric columns are
never changed (``-3.5`` stays a number).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from synthdata.errors import DataError

FORMATS = ("csv", "parquet")
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def private_dir(path: str | Path, *, parents: bool = True, exist_ok: bool = True) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only (0700).

    A folder that already exists keeps its mode, except ``path`` itself when it was created
    here. Raises ``OSError`` like :meth:`Path.mkdir`.
    """
    p = Path(path)
    if parents and not p.parent.exists():
        private_dir(p.parent, parents=True, exist_ok=True)
    existed = p.exists()
    p.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=exist_ok)
    if not existed:
        os.chmod(p, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    return p


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (or a DDE call). A cell that
    starts with ``'`` is text to a spreadsheet (and is what :func:`neutralize_formulas` writes),
    so it never counts: neutralising twice changes nothing."""
    if text.startswith("'"):
        return False
    return text.startswith(_FORMULA_START) or ("|" in text and "!" in text)


def neutralize_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells that a spreadsheet would run start with ``'``.

    Only text (object/string) columns change; numbers, booleans and dates never do. Cells
    already starting with ``'`` are left alone (a second pass changes nothing).
    """
    out = None
    for name in df.columns:
        col = df[name]
        if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            continue
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            continue
        values = col.to_numpy(dtype=object, na_value=None)
        hit = np.fromiter((isinstance(v, str) and is_formula(v) for v in values), dtype=bool,
                          count=len(values))
        if not hit.any():
            continue
        if out is None:
            out = df.copy()
        values[hit] = ["'" + v for v in values[hit]]
        out[name] = pd.Series(values, index=df.index, dtype=object)
    return df if out is None else out


def read_table(path: str | Path, *, encoding: str = "utf-8", fmt: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file; every failure is a ``DataError`` naming the file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    if not p.is_file():
        raise DataError(f"data path is not a file: {p}")
    if p.stat().st_size == 0:
        raise DataError(f"data file is empty (0 bytes): {p}")
    fmt = fmt or ("parquet" if p.suffix.lower() in (".parquet", ".pq") else "csv")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
        elif fmt == "csv":
            df = pd.read_csv(p, encoding=encoding, low_memory=False)
        else:
            raise DataError(f"unknown data format {fmt!r} for {p}; use one of {FORMATS}")
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not valid {encoding} text ({err.reason} at byte {err.start}); "
                        "re-save the file as UTF-8 or set data.encoding (e.g. latin-1)") from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"data file has no columns: {p}") from err
    except pd.errors.ParserError as err:
        raise DataError(f"{p}: cannot parse as CSV: {err}") from err
    except (OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{p}: cannot read as {fmt}: {err}") from err
    if len(df) == 0:
        raise DataError(f"{p} has a header but no rows; a generator needs data to learn from")
    header = _csv_header(p, encoding) if fmt == "csv" else [str(c) for c in df.columns]
    refuse_duplicate_names(header, str(p))
    df.columns = [str(c) for c in df.columns]
    if fmt == "csv":
        df = _codes_as_text(df, p, encoding)
    return normalize_cells(df)


def _csv_header(path: Path, encoding: str) -> list[str]:
    """The header as written (pandas renames a repeated ``a`` to ``a.1``)."""
    import csv

    with open(path, encoding=encoding, newline="") as fh:
        return next(csv.reader(fh), [])


def refuse_duplicate_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise DataError(f"{where}: column name(s) {dupes} occur more than once; rename them so "
                        "every column has its own name (synthdata never renames them for you)")


def normalize_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Give object columns a learnable dtype where the conversion is exact in meaning.

    A column whose every value is a ``decimal.Decimal`` (Parquet/SQL ``DECIMAL``/``NUMERIC``)
    becomes float64 (precision beyond ~15 significant digits is lost, as in any float); a
    column of ``datetime.date``/``datetime.datetime`` values becomes datetime64. Anything
    else stays as it is and :func:`synthdata.schema.infer.check_frame` judges it.
    """
    import datetime
    import decimal

    out = df
    for i, name in enumerate(df.columns):
        series = df.iloc[:, i]
        if not pd.api.types.is_object_dtype(series):
            continue
        values = series.dropna()
        if len(values) == 0:
            continue
        types = set(values.map(type))
        if all(issubclass(t, decimal.Decimal) for t in types):
            converted = pd.to_numeric(series.astype(object).where(series.notna(), None)
                                      .map(lambda v: None if v is None else float(v)),
                                      errors="coerce").astype(float)
        elif all(issubclass(t, datetime.date) for t in types):
            try:
                converted = pd.to_datetime(series)
            except (ValueError, TypeError, OverflowError):
                continue  # dates out of pandas' range stay objects (inferred as categories)
        else:
            continue
        if out is df:
            out = df.copy()
        out.isetitem(i, converted)
    return out


_ZIP_NAME = re.compile(r"(^|[_.\s-])(zip|zipcode|zip_code|postal|postcode|postal_code)($|[_.\s-])|zip",
                       re.IGNORECASE)
_CODE_NAME = re.compile(r"(^|[_.\s-])(id|mrn|code|number|no|nr|num|account|acct|record|"
                        r"ssn|npi|phone|fax|tel)$|^(id|mrn|code)([_.\s-]|$)", re.IGNORECASE)


def _codes_as_text(df: pd.DataFrame, path: Path, encoding: str) -> pd.DataFrame:
    """Read back as text the numeric-looking columns that are codes, not quantities.

    The CSV parser turns ``"02116"`` into 2116. A numeric column is re-read as text when any
    value has a leading zero (``0`` followed by digits), when its name says ZIP/postal code, or
    when its name says code/id/number and every value has the same width of 4 or more digits.
    """
    numeric = [i for i, c in enumerate(df.columns)
               if (pd.api.types.is_numeric_dtype(df.iloc[:, i])
                   and not pd.api.types.is_bool_dtype(df.iloc[:, i])) or _has_big_ints(df.iloc[:, i])]
    if not numeric:
        return df
    raw = pd.read_csv(path, encoding=encoding, usecols=numeric, dtype=str, low_memory=False)
    out = df.copy()
    for pos, i in enumerate(numeric):
        name = df.columns[i]
        text = raw.iloc[:, pos].str.strip()
        if _has_big_ints(df.iloc[:, i]):  # integers beyond 64 bits are codes: kept as written
            out.isetitem(i, text.astype(object).where(text.notna(), None))
            continue
        values = text.dropna()
        if len(values) == 0 or not values.str.fullmatch(r"[+-]?\d+(\.0+)?").all():
            continue  # decimals or exponents: a number
        leading = values.str.fullmatch(r"0\d+").any()
        widths = values.str.len()
        fixed = bool(_CODE_NAME.search(name)) and widths.min() == widths.max() >= 4
        if leading or _ZIP_NAME.search(name) or fixed:
            out.isetitem(i, text.astype(object).where(text.notna(), None))
    return out


def _has_big_ints(series: pd.Series) -> bool:
    """An object column holding Python ints (the CSV parser's integers beyond 64 bits)."""
    if not pd.api.types.is_object_dtype(series):
        return False
    return any(isinstance(v, int) and not isinstance(v, bool) for v in series.dropna().head(1000))


def fingerprint(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and rename it into place.

    A failure leaves no partial file at ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create directory {path.parent}: {err.strerror or err}") from err
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(path, write)


def write_table(df: pd.DataFrame, path: Path, fmt: str = "csv", *,
                neutralize: bool = True) -> Path:
    """Write ``df`` atomically as CSV or Parquet (mode 0600).

    ``neutralize`` (CSV only, default on): text cells a spreadsheet would run as formulas
    get a leading ``'`` (:func:`neutralize_formulas`). Parquet keeps values as they are.
    """
    if fmt == "csv":
        data = neutralize_formulas(df) if neutralize else df
        return atomic_write(path, lambda tmp: data.to_csv(tmp, index=False))
    if fmt == "parquet":
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    raise DataError(f"unknown output format {fmt!r}; use one of {FORMATS}")


def write_table_chunks(chunks: Iterable[pd.DataFrame], path: Path, fmt: str = "csv", *,
                       neutralize: bool = True) -> int:
    """Write a table that arrives in chunks to ``path``, one chunk in memory at a time.

    CSV: the header once, then each chunk appended (formulas neutralised per chunk, as
    :func:`write_table` does). Parquet: one row group per chunk through
    ``pyarrow.parquet.ParquetWriter``, every chunk cast to the first chunk's column types (a
    column that is entirely missing in the first chunk is typed from the first chunk that
    has values; text columns stay text). Atomic like :func:`write_table`: a failure leaves no
    file at ``path``. Returns the number of rows written.
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown output format {fmt!r}; use one of {FORMATS}")
    written = [0]

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            for i, chunk in enumerate(chunks):
                data = neutralize_formulas(chunk) if neutralize else chunk
                data.to_csv(fh, index=False, header=i == 0)
                written[0] += len(chunk)

    def write_parquet(tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        schema = None
        try:
            for chunk in chunks:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if schema is None:
                    schema = pa.schema([f if not pa.types.is_null(f.type) else
                                        f.with_type(pa.string()) for f in table.schema],
                                       metadata=table.schema.metadata)
                    writer = pq.ParquetWriter(tmp, schema)
                assert writer is not None
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as err:
                    raise DataError(f"{path}: a later chunk of the synthetic table does not "
                                    f"fit the column types of the first ({err}); write CSV "
                                    "(output.format: csv) or raise sample.chunk_rows") from err
                writer.write_table(table)
                written[0] += len(chunk)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(Path(path), write_csv if fmt == "csv" else write_parquet)
    return written[0]
def frame_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's values (row order matters, the index does not)."""
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
