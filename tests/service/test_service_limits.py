"""Limits: every over-limit or invalid request is answered at submit (4xx) and never takes
a worker; GET /v1/limits shows them; safe outputs (headers, no server paths, temp folders)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthdata.service.guards import json_depth
from tests.service.conftest import TINY, open_api


@pytest.fixture(scope="module")
def idle(tmp_path_factory):
    """An app without workers: nothing queued ever runs, so counts are exact."""
    client, api = open_api(tmp_path_factory.mktemp("limits"), workers=0, max_sample_rows=5000,
                           max_epochs=50, max_upload_cells=2000, max_body_bytes=20_000,
                           max_json_depth=8)
    try:
        yield api
    finally:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def ds(idle, small_csv):
    small = pd.read_csv(small_csv).iloc[:100, :5]  # 500 cells: under the 2000 limit
    resp = idle.upload(small_csv, content=small.to_csv(index=False).encode())
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


@pytest.mark.parametrize("pipeline, status, message", [
    ({"sample": {"rows": 10**9}}, 422, "pipeline.sample.rows: 1000000000 is more than this "
                                       "server's limit of 5000 rows"),
    ({"generator": {"kind": "vae", "params": {"epochs": 10**9}}}, 422,
     "pipeline.generator.params.epochs: 1000000000 is more than this server's limit of 50"),
    ({"generator": {"kind": "gmm", "params": {"bogus": 1}}}, 422,
     "generator 'gmm': unknown parameter(s) ['bogus']"),
    ({"seed": -1}, 422, "seed: Input should be greater than or equal to 0 (got -1)"),
    ({"generator": {"kind": "gmm", "params": {"max_iter": -5}}}, 422,
     "gmm: parameter max_iter must be a positive number, got -5"),
    ({"gate": "../../etc/passwd"}, 422, "pipeline.gate: unknown gate preset '../../etc/passwd'"),
    ({"privacy": {"epsilon": -1}}, 422, "pipeline.privacy: epsilon"),
    ({"output": {"neutralize_formulas": False}}, 422,
     "pipeline.output.neutralize_formulas: must stay true in the service"),
    ({"generator": {"kind": "nope"}}, 422, "pipeline.generator.kind: unknown generator 'nope'"),
    ({"sample": {"rows": -3}}, 422, "sample.rows"),
])
def test_invalid_or_oversized_jobs_are_refused_at_submit(idle, ds, pipeline, status, message):
    resp = idle.submit(ds, pipeline)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["detail"]
    jobs = idle.client.get("/v1/jobs", headers=idle.a).json()["items"]
    assert jobs == []  # nothing was queued: no worker slot spent


def test_a_valid_job_is_queued(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=0)
    try:
        ds = api.upload(small_csv).json()["id"]
        assert api.submit(ds, TINY).status_code == 202
    finally:
        client.__exit__(None, None, None)


def test_limits_are_visible(idle, ds):
    body = idle.client.get("/v1/limits", headers=idle.a).json()
    assert body["limits"]["max_sample_rows"] == 5000 and body["limits"]["max_epochs"] == 50
    assert body["limits"]["job_time_limit_s"] == 3600 and body["limits"]["worker_memory_mb"] > 0
    assert body["quotas"]["jobs_per_hour"] > 0 and body["usage"]["datasets"] == 1
    assert idle.client.get("/v1/limits").status_code == 401


def test_json_body_size_depth_and_syntax(idle, ds):
    big = {"dataset": ds, "pipeline": {"name": "x" * 30_000}}
    resp = idle.client.post("/v1/jobs", headers=idle.a, json=big)
    assert resp.status_code == 413 and "larger than this server's limit of 20000" in resp.text
    deep: dict = {}
    cur = deep
    for _ in range(500):
        cur["a"] = {}
        cur = cur["a"]
    resp = idle.client.post("/v1/jobs", headers=idle.a, json={"dataset": ds, "pipeline": deep})
    assert resp.status_code == 422 and "nested 502 levels deep" in resp.text
    resp = idle.client.post("/v1/jobs", headers={**idle.a, "Content-Type": "application/json"},
                            content=b'{"dataset": ')
    assert resp.status_code == 400 and resp.json()["detail"].startswith("the request body is "
                                                                        "not valid JSON")


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(json.dumps({"s": 'q"[[\\'}).encode()) == 1


def test_csv_over_the_cell_limit_is_refused_while_streaming(idle):
    body = "a,b,c,d\n" + "1,2,3,4\n" * 1000  # 4000 cells > 2000
    resp = idle.upload(None, name="big.csv", content=body.encode())
    assert resp.status_code == 413 and "more than 2000 cells" in resp.text


def test_parquet_bomb_is_refused_from_its_metadata(idle, tmp_path):
    table = pa.table({"a": pa.array([0] * 100_000, pa.int8())})  # compresses to ~kB
    path = tmp_path / "bomb.parquet"
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 10_000
    resp = idle.upload(path)
    assert resp.status_code == 413, resp.text
    assert "100000 rows x 1 columns is more than this server's limit of 2000 cells" in resp.text
    assert not any(p.name == "data.parquet"
                   for p in idle.app.state.settings.datasets_dir.rglob("*"))


def test_schema_is_inferred_from_a_bounded_sample(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=0, schema_sample_rows=10)
    try:
        ds = api.upload(small_csv).json()["id"]
        body = api.client.get(f"/v1/datasets/{ds}", headers=api.a).json()
        assert body["n_rows"] == 300  # counted in full, parsed only in part
        resp = api.client.get(f"/v1/datasets/{ds}/schema", headers=api.a)
        assert resp.status_code == 200 and resp.json()["schema"]["columns"]
    finally:
        client.__exit__(None, None, None)


def test_security_headers_and_no_docs(idle):
    resp = idle.client.get("/healthz")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"
    assert idle.client.get("/docs").status_code == 404
    assert idle.client.get("/openapi.json").status_code == 200


def test_html_report_has_a_csp_and_no_server_paths(api, batch, small_csv):
    ds = api.upload(small_csv).json()["id"]
    put = api.client.put(f"/v1/datasets/{ds}/schema", headers=api.a,
                         json={"columns": [{"name": "age", "kind": "continuous"}]})
    assert put.status_code == 200, put.text
    # its run receives a schema-overrides file under the data folder
    job = api.wait(api.submit(ds, TINY).json()["id"])["id"]
    html = api.client.get(f"/v1/jobs/{job}/report?format=html", headers=api.a)
    assert html.status_code == 200, html.text
    csp = html.headers["content-security-policy"]
    assert "default-src 'none'" in csp and html.headers["x-content-type-options"] == "nosniff"
    report = api.client.get(f"/v1/jobs/{job}/report", headers=api.a)
    data_dir = str(api.app.state.settings.data_dir)
    assert report.json()["schema_override"] and data_dir not in report.text
    failed = api.client.get(f"/v1/jobs/{batch['boom']['id']}", headers=api.a).text
    assert data_dir not in failed


def test_time_limit_kills_the_worker(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=1, job_time_limit_s=1.0,
                           cancel_grace_s=1.0)
    try:
        ds = api.upload(small_csv).json()["id"]
        job = api.submit(ds, {**TINY, "name": "slow"}).json()["id"]
        done = api.wait(job, timeout=30)
        assert done["status"] == "failed", done
        assert done["error"].startswith("time limit: the job ran longer than this server's 1 s")
        api.wait(job, until=lambda j: api.app.state.jobs.executor.active() == 0, timeout=15)
        # the killed worker left no temporary run folder behind
        assert not list((api.app.state.settings.jobs_dir / job).glob(".run-*"))
    finally:
        client.__exit__(None, None, None)


def test_worker_threads_are_the_workers_share_of_the_cores(api, batch):
    report = api.client.get(f"/v1/jobs/{batch['ok']['id']}/report", headers=api.a).json()
    share = str(api.app.state.settings.threads_per_worker)
    assert report["threads"] == {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}


def test_thread_share_setting():
    from synthdata.service.settings import ServiceSettings

    assert ServiceSettings(worker_threads=3).threads_per_worker == 3
    assert ServiceSettings(workers=10_000).threads_per_worker == 1


def test_405_lists_every_method_of_the_path(idle):
    resp = idle.client.patch("/v1/jobs", headers=idle.a)
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, POST"
    resp = idle.client.put("/v1/datasets/x", headers=idle.a)
    assert resp.headers["allow"] == "DELETE, GET"


def test_error_bodies_are_documented(idle):
    spec = idle.client.get("/openapi.json").json()["paths"]
    post = spec["/v1/jobs"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "422", "429"} <= set(post)


def test_memory_limit_fails_the_job_not_the_machine(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=1, worker_memory_mb=2048)
    try:
        ds = api.upload(small_csv).json()["id"]
        done = api.wait(api.submit(ds, {**TINY, "name": "hog"}).json()["id"], timeout=60)
        assert done["status"] == "failed"
        assert done["error"].startswith("memory limit: the job needed more than this "
                                        "server's 2048 MB per worker")
    finally:
        client.__exit__(None, None, None)
