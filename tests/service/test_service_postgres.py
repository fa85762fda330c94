"""Slow: the service on PostgreSQL, in a throwaway cluster this module starts and stops.

Needs the PostgreSQL server binaries (``initdb``, ``pg_ctl``; on PATH or in
/usr/lib/postgresql/*/bin) and the driver (``pip install 'synthdata[postgres]'``,
psycopg 3); skipped, with the reason, when either is missing. As root, the cluster runs
as an unprivileged user (``postgres``, else ``nobody``): PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthdata.service.settings import DEFAULT_RUNNER
from synthdata.service.store import Store
from tests.service.conftest import ROOT, TINY, assert_tenant_isolated, open_api

pytestmark = pytest.mark.slow
USER = "synthdata"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        found = candidates[-1] if candidates else None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server() -> Iterator[tuple[str, int]]:
    """A PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off): yields (host, port)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: "
                                          "pip install 'synthdata[postgres]'")
    run_as: str | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            run_as = name
            break
        else:
            pytest.skip("running as root and no unprivileged user to run PostgreSQL as")
    # not pytest's tmp_path: its parents are private to root, the server user must enter
    root = Path(tempfile.mkdtemp(prefix="synthdata-pg-"))
    os.chmod(root, 0o755)
    if run_as is not None:
        shutil.chown(root, user=run_as)
    data, log, port = root / "data", root / "server.log", _free_port()
    user_kw = {"user": run_as} if run_as is not None else {}
    try:
        subprocess.run([initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                        "--no-locale", "--no-sync"], check=True, capture_output=True,
                       timeout=120, **user_kw)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        started = subprocess.run([pg_ctl, "-D", str(data), "-l", str(log), "-o", opts,
                                  "-w", "-t", "60", "start"], capture_output=True, text=True,
                                 timeout=90, **user_kw)
        if started.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise AssertionError(f"pg_ctl start failed: {started.stderr}\n{tail}")
        try:
            yield "127.0.0.1", port
        finally:
            subprocess.run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                           capture_output=True, timeout=90, **user_kw)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _database(pg_server: tuple[str, int], name: str) -> str:
    """A fresh database; its URL without a driver name (the store picks psycopg 3)."""
    import psycopg

    host, port = pg_server
    with psycopg.connect(host=host, port=port, user=USER, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{USER}@{host}:{port}/{name}"


def test_service_on_postgresql(pg_server, tmp_path, small_csv):
    url = _database(pg_server, "service")
    # `synthdata tokens create --db URL` creates the tables and prints the token last
    out = subprocess.run([sys.executable, "-m", "synthdata.cli", "tokens", "create", "--tenant",
                          "gamma", "--db", url], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=120)
    gamma = {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}
    client, api = open_api(tmp_path, db_url=url, runner=DEFAULT_RUNNER)
    try:
        store: Store = api.app.state.store
        assert store.engine.dialect.name == "postgresql" and not store.inline_reads
        assert not (tmp_path / "synthdata.db").exists()  # no SQLite on the side
        assert api.client.get("/healthz").status_code == 200
        assert api.client.get("/v1/jobs", headers=gamma).json()["items"] == []

        ds = api.upload(small_csv)
        assert ds.status_code == 201, ds.text
        ds = ds.json()["id"]
        schema = api.client.get(f"/v1/datasets/{ds}/schema", headers=api.a)
        assert schema.status_code == 200 and schema.json()["source"] == "inferred"
        resp = api.submit(ds, TINY)
        assert resp.status_code == 202, resp.text
        job = api.wait(resp.json()["id"], timeout=600)  # a real gmm run in a worker process
        assert job["status"] in ("succeeded", "rejected"), job
        assert job["progress"] == 1.0 and job["gate"] is not None
        assert api.client.get(f"/v1/jobs/{job['id']}/report", headers=api.a).status_code == 200
        if job["status"] == "succeeded":
            synth = api.client.get(f"/v1/jobs/{job['id']}/synthetic", headers=api.a)
            assert synth.status_code == 200 and len(synth.text.splitlines()) == 101

        assert_tenant_isolated(api, ds, job["id"])
        for headers in (api.b, gamma):
            assert api.client.get(f"/v1/jobs/{job['id']}", headers=headers).status_code == 404
        # ids PostgreSQL cannot even compare (NUL) are plain misses, not 500s
        assert api.client.get("/v1/jobs/a%00b", headers=api.a).status_code == 404
        assert api.submit("a\x00b", TINY).status_code == 404

        # cancel a queued job, then delete the dataset with everything derived from it
        queued = api.submit(ds, {**TINY, "sample": {"rows": 10}}).json()["id"]
        cancel = api.client.post(f"/v1/jobs/{queued}/cancel", headers=api.a)
        assert cancel.status_code in (200, 409), cancel.text
        assert api.client.delete(f"/v1/datasets/{ds}", headers=api.a).status_code == 204
        assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.a).status_code == 404
    finally:
        client.__exit__(None, None, None)


