"""Dataset uploads: stream a multipart ``file`` field to disk under a size limit, then check
its type (by content and name), encoding (UTF-8 for CSV) and column count.

The client's file name is kept for display only; the file on disk is named by the server.
Error messages name the uploaded file, never a server path, and quote no data values.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

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

    def __init__(self, dest: Path, limit: int) -> None:
        self.dest, self.limit = dest, limit
        self.size, self.filename, self.found = 0, None, False
        self._fh: Any = None
        self._field, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, Any]:
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

    def _part_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def receive_file(content_type: str | None, stream: AsyncIterator[bytes], dest: Path,
                       limit: int) -> tuple[str | None, int]:
    """Write the multipart ``file`` field to ``dest``; return (client file name, size)."""
    kind, opts = parse_options_header(content_type or "")
    boundary = opts.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the dataset as multipart/form-data with a field named "
                               "'file' (curl -F file=@data.csv)")
    sink = _FileSink(dest, limit)
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
    return sink.filename, sink.size


def inspect_file(path: Path, filename: str | None, *, max_columns: int) -> Inspected:
    """Check type, encoding and shape; raise ``UploadError`` with a clear 4xx otherwise."""
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
        return _inspect_parquet(path, label, max_columns)
    return _inspect_csv(path, label, max_columns)


def _inspect_parquet(path: Path, label: str, max_columns: int) -> Inspected:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        names = [str(n) for n in pq.read_schema(path).names]
    except Exception as err:
        raise UploadError(422, f"{label}: not a readable Parquet file") from err
    names = [n for n in names if not n.startswith("__index_level_")]
    _check_columns(label, names, max_columns)
    if meta.num_rows == 0:
        raise UploadError(422, f"{label}: the table has no rows")
    return Inspected("parquet", int(meta.num_rows), names)


def _inspect_csv(path: Path, label: str, max_columns: int) -> Inspected:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, head = 0, ""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            if b"\x00" in chunk:
                raise UploadError(415, f"{label}: binary content (NUL bytes); upload a CSV text "
                                       "file or a Parquet file")
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise UploadError(422, f"{label}: not valid UTF-8 text (invalid byte at offset "
                                       f"{offset + err.start}); re-save the file as UTF-8") from None
            if len(head) < CHUNK:
                head += text[: CHUNK - len(head)]
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UploadError(422, f"{label}: not valid UTF-8 text (truncated character at the "
                                   "end); re-save the file as UTF-8") from None
    try:
        header = next(csv.reader(io.StringIO(head.lstrip("\ufeff"))), [])
    except csv.Error as err:
        raise UploadError(422, f"{label}: cannot parse the CSV header ({err})") from None
    _check_columns(label, header, max_columns)
    from synthdata.errors import DataError
    from synthdata.io.files import read_table

    try:
        df = read_table(path, encoding="utf-8-sig", fmt="csv")
    except DataError as err:
        raise UploadError(422, str(err).replace(str(path), label)) from None
    columns = [str(c) for c in df.columns]
    _check_columns(label, columns, max_columns)
    return Inspected("csv", len(df), columns)


def _check_columns(label: str, names: list[str], max_columns: int) -> None:
    if not names or all(not n.strip() for n in names):
        raise UploadError(422, f"{label}: no header row with column names")
    if len(names) > max_columns:
        raise UploadError(422, f"{label}: {len(names)} columns is more than the limit of "
                               f"{max_columns}")
