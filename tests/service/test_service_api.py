"""The API end to end with TestClient; jobs run in real worker processes (fake runner)."""

from __future__ import annotations

import io
import os
import time

import pandas as pd
import pytest

from synthdata.service.store import Store
from tests.service.conftest import TINY, open_api


def test_healthz_needs_no_token(api):
    resp = api.client.get("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_upload_describes_the_table_without_rows(api, batch, small_csv):
    ds = batch["ds"]["id"]
    body = api.client.get(f"/v1/datasets/{ds}", headers=api.a).json()
    real = pd.read_csv(small_csv)
    assert body["n_rows"] == 300 and body["columns"] == list(real.columns)
    assert body["format"] == "csv" and body["name"] == "small.csv"
    listed = api.client.get("/v1/datasets", headers=api.a).json()["items"]
    assert ds in [d["id"] for d in listed]
    # ids are server UUIDs; the file on disk is named by the server
    stored = list((api.app.state.settings.datasets_dir / ds).iterdir())
    assert [p.name for p in stored] == ["data.csv"]


def test_happy_path(api, batch):
    job = batch["ok"]
    job_id = job["id"]
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and job["gate"]["passed"] is True
    assert job["gate"]["rules"][0]["value"] is None  # NaN comes back as null, not a 500
    assert job["report_available"] and job["synthetic_available"]

    report = api.client.get(f"/v1/jobs/{job_id}/report", headers=api.a)
    assert report.status_code == 200 and report.json()["metrics"]["shapes"] == 0.9
    assert report.json()["schema_override"] is None
    html = api.client.get(f"/v1/jobs/{job_id}/report?format=html", headers=api.a)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    synth = api.client.get(f"/v1/jobs/{job_id}/synthetic", headers=api.a)
    assert synth.status_code == 200 and synth.headers["content-type"].startswith("text/csv")
    assert list(pd.read_csv(io.BytesIO(synth.content)).columns) == ["age", "sex"]
    assert job_id in [j["id"] for j in api.client.get("/v1/jobs", headers=api.a).json()["items"]]
    mine = api.client.get(f"/v1/jobs?dataset={batch['ds']['id']}&status=succeeded",
                          headers=api.a).json()
    assert [j["id"] for j in mine["items"]] == [job_id]


def test_rejected_job_has_a_report_but_no_synthetic_data(api, batch):
    job = batch["reject"]
    assert job["status"] == "rejected" and job["gate"]["passed"] is False
    assert not job["synthetic_available"]
    assert api.client.get(f"/v1/jobs/{job['id']}/report", headers=api.a).status_code == 200
    synth = api.client.get(f"/v1/jobs/{job['id']}/synthetic", headers=api.a)
    assert synth.status_code == 409 and "gate refused" in synth.json()["detail"]


def test_failed_job_carries_the_error_message(api, batch):
    job = batch["boom"]
    assert job["status"] == "failed" and "unusable" in job["error"]
    assert api.client.get(f"/v1/jobs/{job['id']}/report", headers=api.a).status_code == 409
    assert api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.a).status_code == 409


@pytest.mark.parametrize("pipeline, message", [
    ({"generatr": {"kind": "gmm"}}, "generatr: unknown key"),
    ({"sample": {"rows": -5}}, "sample.rows"),
    ({"generator": {"kind": "nope"}}, "unknown generator 'nope'"),
    ({"data": {"path": "/etc/passwd"}}, "pipeline.data: not allowed"),
    ({"output": {"dir": "/tmp/x"}}, "output.dir: not allowed"),
    ({"name": "../../escape"}, "pipeline.name"),
])
def test_invalid_pipeline_is_422_with_the_config_message(api, batch, pipeline, message):
    resp = api.submit(batch["ds"]["id"], pipeline)
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["detail"]


def test_schema_infer_get_put(api, batch):
    ds, ds2 = batch["ds"]["id"], batch["ds2"]["id"]
    got = api.client.get(f"/v1/datasets/{ds}/schema", headers=api.a)
    assert got.status_code == 200, got.text
    assert got.json()["source"] == "inferred"
    assert "age" in [c["name"] for c in got.json()["schema"]["columns"]]
    user = api.client.get(f"/v1/datasets/{ds2}/schema", headers=api.a).json()
    age = next(c for c in user["schema"]["columns"] if c["name"] == "age")
    assert user["source"] == "user" and age["kind"] == "continuous"
    bad = api.client.put(f"/v1/datasets/{ds}/schema", headers=api.a,
                         json={"columns": [{"name": "no_such_column", "kind": "integer"}]})
    assert bad.status_code == 422 and "no_such_column" in bad.json()["detail"]
    # the job on ds2 was given the overrides as the pipeline's schema file
    report = api.client.get(f"/v1/jobs/{batch['ok2']['id']}/report", headers=api.a).json()
    assert report["schema_override"].endswith("schema-overrides.yaml")