def test_restart_on_postgresql(pg_server, tmp_path, small_csv):
    """A job left running by a dead server is failed on start; queued ones stay queued."""
    from synthdata.service.store import INTERRUPTED, RUNNING, jobs

    url = _database(pg_server, "restart")
    client, api = open_api(tmp_path, db_url=url, workers=0)
    ds = api.upload(small_csv).json()["id"]
    crashed, waiting = api.submit(ds, TINY).json()["id"], api.submit(ds, TINY).json()["id"]
    with api.app.state.store.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == crashed).values(status=RUNNING, attempt=1))
    token = api.a
    client.__exit__(None, None, None)
    client2, api2 = open_api(tmp_path, db_url=url, workers=0)
    try:
        got = api2.client.get(f"/v1/jobs/{crashed}", headers=token).json()
        assert got["status"] == "failed" and got["error"] == INTERRUPTED
        assert api2.client.get(f"/v1/jobs/{waiting}", headers=token).json()["status"] == "queued"
    finally:
        client2.__exit__(None, None, None)


def test_no_server_errors_on_postgresql(pg_server, tmp_path, small_csv):
    """The schemathesis run of test_service_fuzz, against a PostgreSQL store."""
    pytest.importorskip("schemathesis")
    from tests.service.test_service_fuzz import FAST_EXAMPLES, _fuzz

    url = _database(pg_server, "fuzz")
    client, api = open_api(tmp_path, db_url=url, workers=0, max_upload_mb=0.25)
    try:
        ds = api.upload(small_csv).json()["id"]
        job = api.submit(ds, TINY).json()["id"]
        _fuzz(api, {"dataset_id": ds, "job_id": job}, max_examples=FAST_EXAMPLES * 3,
              min_calls=150)
    finally:
        client.__exit__(None, None, None)


def test_budget_reservations_on_postgresql(pg_server):
    """Concurrent DP submissions on PostgreSQL: the row lock lets exactly what fits pass,
    also when the first ones race to create a dataset's budget row."""
    import threading

    from synthdata.errors import PrivacyBudgetError
    from synthdata.service.store import Charge

    store = Store(_database(pg_server, "budget"))
    store.create_all()
    try:
        tid = store.tenant_id("t", create=True)
        for n, declared in ((0, True), (1, False)):
            ds = f"00000000-0000-4000-8000-0000000000a{n}"
            totals = {"total_epsilon": 3.0, "total_delta": 1e-4} if declared else {}
            store.add_dataset(id=ds, tenant_id=tid, name="x.csv", format="csv", file="x",
                              size_bytes=1, n_rows=1, n_columns=1, columns=["a"], **totals)
            barrier, outcomes = threading.Barrier(6), []

            def go(i: int, ds: str = ds, barrier=barrier, outcomes=outcomes) -> None:
                barrier.wait()
                try:
                    store.add_job(job_id=f"00000000-0000-4000-8000-0000000001{n}{i}",
                                  tenant_id=tid, dataset_id=ds, pipeline={},
                                  charge=Charge(1.0, 1e-6, "gmm", 3.0, 1e-4))
                    outcomes.append("ok")
                except PrivacyBudgetError:
                    outcomes.append("refused")

            threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 3, (declared, outcomes)
            status = store.budget_status(tid, ds, default_total_epsilon=9, default_total_delta=1)
            assert status.spent_epsilon == 3.0 and status.total_epsilon == 3.0
    finally:
        store.dispose()
