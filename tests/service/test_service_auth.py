"""Authentication (401) and tenant isolation (404 for another tenant's ids, everywhere)."""

from __future__ import annotations

import pytest

from tests.service.conftest import assert_tenant_isolated
from tests.service.conftest import v1_calls as _calls


def test_every_v1_route_is_listed_here(api):
    routes = {(m.upper(), path) for path, ops in api.app.openapi()["paths"].items()
              if path.startswith("/v1") for m in ops}
    listed = {(m, p.split("?")[0].replace("DS", "{dataset_id}").replace("JOB", "{job_id}")
               .replace("TOK", "{token_id}")) for m, p, _ in _calls("DS", "JOB", "TOK")}
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
    assert_tenant_isolated(api, batch["ds"]["id"], batch["ok"]["id"],
                           also=[batch["ds2"]["id"]])
    assert api.client.get(f"/v1/jobs/{batch['ok']['id']}", headers=api.a).json()["status"] \
        == "succeeded"


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


@pytest.mark.parametrize("bad", ["a%00b", "x" * 300, "00000000-0000-4000-8000-00000000000Z",
                                 "%C3%A9t%C3%A9"])
def test_malformed_ids_are_plain_404s(api, batch, bad):
    """An id that is not of the server's form cannot exist: 404 (or an empty list), and it
    never reaches the database (a NUL byte is an error on PostgreSQL, not a miss)."""
    for method, path, kwargs in _calls(bad, bad, bad):
        if bad not in path:
            continue  # lists, limits, uploads: no id in the path
        resp = api.client.request(method, path, headers=api.a, **kwargs)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
    listed = api.client.get(f"/v1/jobs?dataset={bad}", headers=api.a)
    assert listed.status_code == 422 if len(bad) > 64 else listed.json()["items"] == []
    resp = api.submit(bad.replace("%00", "\x00"), {})
    assert resp.status_code == 404, resp.text