def test_cancel_and_per_tenant_limit(tmp_path, small_csv):
    client, api = open_api(tmp_path, workers=2, tenant_jobs=1)
    try:
        ds = api.upload(small_csv).json()["id"]
        first = api.submit(ds, {**TINY, "name": "slow1"}).json()["id"]
        second = api.submit(ds, {**TINY, "name": "slow2"}).json()["id"]
        api.wait(first, lambda j: j["status"] == "running" and j["progress"] > 0.2)
        # the worker yields the CPU to the API: lower priority (SCHED_IDLE only when asked)
        pid = api.app.state.jobs.executor._procs[first].popen.pid
        assert os.getpriority(os.PRIO_PROCESS, pid) >= 10
        if hasattr(os, "SCHED_IDLE"):
            assert os.sched_getscheduler(pid) != os.SCHED_IDLE
        # tenant_jobs=1: the second waits although a worker slot is free
        assert api.client.get(f"/v1/jobs/{second}", headers=api.a).json()["status"] == "queued"
        resp = api.client.post(f"/v1/jobs/{first}/cancel", headers=api.a)
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        resp = api.client.post(f"/v1/jobs/{second}/cancel", headers=api.a)
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        executor = api.app.state.jobs.executor
        deadline = time.monotonic() + 20
        while executor.active() and time.monotonic() < deadline:  # terminated and reaped
            time.sleep(0.1)
        assert executor.active() == 0
        for job_id in (first, second):
            job = api.client.get(f"/v1/jobs/{job_id}", headers=api.a).json()
            assert job["status"] == "cancelled" and not job["report_available"]
        assert not list((api.app.state.settings.jobs_dir / first).glob(".run-*"))
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
    ("postgres://h/db", "postgresql+psycopg://h/db"),
    ("postgresql+pg8000://h/db", "postgresql+pg8000://h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_a_postgresql_url_without_driver_uses_psycopg3(url, expected):
    import importlib.util

    from synthdata.service.store import _with_driver

    if url.startswith("postgres") and "+" not in url and (
            importlib.util.find_spec("psycopg2") or not importlib.util.find_spec("psycopg")):
        expected = "postgresql://" + url.split("://", 1)[1]
    assert _with_driver(url) == expected


def test_claim_respects_worker_and_tenant_limits(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.create_all()
    a, b = store.tenant_id("a", create=True), store.tenant_id("b", create=True)
    for i in range(3):
        store.add_job(job_id=f"a{i}", tenant_id=a, dataset_id="d", pipeline={})
        store.add_job(job_id=f"b{i}", tenant_id=b, dataset_id="d", pipeline={})
    first = store.claim_jobs(capacity=10, tenant_limit=2)
    assert sorted(c.id for c in first) == ["a0", "a1", "b0", "b1"]
    assert store.claim_jobs(capacity=10, tenant_limit=2) == []
    assert store.finish_job("a0", 1, status="succeeded")
    assert [c.id for c in store.claim_jobs(capacity=1, tenant_limit=2)] == ["a2"]
    assert not store.finish_job("a0", 1, status="failed")  # terminal states are final


def test_delete_dataset_removes_everything_derived(api, batch):
    ds2, job = batch["ds2"]["id"], batch["ok2"]["id"]
    settings = api.app.state.settings
    assert (settings.jobs_dir / job).is_dir()
    assert api.client.delete(f"/v1/datasets/{ds2}", headers=api.a).status_code == 204
    assert api.client.get(f"/v1/datasets/{ds2}", headers=api.a).status_code == 404
    assert api.client.get(f"/v1/jobs/{job}", headers=api.a).status_code == 404
    assert not (settings.datasets_dir / ds2).exists() and not (settings.jobs_dir / job).exists()


def test_queued_limit_is_429(tmp_path, small_csv):
    client, api = open_api(tmp_path, max_queued_per_tenant=1, workers=0)
    try:
        ds = api.upload(small_csv).json()["id"]
        assert api.submit(ds, TINY).status_code == 202
        resp = api.submit(ds, TINY)
        assert resp.status_code == 429 and "queued" in resp.json()["detail"]
    finally:
        client.__exit__(None, None, None)
