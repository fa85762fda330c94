"""Quotas and rate limits (429 + Retry-After, atomic), token scopes/expiry/revocation,
the append-only audit log, webhooks (HMAC) and idempotency keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import text

from synthdata.service.auth import RateLimiter
from synthdata.service.webhooks import sign, verify
from tests.service.conftest import TINY, open_api


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_queue_limit_is_atomic_under_concurrent_submissions(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=0, max_queued_per_tenant=5)
    try:
        ds = api.upload(small_csv).json()["id"]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: api.submit(ds, TINY).status_code, range(16)))
        assert codes.count(202) == 5 and codes.count(429) == 11, codes
        resp = api.submit(ds, TINY)
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert "too many queued jobs (limit 5)" in resp.json()["detail"]
    finally:
        client.__exit__(None, None, None)


def test_jobs_per_hour_storage_and_dataset_quotas(tmp_path, small_csv):
    size = small_csv.stat().st_size
    client, api = open_api(tmp_path / "svc", workers=0, quota_jobs_per_hour=2,
                           quota_datasets=2, quota_storage_mb=2.5 * size / 1024 / 1024)
    try:
        ds = api.upload(small_csv).json()["id"]
        assert api.upload(small_csv).status_code == 201
        third = api.upload(small_csv)
        assert third.status_code == 429 and "dataset quota reached (2 datasets)" in third.text
        assert "retry-after" in third.headers
        assert [api.submit(ds, TINY).status_code for _ in range(3)] == [202, 202, 429]
        resp = api.submit(ds, TINY)
        assert "job quota reached (2 jobs per hour)" in resp.text
        assert 3000 < int(resp.headers["retry-after"]) <= 3601
        assert api.submit(ds, TINY, headers=api.b).status_code == 404  # quotas are per tenant
        usage = api.client.get("/v1/limits", headers=api.a).json()["usage"]
        assert usage == {"storage_bytes": 2 * size, "datasets": 2, "jobs_last_hour": 2,
                         "queued": 2, "running": 0}
    finally:
        client.__exit__(None, None, None)


def test_storage_quota(tmp_path, small_csv):
    size = small_csv.stat().st_size
    client, api = open_api(tmp_path / "svc", workers=0, quota_storage_mb=1.5 * size / 2**20)
    try:
        assert api.upload(small_csv).status_code == 201
        resp = api.upload(small_csv)
        assert resp.status_code == 429 and "storage quota reached" in resp.text
        assert len(list(api.app.state.settings.datasets_dir.iterdir())) == 1  # no leftovers
    finally:
        client.__exit__(None, None, None)


def test_request_rate_per_tenant(tmp_path):
    client, api = open_api(tmp_path / "svc", workers=0, rate_per_second=2.0, rate_burst=3)
    try:
        codes = [api.client.get("/v1/jobs", headers=api.a).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        resp = api.client.get("/v1/jobs", headers=api.a)
        assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
        assert api.client.get("/v1/jobs", headers=api.b).status_code == 200  # own bucket
    finally:
        client.__exit__(None, None, None)


def test_rate_limiter_refills():
    limiter = RateLimiter(rate=100.0, burst=1)
    assert limiter.retry_after("t") is None and limiter.retry_after("t") == 1
    time.sleep(0.03)
    assert limiter.retry_after("t") is None


@pytest.fixture()
def svc(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=0)
    try:
        yield api
    finally:
        client.__exit__(None, None, None)


def test_scopes_read_submit_without_download(svc, small_csv, batch_like=None):
    store = svc.app.state.store
    analyst = _bearer(store.create_token("alpha", scopes=["read", "submit"]))
    reader = _bearer(store.create_token("alpha", scopes=["read"]))
    ds = svc.upload(small_csv, headers=analyst).json()["id"]
    job = svc.submit(ds, TINY, headers=analyst)
    assert job.status_code == 202
    job = job.json()["id"]
    assert svc.client.get(f"/v1/jobs/{job}", headers=reader).status_code == 200
    denied = svc.client.get(f"/v1/jobs/{job}/synthetic", headers=analyst)
    assert denied.status_code == 403 and "lacks the 'download' scope" in denied.text
    assert svc.submit(ds, TINY, headers=reader).status_code == 403
    assert svc.upload(small_csv, headers=reader).status_code == 403
    budget = svc.client.put(f"/v1/datasets/{ds}/budget", headers=analyst,
                            json={"total_epsilon": 99, "total_delta": 0.1})
    assert budget.status_code == 403 and "'admin'" in budget.text
    # a token cannot mint scopes it does not have
    mint = svc.client.post("/v1/tokens", headers=analyst, json={"scopes": ["download"]})
    assert mint.status_code == 403


def test_revocation_is_effective_within_a_second(svc):
    store = svc.app.state.store
    token = store.create_token("alpha", scopes=["read"])
    assert svc.client.get("/v1/jobs", headers=_bearer(token)).status_code == 200
    assert store.revoke_token(token.split("_")[1])  # e.g. `synthdata tokens revoke` elsewhere
    time.sleep(svc.app.state.settings.auth_cache_s + 0.05)
    assert svc.client.get("/v1/jobs", headers=_bearer(token)).status_code == 401


def test_tokens_api_create_list_revoke_and_last_used(svc):
    made = svc.client.post("/v1/tokens", headers=svc.a,
                           json={"scopes": ["read"], "expires_in_days": 1, "label": "bi"})
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["scopes"] == ["read"] and new["expires_at"] and new["last_used_at"] is None
    assert svc.client.get("/v1/jobs", headers=_bearer(new["token"])).status_code == 200
    listed = {t["id"]: t for t in svc.client.get("/v1/tokens", headers=svc.a).json()}
    assert listed[new["id"]]["last_used_at"] is not None and "token" not in listed[new["id"]]
    assert svc.client.delete(f"/v1/tokens/{new['id']}", headers=svc.a).status_code == 204
    # this process forgets it at once
    assert svc.client.get("/v1/jobs", headers=_bearer(new["token"])).status_code == 401
    assert svc.client.delete(f"/v1/tokens/{new['id']}", headers=svc.a).status_code == 404
    other = svc.client.get("/v1/tokens", headers=svc.b).json()
    assert new["id"] not in {t["id"] for t in other}


def test_expired_token_is_refused(svc):
    store = svc.app.state.store
    expires = time.time() + 2.0  # room for a slow first request on a busy machine
    token = store.create_token("alpha", expires_at=expires)
    assert svc.client.get("/v1/jobs", headers=_bearer(token)).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    assert svc.client.get("/v1/jobs", headers=_bearer(token)).status_code == 401


def test_audit_log_records_each_action_and_is_append_only(svc, small_csv):
    ds = svc.upload(small_csv).json()["id"]
    svc.client.put(f"/v1/datasets/{ds}/budget", headers=svc.a,
                   json={"total_epsilon": 5, "total_delta": 1e-5})
    job = svc.submit(ds, TINY).json()["id"]
    svc.client.post(f"/v1/jobs/{job}/cancel", headers=svc.a)
    tok = svc.client.post("/v1/tokens", headers=svc.a, json={"scopes": ["read"]}).json()["id"]
    svc.client.delete(f"/v1/tokens/{tok}", headers=svc.a)
    svc.client.delete(f"/v1/datasets/{ds}", headers=svc.a)
    items = svc.client.get("/v1/audit", headers=svc.a).json()["items"]
    actions = [(i["action"], i["target"]) for i in reversed(items)]
    me = svc.a["Authorization"].split("_")[1]
    assert actions[-7:] == [("dataset.upload", ds), ("dataset.budget", ds), ("job.submit", job),
                            ("job.cancel", job), ("token.create", tok), ("token.revoke", tok),
                            ("dataset.delete", ds)]
    assert {i["actor"] for i in items[:7]} == {me}
    theirs = svc.client.get("/v1/audit", headers=svc.b).json()["items"]
    assert ds not in {i["target"] for i in theirs}
    with pytest.raises(Exception, match="append-only"):
        with svc.app.state.store.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log"))
    with pytest.raises(Exception, match="append-only"):
        with svc.app.state.store.engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET actor = 'x'"))


def test_idempotency_key_returns_the_first_job(svc, small_csv):
    ds = svc.upload(small_csv).json()["id"]
    key = {**svc.a, "Idempotency-Key": "abc-1"}
    first = svc.client.post("/v1/jobs", headers=key, json={"dataset": ds, "pipeline": TINY})
    again = svc.client.post("/v1/jobs", headers=key, json={"dataset": ds, "pipeline": TINY})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = svc.client.post("/v1/jobs", headers=key,
                            json={"dataset": ds, "pipeline": {**TINY, "seed": 3}})
    assert other.status_code == 422 and "Idempotency-Key: already used" in other.text
    assert len(svc.client.get("/v1/jobs", headers=svc.a).json()["items"]) == 1


def test_webhook_signature_round_trip():
    body = b'{"job": "x"}'
    header = sign("s3cret", body, int(time.time()))
    assert verify("s3cret", body, header)
    assert not verify("other", body, header) and not verify("s3cret", body + b" ", header)
    assert not verify("s3cret", body, sign("s3cret", body, int(time.time()) - 3600))
    expected = hmac.new(b"s3cret", header.split(",")[0][2:].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert header.endswith(expected)


def test_webhook_url_must_be_https(svc, small_csv):
    ds = svc.upload(small_csv).json()["id"]
    resp = svc.client.post("/v1/jobs", headers=svc.a, json={
        "dataset": ds, "pipeline": TINY, "webhook": "http://127.0.0.1:1/x"})
    assert resp.status_code == 422 and "webhook: use an absolute https URL" in resp.text


def test_webhook_is_called_signed_when_the_job_ends(tmp_path, small_csv):
    got: list = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((body, self.headers["X-Synthdata-Signature"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client, api = open_api(tmp_path / "svc", workers=1, webhook_allow_http=True)
    try:
        secret = api.client.post("/v1/webhook-secret", headers=api.a).json()["secret"]
        ds = api.upload(small_csv).json()["id"]
        url = f"http://127.0.0.1:{server.server_port}/hook"
        job = api.client.post("/v1/jobs", headers=api.a,
                              json={"dataset": ds, "pipeline": TINY, "webhook": url}).json()
        api.wait(job["id"])
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            time.sleep(0.1)
        body, header = got[0]
        assert verify(secret, body, header)
        assert json.loads(body)["job"] == job["id"] and json.loads(body)["status"] == "succeeded"
    finally:
        client.__exit__(None, None, None)
        server.shutdown()


def test_a_database_from_the_previous_version_gains_the_new_columns(tmp_path):
    import sqlite3

    from synthdata.service.store import Store

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE tenants (id VARCHAR(36) PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE,"
        " created_at FLOAT NOT NULL);"
        "CREATE TABLE tokens (id VARCHAR(32) PRIMARY KEY, tenant_id VARCHAR(36) NOT NULL,"
        " salt VARCHAR(64) NOT NULL, digest VARCHAR(64) NOT NULL, created_at FLOAT NOT NULL,"
        " revoked_at FLOAT);")
    con.close()
    store = Store(f"sqlite:///{db}")
    try:
        store.create_all()
        token = store.create_token("old", scopes=["read"])
        info = store.authenticate(token)
        assert info is not None and info.scopes == frozenset({"read"})
        assert [t["scopes"] for t in store.list_tokens("old")] == [["read"]]
    finally:
        store.dispose()


def test_idempotency_key_on_upload(svc, small_csv):
    key = {**svc.a, "Idempotency-Key": "up-1"}
    first = svc.upload(small_csv, headers=key)
    again = svc.upload(small_csv, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = svc.upload(small_csv, headers=key, content=small_csv.read_bytes() + b"1,2\n")
    assert other.status_code == 422 and "Idempotency-Key: already used" in other.text
    folders = list(svc.app.state.settings.datasets_dir.iterdir())
    assert [p.name for p in folders] == [first.json()["id"]]  # retries left nothing behind
