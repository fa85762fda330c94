"""Read a table or a query from a SQL database by SQLAlchemy URL; accept polars frames.

The URL may name its password; it is never logged, never written to a report or manifest
and never shown in an error (:func:`safe_url` masks it as ``***``). To keep the password
out of the pipeline YAML, write ``sql: env:NAME`` and put the URL in the environment
variable ``NAME``.

SQLAlchemy (and the database's driver, e.g. ``psycopg`` for PostgreSQL) is imported only
when a SQL source is read: ``pip install 'synthdata[sql]'`` (``synthdata[postgres]`` adds
psycopg).
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

from synthdata.errors import ConfigError, DataError

_ENV = "env:"


def resolve_url(url: str, *, where: str = "data.sql") -> str:
    """The URL itself, or the value of the environment variable an ``env:NAME`` names."""
    if url.startswith(_ENV):
        name = url[len(_ENV):].strip()
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"{where}: environment variable {name!r} is not set; export it "
                              "with the database URL (e.g. postgresql+psycopg://user:pw@host/db)")
        return value
    return url


def safe_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (``env:NAME`` is shown as is)."""
    if url.startswith(_ENV):
        return url
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
    except ImportError:
        return _mask(url)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):  # not a URL SQLAlchemy can parse
        return _mask(url)


def _mask(url: str) -> str:
    """Mask anything between ``user:`` and ``@``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its password from a driver's error text."""
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        password = make_url(url).password
    except (ImportError, ArgumentError, ValueError, TypeError):
        password = None
    text = text.replace(url, safe_url(url))
    if password:
        text = text.replace(str(password), "***")
    return text


def read_sql(url: str, *, query: str | None = None, table: str | None = None,
             where: str = "data.sql") -> pd.DataFrame:
    """Read ``query``'s result, or the whole ``table``, from the database at ``url``.

    Every failure is a ``DataError``/``ConfigError`` that names the source with its password
    masked. Decimal columns (SQL ``NUMERIC``) become floats and date columns datetimes
    (:func:`synthdata.io.files.normalize_cells`); the table then faces the same checks as a
    file (:func:`synthdata.schema.infer.check_frame`).
    """
    if (query is None) == (table is None):
        raise ConfigError(f"{where}: give exactly one of 'query' (SELECT ...) or 'table'")
    real = resolve_url(url, where=where)
    shown = safe_url(real)
    try:
        import sqlalchemy as sa
    except ImportError as err:
        raise ConfigError("reading from a SQL database needs SQLAlchemy: pip install "
                          "'synthdata[sql]'") from err
    try:
        engine = sa.create_engine(real)
    except ImportError as err:  # the dialect's driver (psycopg, pymysql, ...) is missing
        raise ConfigError(f"{where} ({shown}): the database driver is not installed "
                          f"({err}); e.g. pip install 'synthdata[postgres]'") from None
    except (sa.exc.ArgumentError, ValueError, TypeError) as err:  # a malformed URL
        raise ConfigError(f"{where}: not a valid SQLAlchemy URL ({shown}): "
                          f"{_scrub(str(err), real)}") from None
    what = f"table {table!r}" if table is not None else "query"
    try:
        with engine.connect() as conn:
            if table is not None:
                if not sa.inspect(conn).has_table(table):
                    names = sa.inspect(conn).get_table_names()
                    raise DataError(f"{where} ({shown}): no table {table!r}; the database has "
                                    f"{names[:20]}")
                stmt: Any = sa.select(sa.table(table, *[sa.column(c["name"]) for c in
                                                     sa.inspect(conn).get_columns(table)]))
            else:
                stmt = sa.text(str(query))
            df = pd.read_sql(stmt, conn)
    except DataError:
        raise
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as err:
        cause = err.__cause__ if isinstance(err, pd.errors.DatabaseError) and err.__cause__ \
            else err
        detail = _scrub(str(getattr(cause, "orig", None) or cause).splitlines()[0], real)
        raise DataError(f"{where} ({shown}): cannot read the {what}: {detail}; check the URL, "
                        "the credentials and the SQL") from None
    finally:
        engine.dispose()
    if df.shape[1] == 0:
        raise DataError(f"{where} ({shown}): the {what} returned no columns")
    if len(df) == 0:
        raise DataError(f"{where} ({shown}): the {what} returned no rows; a generator needs "
                        "data to learn from")
    from synthdata.io.files import normalize_cells, refuse_duplicate_names

    refuse_duplicate_names([str(c) for c in df.columns], f"{where} ({shown}) {what}")
    df.columns = [str(c) for c in df.columns]
    return normalize_cells(df)


def as_pandas(data: Any, *, where: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame: pandas passes through, a polars DataFrame (or
    LazyFrame) is converted with ``to_pandas()``; anything else is a ``DataError``."""
    if isinstance(data, pd.DataFrame):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        if type(data).__name__ == "LazyFrame":
            data = data.collect()
        if type(data).__name__ == "DataFrame":
            try:
                return data.to_pandas()
            except Exception as err:  # pyarrow missing or a type pandas cannot hold
                raise DataError(f"{where}: cannot convert the polars DataFrame to pandas: "
                                f"{err}") from err
    raise DataError(f"{where}: expected a pandas or polars DataFrame, got "
                    f"{type(data).__name__}")
