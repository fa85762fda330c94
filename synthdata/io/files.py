"""Read tables with clear errors; write files atomically (temp file, then rename)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from synthdata.errors import DataError

FORMATS = ("csv", "parquet")


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
    df.columns = [str(c) for c in df.columns]
    if fmt == "csv":
        df = _codes_as_text(df, p, encoding)
    return df


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
               if pd.api.types.is_numeric_dtype(df.iloc[:, i])
               and not pd.api.types.is_bool_dtype(df.iloc[:, i])]
    if not numeric:
        return df
    raw = pd.read_csv(path, encoding=encoding, usecols=numeric, dtype=str, low_memory=False)
    out = df.copy()
    for pos, i in enumerate(numeric):
        name = df.columns[i]
        text = raw.iloc[:, pos].str.strip()
        values = text.dropna()
        if len(values) == 0 or not values.str.fullmatch(r"[+-]?\d+(\.0+)?").all():
            continue  # decimals or exponents: a number
        leading = values.str.fullmatch(r"0\d+").any()
        widths = values.str.len()
        fixed = bool(_CODE_NAME.search(name)) and widths.min() == widths.max() >= 4
        if leading or _ZIP_NAME.search(name) or fixed:
            out.isetitem(i, text.astype(object).where(text.notna(), None))
    return out


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
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_table(df: pd.DataFrame, path: Path, fmt: str = "csv") -> Path:
    """Write ``df`` atomically as CSV or Parquet."""
    if fmt == "csv":
        return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    if fmt == "parquet":
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    raise DataError(f"unknown output format {fmt!r}; use one of {FORMATS}")
