"""Dataset uploads: stream a multipart ``file`` field to disk under a size limit, then check
its type (by content and name), encoding (UTF-8 for CSV) and column count.

The client's file name is kept for display only; the file on disk is named by the server.
Error messages name the uploaded file, never a server path, and quote no data values.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

CHUNK = 1 << 20
PARQUET_MAGIC = b"PAR1"
CSV_EXTS = (".csv",)
PARQUET_EXTS = (".parquet", ".pq")


class UploadError(Exception):
    """A rejected upload: ``status`` is the HTTP status, the message is for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Inspected:
    format: str
    n_rows: int
    columns: list[str]


def display_name(filename: str | None) -> str:
    """The client's file name reduced to a harmless label (never used as a path)."""
    if not filename:
        return "upload"
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    return base[:255] or "upload"


class _FileSink:
    """python-multipart callbacks that write the first ``file`` field to ``dest``."""

    def __init__(self, dest: Path, limit: int, max_cells: int | None = None) -> None:
        self.dest, self.limit, self.max_cells = dest, limit, max_cells
        self.size, self.found = 0, False
        self.filename: str | None = None
        self._head, self._n_columns, self._newlines = b"", 0, 0
        self.digest = hashlib.sha256()
        self._fh: Any = None
        self._field, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._data,
                "on_part_end": self._part_end}

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        if opts.get(b"name") == b"file" and not self.found:
            self.found = True
            raw = opts.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None
            # private: the upload is the real data (0600, whatever the umask)
            self._fh = os.fdopen(os.open(self.dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                         0o600), "wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is None:
            return
        self.size += end - start
        if self.size > self.limit:
            raise UploadError(413, f"the file is larger than the upload limit "
                                   f"({self.limit / 1024 / 1024:g} MB)")
        self._fh.write(data[start:end])
        self.digest.update(data[start:end])
        if self.max_cells is not None:
            self._count_cells(data[start:end])

    def _count_cells(self, chunk: bytes) -> None:
        """Refuse a CSV while it streams once its lines x header columns pass the limit
        (a quoted line break counts as a line: the count errs on the safe side)."""
        if not self._n_columns:
            self._head += chunk
            if self._head.startswith(PARQUET_MAGIC):
                self.max_cells = None  # Parquet: checked from its metadata (inspect_file)
                return
            if b"\n" not in self._head and len(self._head) < CHUNK:
                return
            line = self._head.split(b"\n", 1)[0].decode("utf-8", "replace")
            self._n_columns = max(1, len(next(csv.reader([line]), [])))
            chunk, self._head = self._head, b""
        self._newlines += chunk.count(b"\n")
        cells = self._newlines * self._n_columns
        if self.max_cells is not None and cells > self.max_cells:
            raise UploadError(413, f"the table has more than {self.max_cells} cells (rows x "
                                   f"columns), this server's upload limit (GET /v1/limits)")

    def _part_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def receive_file(content_type: str | None, stream: AsyncIterator[bytes], dest: Path,
                       limit: int, max_cells: int | None = None) -> tuple[str | None, int, str]:
    """Write the multipart ``file`` field to ``dest``; return (client file name, size,
    SHA-256 of the content).
    ``max_cells``: refuse a CSV (413) as soon as its rows x columns pass it."""
    kind, opts = parse_options_header(content_type or "")
    boundary = opts.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the dataset as multipart/form-data with a field named "
                               "'file' (curl -F file=@data.csv)")
    sink = _FileSink(dest, limit, max_cells)
    parser = MultipartParser(boundary, sink.callbacks())
    total, overhead = 0, 1 << 20
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > limit + overhead:
                raise UploadError(413, f"the request is larger than the upload limit "
                                       f"({limit / 1024 / 1024:g} MB)")
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as err:  # malformed multipart body
        raise UploadError(400, "the multipart body could not be parsed") from err
    finally:
        sink.close()
    if not sink.found:
        raise UploadError(422, "no field named 'file' in the form; send the dataset as "
                               "multipart/form-data field 'file'")
    return sink.filename, sink.size, sink.digest.hexdigest()


def inspect_file(path: Path, filename: str | None, *, max_columns: int,
                 max_cells: int | None = None, sample_rows: int = 1000) -> Inspected:
    """Check type, encoding and shape; raise ``UploadError`` with a clear 4xx otherwise.

    Memory stays bounded whatever the file: a Parquet file is judged from its metadata
    (rows x columns and the declared uncompressed size, before any page is decompressed);
    a CSV is counted row by row and only its first ``sample_rows`` rows are parsed.
    """
    label = display_name(filename)
    size = path.stat().st_size
    if size == 0:
        raise UploadError(422, f"{label}: the file is empty")
    with open(path, "rb") as fh:
        is_parquet = fh.read(4) == PARQUET_MAGIC
    ext = Path(label).suffix.lower() if filename else ""
    if ext and ext not in CSV_EXTS + PARQUET_EXTS:
        raise UploadError(415, f"{label}: unsupported file type {ext!r}; upload CSV (.csv) "
                               "or Parquet (.parquet)")
    if ext in PARQUET_EXTS and not is_parquet:
        raise UploadError(415, f"{label}: the name says Parquet but the content is not a "
                               "Parquet file")
    if ext in CSV_EXTS and is_parquet:
        raise UploadError(415, f"{label}: the name says CSV but the content is a Parquet file")
    if is_parquet:
        return _inspect_parquet(path, label, max_columns, max_cells)
    return _inspect_csv(path, label, max_columns, max_cells, sample_rows)


