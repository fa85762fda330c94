"""Restart consistency: no job is left 'running' after a restart; nothing else is lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthdata.service.store import INTERRUPTED, RUNNING, Store, jobs
from tests.service.conftest import ROOT, TINY, open_api


def test_running_jobs_fail_on_restart_and_queued_ones_stay(tmp_path, small_csv):
    client, api = open_api(tmp_path, workers=0)  # no workers: jobs stay where we put them
    ds = api.upload(small_csv).json()["id"]
    crashed = api.submit(ds, TINY).json()["id"]
    waiting = api.submit(ds, TINY).json()["id"]
    store: Store = api.app.state.store
    with store.engine.begin() as conn:  # as if a worker was running it when the server died
        conn.execute(jobs.update().where(jobs.c.id == crashed).values(status=RUNNING, attempt=1))
    token = api.a
    client.__exit__(None, None, None)  # (a graceful stop would not touch a row it never ran)

    client2, api2 = open_api(tmp_path, workers=0)
    try:
        got = api2.client.get(f"/v1/jobs/{crashed}", headers=token).json()
        assert got["status"] == "failed" and got["error"] == INTERRUPTED
        assert api2.client.get(f"/v1/jobs/{waiting}", headers=token).json()["status"] == "queued"
        assert api2.client.get(f"/v1/datasets/{ds}", headers=token).json()["n_rows"] == 300
        # a straggling worker of the old server cannot revive the job
        assert not store.report_progress(crashed, 1, 0.5, "gmm.fit")
        assert not store.finish_job(crashed, 1, status="succeeded")
    finally:
        client2.__exit__(None, None, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data_dir: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "synthdata.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--data-dir", str(data_dir), "--workers", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_healthy(client, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if client.get("/healthz").status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not come up")


def _wait_job(client, job_id, headers, until, timeout=240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if until(job):
            return job
        time.sleep(0.25)
    raise AssertionError(f"job state not reached: {job}")


@pytest.mark.slow
def test_kill_the_server_mid_job_then_restart(tmp_path, small_csv):
    """A real server process and a real pipeline: SIGKILL the server while the job trains."""
    import httpx

    data_dir = tmp_path / "srv"
    out = subprocess.run([sys.executable, "-m", "synthdata.cli", "tokens", "create", "--tenant",
                          "alpha", "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    headers = {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}
    port = _free_port()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    server = _serve(data_dir, port)
    try:
        _wait_healthy(client, server)
        with open(small_csv, "rb") as fh:
            ds = client.post("/v1/datasets", headers=headers, files={"file": ("s.csv", fh)}).json()["id"]
        done = client.post("/v1/jobs", headers=headers, json={"dataset": ds, "pipeline": TINY}).json()["id"]
        assert _wait_job(client, done, headers, lambda j: j["status"] not in ("queued", "running"))["status"] in ("succeeded", "rejected")
        slow = {**TINY, "generator": {"kind": "gmm", "params": {"n_components": 3, "max_iter": 200}}}
        victim = client.post("/v1/jobs", headers=headers, json={"dataset": ds, "pipeline": slow}).json()["id"]
        _wait_job(client, victim, headers, lambda j: j["status"] == "running" and j["progress"] > 0)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        # the worker dies with its server (PR_SET_PDEATHSIG): no process keeps the job
        time.sleep(3)
        ps = subprocess.run(["pgrep", "-f", f"synthdata.service.jobs {victim}"], capture_output=True, text=True)
        assert ps.stdout.strip() == "", "the worker outlived the server"

        server = _serve(data_dir, port)
        _wait_healthy(client, server)
        job = client.get(f"/v1/jobs/{victim}", headers=headers).json()
        assert job["status"] == "failed" and job["error"] == INTERRUPTED
        # nothing else was lost: the dataset and the earlier job's report are still there
        assert client.get(f"/v1/datasets/{ds}", headers=headers).status_code == 200
        assert client.get(f"/v1/jobs/{done}/report", headers=headers).status_code == 200
        # and the restarted server runs new jobs
        again = client.post("/v1/jobs", headers=headers, json={"dataset": ds, "pipeline": TINY}).json()["id"]
        final = _wait_job(client, again, headers, lambda j: j["status"] not in ("queued", "running"))
        assert final["status"] in ("succeeded", "rejected"), final
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        client.close()
    assert os.path.isdir(data_dir)
