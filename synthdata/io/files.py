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
from collections.abc import Callable
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
    """Whether a spreadsheet would read ``text`` as a formula (or a DDE call)."""
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


def frame_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's values (row order matters, the index does not)."""
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
