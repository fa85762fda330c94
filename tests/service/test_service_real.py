"""Slow: the real pipeline runner behind the API, in a local worker process and on Ray."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from synthdata.service.settings import DEFAULT_RUNNER
from tests.service.conftest import TINY, open_api

# flchain has ages over 89, a Safe Harbor identifier: the job marks the column for Safe Harbor
MARKED = TINY | {"deid": {"types": {"age": "age"}}}


def _run_tiny_job(api, small_csv) -> dict:
    ds = api.upload(small_csv).json()["id"]
    resp = api.submit(ds, MARKED)
    assert resp.status_code == 202, resp.text
    job = api.wait(resp.json()["id"], timeout=600)
    assert job["status"] in ("succeeded", "rejected"), job
    report = api.client.get(f"/v1/jobs/{job['id']}/report", headers=api.a)
    assert report.status_code == 200 and "metrics" in report.json()
    if job["status"] == "succeeded":
        synth = pd.read_csv(io.BytesIO(api.client.get(f"/v1/jobs/{job['id']}/synthetic",
                                                      headers=api.a).content))
        assert len(synth) == 100 and list(synth.columns) == list(pd.read_csv(small_csv).columns)
    return job


@pytest.mark.slow
def test_real_pipeline_in_a_worker_process(tmp_path, small_csv):
    client, api = open_api(tmp_path, runner=DEFAULT_RUNNER)
    try:
        job = _run_tiny_job(api, small_csv)
        assert job["progress"] == 1.0 and job["gate"] is not None
    finally:
        client.__exit__(None, None, None)


@pytest.mark.slow
def test_unmarked_identifier_fails_the_job_with_the_reason(tmp_path, small_csv):
    client, api = open_api(tmp_path, runner=DEFAULT_RUNNER)
    try:
        ds = api.upload(small_csv).json()["id"]
        job = api.wait(api.submit(ds, TINY).json()["id"], timeout=600)
        assert job["status"] == "failed", job
        assert "'age' looks like age" in job["error"] and "pii: none" in job["error"]
    finally:
        client.__exit__(None, None, None)


@pytest.mark.slow
def test_job_runs_as_a_ray_task(tmp_path, small_csv):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        # ray is initialised here, so the executor attaches to it instead of `address`
        client, api = open_api(tmp_path, runner=DEFAULT_RUNNER, ray_address="auto")
        try:
            from synthdata.service.jobs import RayExecutor

            assert isinstance(api.app.state.jobs.executor, RayExecutor)
            _run_tiny_job(api, small_csv)
        finally:
            client.__exit__(None, None, None)
    finally:
        ray.shutdown()