def _too_many_cells(label: str, n_rows: int, n_columns: int, max_cells: int | None) -> None:
    if max_cells is not None and n_rows * n_columns > max_cells:
        raise UploadError(413, f"{label}: {n_rows} rows x {n_columns} columns is more than "
                               f"this server's limit of {max_cells} cells (GET /v1/limits)")


def _inspect_parquet(path: Path, label: str, max_columns: int,
                     max_cells: int | None) -> Inspected:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        names = [str(n) for n in pq.read_schema(path).names]
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except Exception as err:
        raise UploadError(422, f"{label}: not a readable Parquet file") from err
    names = [n for n in names if not n.startswith("__index_level_")]
    _check_columns(label, names, max_columns)
    if meta.num_rows == 0:
        raise UploadError(422, f"{label}: the table has no rows")
    _too_many_cells(label, int(meta.num_rows), len(names), max_cells)
    if max_cells is not None and declared > 64 * max_cells:  # > 64 bytes a cell unpacked
        raise UploadError(413, f"{label}: the file unpacks to {declared} bytes, more than this "
                               f"server allows for {max_cells} cells (GET /v1/limits)")
    return Inspected("parquet", int(meta.num_rows), names)


def _check_utf8(path: Path, label: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            if b"\x00" in chunk:
                raise UploadError(415, f"{label}: binary content (NUL bytes); upload a CSV text "
                                       "file or a Parquet file")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise UploadError(422, f"{label}: not valid UTF-8 text (invalid byte at offset "
                                       f"{offset + err.start}); re-save the file as UTF-8") from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UploadError(422, f"{label}: not valid UTF-8 text (truncated character at the "
                                   "end); re-save the file as UTF-8") from None


def _inspect_csv(path: Path, label: str, max_columns: int, max_cells: int | None,
                 sample_rows: int) -> Inspected:
    _check_utf8(path, label)
    n_rows = 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, [])
            _check_columns(label, header, max_columns)
            for row in reader:  # one row in memory at a time
                if not row:
                    continue
                n_rows += 1
                if len(row) > len(header):
                    raise UploadError(422, f"{label}: line {reader.line_num} has {len(row)} "
                                           f"fields, the header {len(header)}")
                _too_many_cells(label, n_rows, len(header), max_cells)
        except csv.Error as err:
            raise UploadError(422, f"{label}: cannot parse the CSV (line {reader.line_num}: "
                                   f"{err})") from None
    if n_rows == 0:
        raise UploadError(422, f"{label} has a header but no rows; a generator needs data "
                               "to learn from")
    columns = _sample_columns(path, label, sample_rows)
    _check_columns(label, columns, max_columns)
    return Inspected("csv", n_rows, columns)


def _sample_columns(path: Path, label: str, sample_rows: int) -> list[str]:
    """The column names as the pipeline will read them, from a bounded sample."""
    from synthdata.errors import DataError

    try:
        df = read_sample(path, "csv", sample_rows)
    except DataError as err:
        raise UploadError(422, str(err).replace(str(path), label)) from None
    return [str(c) for c in df.columns]


def read_sample(path: Path, fmt: str, n_rows: int) -> Any:
    """The first ``n_rows`` rows of a stored upload (bounded memory), read as the pipeline
    reads files (``DataError`` naming the file otherwise)."""
    import pandas as pd

    from synthdata.errors import DataError

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            batch = next(pq.ParquetFile(path).iter_batches(batch_size=n_rows), None)
            if batch is None:
                raise DataError(f"{path} has no rows")
            df = batch.to_pandas()
        else:
            df = pd.read_csv(path, encoding="utf-8-sig", nrows=n_rows, low_memory=False)
    except DataError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
        raise DataError(f"{path}: cannot parse as {fmt}: {err}") from None
    df.columns = [str(c) for c in df.columns]
    return df


def _check_columns(label: str, names: list[str], max_columns: int) -> None:
    if not names or all(not n.strip() for n in names):
        raise UploadError(422, f"{label}: no header row with column names")
    if len(names) > max_columns:
        raise UploadError(422, f"{label}: {len(names)} columns is more than the limit of "
                               f"{max_columns}")
