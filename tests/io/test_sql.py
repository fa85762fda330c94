"""SQL sources (SQLite in the fast suite, PostgreSQL when a server can start) and polars."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import synthdata as sd
from synthdata.errors import ConfigError, DataError
from synthdata.io.sql import as_pandas, read_sql, safe_url
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.runner import run_pipeline

pytest.importorskip("sqlalchemy")


def _frame(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"age": rng.integers(40, 90, n), "weight": rng.normal(70, 9, n).round(1),
                         "grp": rng.choice(["a", "b", "c"], n)})


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "clinic.db"
    with sqlite3.connect(path) as conn:
        _frame().to_sql("visits", conn, index=False)
    return path


def test_read_a_table_and_a_query(sqlite_db):
    url = f"sqlite:///{sqlite_db}"
    df = read_sql(url, table="visits")
    assert list(df.columns) == ["age", "weight", "grp"] and len(df) == 80
    older = read_sql(url, query="SELECT age, grp FROM visits WHERE age >= 60")
    assert list(older.columns) == ["age", "grp"] and (older["age"] >= 60).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"table": "nope"}, r"no table 'nope'; the database has \['visits'\]"),
    ({"query": "SELECT * FROM nope"}, r"cannot read the query: .*no such table: nope"),
    ({"query": "SELECT age FROM visits WHERE age > 1000"}, "returned no rows"),
    ({"query": "SELECT age, age FROM visits"}, r"\['age'\] occur more than once"),
])
def test_read_errors_are_data_errors(sqlite_db, kwargs, message):
    with pytest.raises(DataError, match=message):
        read_sql(f"sqlite:///{sqlite_db}", **kwargs)


def test_the_password_never_shows(tmp_path):
    url = "postgresql+psycopg://alice:s3cr3t-pw@127.0.0.1:1/clinic"
    assert safe_url(url) == "postgresql+psycopg://alice:***@127.0.0.1:1/clinic"
    pytest.importorskip("psycopg")
    with pytest.raises(DataError) as info:  # nothing listens on port 1
        read_sql(url, query="SELECT 1")
    assert "s3cr3t-pw" not in str(info.value) and "alice:***@" in str(info.value)
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL"):
        read_sql("nonsense://x:pw@h/db", query="SELECT 1")


def test_url_from_the_environment(sqlite_db, monkeypatch):
    monkeypatch.setenv("CLINIC_DB", f"sqlite:///{sqlite_db}")
    assert len(read_sql("env:CLINIC_DB", table="visits")) == 80
    monkeypatch.delenv("CLINIC_DB")
    with pytest.raises(ConfigError, match="environment variable 'CLINIC_DB' is not set"):
        read_sql("env:CLINIC_DB", table="visits")


@pytest.mark.parametrize("data, message", [
    ({"sql": "sqlite:///x.db"}, "exactly one of 'query'"),
    ({"sql": "sqlite:///x.db", "query": "SELECT 1", "table": "t"}, "exactly one of 'query'"),
    ({"path": "x.csv", "query": "SELECT 1"}, "'query' needs 'sql'"),
    ({"path": "x.csv", "sql": "sqlite:///x.db", "table": "t"}, "exactly one of 'path'"),
])
def test_sql_config_shapes(data, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict({"data": data})


def _pipeline(folder: Path, data: dict) -> Path:
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump({
        "data": data, "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 5}},
        "evaluate": {"full": False}, "gate": "none", "output": {"dir": "out"}}))
    return path


def test_a_pipeline_reads_sqlite_relative_to_its_yaml(sqlite_db):
    folder = sqlite_db.parent
    result = run_pipeline(_pipeline(folder, {"sql": "sqlite:///clinic.db",
                                             "query": "SELECT * FROM visits"}))
    synth = pd.read_csv(result.synthetic_path)
    assert list(synth.columns) == ["age", "weight", "grp"] and len(synth) > 0
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["input"]["sql"] == f"sqlite:///{sqlite_db}"
    assert manifest["input"]["query"] == "SELECT * FROM visits" and manifest["input"]["sha256"]


def test_the_cli_reads_a_table(sqlite_db):
    from synthdata.cli import main

    code = main(["run", str(_pipeline(sqlite_db.parent, {"sql": "sqlite:///clinic.db",
                                                         "table": "visits"})), "-q"])
    assert code == 0
    bad = _pipeline(sqlite_db.parent, {"sql": "sqlite:///clinic.db", "table": "missing"})
    assert main(["run", str(bad), "-q"]) == 2
    assert not list((sqlite_db.parent / "out").glob(".run-*"))


# -- polars ---------------------------------------------------------------------------------
def test_polars_frames_are_accepted_in_the_python_api(tmp_path):
    pl = pytest.importorskip("polars")
    df = _frame()
    frame = pl.from_pandas(df)
    schema = sd.Schema.infer(frame)
    assert schema.names == ["age", "weight", "grp"]
    gen = sd.make_generator("gmm", schema, n_components=2, max_iter=3).fit(frame)
    assert len(gen.sample(10, seed=0)) == 10
    cfg = {"data": {"path": "unused.csv"}, "evaluate": {"full": False}, "gate": "none",
           "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 3}},
           "output": {"dir": str(tmp_path)}}
    result = run_pipeline(cfg, data=frame)
    assert len(pd.read_csv(result.synthetic_path)) > 0
    pd.testing.assert_frame_equal(as_pandas(frame), df, check_dtype=False)


def test_other_objects_are_refused():
    with pytest.raises(DataError, match="expected a pandas or polars DataFrame, got list"):
        as_pandas([[1, 2]])


# -- PostgreSQL (a throwaway local server) --------------------------------------------------
def _pg_bin(name: str) -> str | None:
    import glob

    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        found = candidates[-1] if candidates else None
    return found


@pytest.fixture(scope="module")
def pg_url():
    """A PostgreSQL server on 127.0.0.1 with a table ``visits``; skipped when the server
    binaries (initdb, pg_ctl) or psycopg are missing, or no unprivileged user exists."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    pytest.importorskip("psycopg")
    user_kw = {}
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            user_kw = {"user": name}
            break
        else:
            pytest.skip("running as root and no unprivileged user to run PostgreSQL as")
    root = Path(tempfile.mkdtemp(prefix="sd-sql-pg-"))
    os.chmod(root, 0o755)
    if user_kw:
        shutil.chown(root, user=user_kw["user"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    try:
        subprocess.run([initdb, "-D", str(data), "-U", "sd", "--auth=trust", "-E", "UTF8",
                        "--no-locale", "--no-sync"], check=True, capture_output=True,
                       timeout=120, **user_kw)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w",
                        "-t", "60", "start"], check=True, capture_output=True, timeout=90,
                       **user_kw)
        # trust auth accepts any password: the URL carries one to prove it is never shown
        url = f"postgresql+psycopg://sd:pg-pw-123@127.0.0.1:{port}/postgres"
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE visits (age integer, weight numeric(5,1), "
                                 "grp text, seen date)"))
            df = _frame()
            rows = [{"age": int(a), "weight": float(w), "grp": g, "seen": f"2020-01-{d:02d}"}
                    for a, w, g, d in zip(df["age"], df["weight"], df["grp"],
                                          np.arange(80) % 28 + 1)]
            conn.execute(sa.text("INSERT INTO visits VALUES (:age, :weight, :grp, :seen)"), rows)
        engine.dispose()
        try:
            yield url
        finally:
            subprocess.run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=90, check=False, **user_kw)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_postgresql_query_to_synthetic_rows_without_the_password(pg_url, tmp_path, capsys):
    df = read_sql(pg_url, query="SELECT * FROM visits")
    assert df["weight"].dtype == np.float64  # NUMERIC (Decimal) became float
    assert pd.api.types.is_datetime64_any_dtype(df["seen"])  # DATE became a datetime
    result = run_pipeline({
        "data": {"sql": pg_url, "table": "visits"}, "evaluate": {"full": False},
        "gate": "none", "generator": {"kind": "gmm", "params": {"n_components": 2,
                                                               "max_iter": 3}},
        "deid": {"unmarked": "transform"}, "output": {"dir": str(tmp_path)}})
    assert len(pd.read_csv(result.synthetic_path)) > 0
    for path in result.run_dir.iterdir():
        assert "pg-pw-123" not in path.read_text(errors="replace"), path.name
    assert "pg-pw-123" not in capsys.readouterr().err
