"""Authentication (401) and tenant isolation (404 for another tenant's ids, everywhere)."""

from __future__ import annotations

import pytest

from tests.service.conftest import TINY


def _calls(ds: str, job: str) -> list[tuple[str, str, dict]]:
    """Every /v1 operation, aimed at the given dataset and job ids."""
    return [
        ("GET", "/v1/datasets", {}),
        ("POST", "/v1/datasets", {"files": {"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}}),
        ("GET", f"/v1/datasets/{ds}", {}),
        ("DELETE", f"/v1/datasets/{ds}", {}),
        ("GET", f"/v1/datasets/{ds}/schema", {}),
        ("PUT", f"/v1/datasets/{ds}/schema", {"json": {"columns": []}}),
        ("GET", "/v1/jobs", {}),
        ("POST", "/v1/jobs", {"json": {"dataset": ds, "pipeline": TINY}}),
        ("GET", f"/v1/jobs/{job}", {}),
        ("POST", f"/v1/jobs/{job}/cancel", {}),
        ("GET", f"/v1/jobs/{job}/report", {}),
        ("GET", f"/v1/jobs/{job}/report?format=html", {}),
        ("GET", f"/v1/jobs/{job}/synthetic", {}),
    ]


def test_every_v1_route_is_listed_here(api):
    routes = {(m, r.path) for r in api.app.routes if r.path.startswith("/v1")
              for m in getattr(r, "methods", ())}
    listed = {(m, p.split("?")[0].replace("DS", "{dataset_id}").replace("JOB", "{job_id}"))
              for m, p, _ in _calls("DS", "JOB")}
    assert routes == listed


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer sdt_0000_secret"},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "},
])
def test_every_route_needs_a_valid_token(api, batch, headers):
    for method, path, kwargs in _calls(batch["ds"]["id"], batch["ok"]["id"]):
        resp = api.client.request(method, path, headers=headers, **kwargs)
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.headers.get("www-authenticate") == "Bearer"


def test_a_token_with_a_wrong_secret_is_refused(api):
    token = api.a["Authorization"].split()[1]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_another_tenant_gets_404_everywhere(api, batch):
    ds, job = batch["ds"]["id"], batch["ok"]["id"]
    for method, path, kwargs in _calls(ds, job):
        if path in ("/v1/datasets", "/v1/jobs") and method == "GET":
            items = api.client.get(path, headers=api.b).json()["items"]
            assert not {i["id"] for i in items} & {ds, job, batch["ds2"]["id"]}
            continue
        if method == "POST" and path == "/v1/datasets":
            continue  # an upload names no existing id
        resp = api.client.request(method, path, headers=api.b, **kwargs)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        # the answer is the same as for an id that never existed
        fake = path.replace(ds, "00000000-0000-4000-8000-000000000000").replace(
            job, "00000000-0000-4000-8000-000000000001")
        kwargs2 = kwargs
        if "json" in kwargs and "dataset" in kwargs["json"]:
            kwargs2 = {"json": {**kwargs["json"], "dataset": "00000000-0000-4000-8000-000000000000"}}
        other = api.client.request(method, fake, headers=api.b, **kwargs2)
        assert (other.status_code, other.json()) == (resp.status_code, resp.json())
    # filters with foreign ids find nothing either
    assert api.client.get(f"/v1/jobs?dataset={ds}", headers=api.b).json()["items"] == []
    # and alpha's objects are untouched by beta's attempts
    assert api.client.get(f"/v1/datasets/{ds}", headers=api.a).status_code == 200
    assert api.client.get(f"/v1/jobs/{job}", headers=api.a).json()["status"] == "succeeded"


def test_tokens_are_stored_hashed(api):
    token = api.a["Authorization"].split()[1]
    secret = token.split("_", 2)[2]
    from sqlalchemy import select

    from synthdata.service.store import tokens

    store = api.app.state.store
    with store.engine.connect() as conn:
        rows = conn.execute(select(tokens)).mappings().all()
    assert rows and all(secret not in str(dict(r)) for r in rows)
    assert all(len(r["digest"]) == 64 and r["salt"] for r in rows)
