"""Service fixtures: an app on a temporary data folder, two tenants, a small CSV."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from synthdata.service import ServiceSettings, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FAKE_RUNNER = "tests.service.fake_runner:run"
TERMINAL = {"succeeded", "failed", "rejected", "cancelled"}
TINY = {"generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
        "sample": {"rows": 100}, "evaluate": {"full": False}}


def settings_for(data_dir: Path, **overrides) -> ServiceSettings:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    base = dict(data_dir=data_dir, runner=FAKE_RUNNER, poll_interval=0.05, cancel_grace_s=3.0,
                extra_env=env, workers=2, tenant_jobs=1, rate_per_second=10_000.0,
                rate_burst=10_000)
    base.update(overrides)
    return ServiceSettings(**base)


class Api:
    """A TestClient plus two tenants' auth headers."""

    def __init__(self, client: TestClient, a: str, b: str) -> None:
        self.client, self.a, self.b = client, {"Authorization": f"Bearer {a}"}, \
            {"Authorization": f"Bearer {b}"}
        self.app = client.app

    def upload(self, path: Path, headers: dict | None = None, name: str | None = None,
               content: bytes | None = None):
        data = content if content is not None else path.read_bytes()
        return self.client.post("/v1/datasets", headers=headers or self.a,
                                files={"file": (name or path.name, data, "application/octet-stream")})

    def submit(self, dataset: str, pipeline: dict, headers: dict | None = None):
        return self.client.post("/v1/jobs", headers=headers or self.a,
                                json={"dataset": dataset, "pipeline": pipeline})

    # generous: job workers run niced, and a loaded CI core starves them for tens of seconds
    def wait(self, job_id: str, until: Callable[[dict], bool] = lambda j: j["status"] in TERMINAL,
             timeout: float = 180.0, headers: dict | None = None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/v1/jobs/{job_id}", headers=headers or self.a).json()
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job did not reach the state in {timeout}s: {job}")
            time.sleep(0.1)


def v1_calls(ds: str, job: str, tok: str = "0123456789abcdef") -> list[tuple[str, str, dict]]:
    """Every /v1 operation, aimed at the given dataset, job and token ids."""
    return [
        ("GET", "/v1/limits", {}),
        ("GET", "/v1/audit", {}),
        ("GET", "/v1/tokens", {}),
        ("POST", "/v1/tokens", {"json": {"scopes": ["read"]}}),
        ("DELETE", f"/v1/tokens/{tok}", {}),
        ("POST", "/v1/webhook-secret", {}),
        ("GET", "/v1/datasets", {}),
        ("POST", "/v1/datasets", {"files": {"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}}),
        ("GET", f"/v1/datasets/{ds}", {}),
        ("DELETE", f"/v1/datasets/{ds}", {}),
        ("GET", f"/v1/datasets/{ds}/schema", {}),
        ("PUT", f"/v1/datasets/{ds}/schema", {"json": {"columns": []}}),
        ("GET", f"/v1/datasets/{ds}/budget", {}),
        ("PUT", f"/v1/datasets/{ds}/budget", {"json": {"total_epsilon": 50, "total_delta": 0.1}}),
        ("GET", "/v1/jobs", {}),
        ("POST", "/v1/jobs", {"json": {"dataset": ds, "pipeline": TINY}}),
        ("GET", f"/v1/jobs/{job}", {}),
        ("POST", f"/v1/jobs/{job}/cancel", {}),
        ("GET", f"/v1/jobs/{job}/report", {}),
        ("GET", f"/v1/jobs/{job}/report?format=html", {}),
        ("GET", f"/v1/jobs/{job}/synthetic", {}),
    ]


def assert_tenant_isolated(api: Api, ds: str, job: str, also: list[str] = ()) -> None:
    """Tenant beta tries every /v1 call on alpha's dataset ``ds`` and job ``job``: each
    answers exactly as for an id that never existed, lists show none of alpha's ids
    (``also``: more of them), and alpha's objects are untouched."""
    tok = api.a["Authorization"].split("_")[1]
    for method, path, kwargs in v1_calls(ds, job, tok):
        if path in ("/v1/datasets", "/v1/jobs", "/v1/audit", "/v1/tokens") and method == "GET":
            body = api.client.get(path, headers=api.b).json()
            items = body["items"] if isinstance(body, dict) else body
            seen = {i.get("id") for i in items} | {i.get("target") for i in items}
            assert not seen & {ds, job, tok, *also}
            continue
        if method == "POST" and path in ("/v1/datasets", "/v1/tokens", "/v1/webhook-secret"):
            continue  # these name no existing id
        if path == "/v1/limits":
            continue  # the tenant's own usage (tested in test_service_limits)
        resp = api.client.request(method, path, headers=api.b, **kwargs)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        # the answer is the same as for an id that never existed
        fake = path.replace(ds, "00000000-0000-4000-8000-000000000000").replace(
            job, "00000000-0000-4000-8000-000000000001").replace(tok, "0123456789abcdef")
        kwargs2 = kwargs
        if "json" in kwargs and "dataset" in kwargs["json"]:
            kwargs2 = {"json": {**kwargs["json"], "dataset": "00000000-0000-4000-8000-000000000000"}}
        other = api.client.request(method, fake, headers=api.b, **kwargs2)
        assert (other.status_code, other.json()) == (resp.status_code, resp.json())
    # filters with foreign ids find nothing either
    assert api.client.get(f"/v1/jobs?dataset={ds}", headers=api.b).json()["items"] == []
    # and alpha's objects are untouched by beta's attempts
    assert api.client.get(f"/v1/datasets/{ds}", headers=api.a).status_code == 200
    assert api.client.get(f"/v1/jobs/{job}", headers=api.a).status_code == 200


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory, flchain) -> Path:
    path = tmp_path_factory.mktemp("svcdata") / "small.csv"
    flchain.sample(300, random_state=0).to_csv(path, index=False)
    return path


def open_api(data_dir: Path, **overrides) -> tuple[TestClient, Api]:
    app = create_app(settings_for(data_dir, **overrides))
    client = TestClient(app)
    client.__enter__()
    store = app.state.store
    return client, Api(client, store.create_token("alpha"), store.create_token("beta"))


@pytest.fixture(scope="session")
def api(tmp_path_factory) -> Iterator[Api]:
    """One app for the API and isolation tests; jobs of one tenant run side by side."""
    client, api = open_api(tmp_path_factory.mktemp("service"), workers=4, tenant_jobs=4)
    try:
        yield api
    finally:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def batch(api, small_csv) -> dict[str, dict]:
    """Tenant alpha's datasets and finished jobs, all run at once to save worker start-ups:
    ``ds`` (jobs ``ok``, ``reject``, ``boom``) and ``ds2`` (a user schema, job ``ok2``)."""
    ds = api.upload(small_csv)
    ds2 = api.upload(small_csv)
    assert ds.status_code == 201 and ds2.status_code == 201, (ds.text, ds2.text)
    ds, ds2 = ds.json()["id"], ds2.json()["id"]
    put = api.client.put(f"/v1/datasets/{ds2}/schema", headers=api.a,
                         json={"columns": [{"name": "age", "kind": "continuous"}]})
    assert put.status_code == 200, put.text
    submitted = {"ok": api.submit(ds, TINY), "reject": api.submit(ds, {**TINY, "name": "reject"}),
                 "boom": api.submit(ds, {**TINY, "name": "boom"}), "ok2": api.submit(ds2, TINY)}
    for resp in submitted.values():
        assert resp.status_code == 202, resp.text
    out: dict[str, dict] = {"ds": {"id": ds}, "ds2": {"id": ds2}}
    for key, resp in submitted.items():
        out[key] = api.wait(resp.json()["id"])
    return out
