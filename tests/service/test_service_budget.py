"""Per-dataset privacy budgets in the service: DP jobs add up, the overrun is refused at
submission (409, nothing queued), spent values come from the run, and DP job responses say
what is not private."""

from __future__ import annotations

import threading

import pytest

from synthdata.errors import PrivacyBudgetError
from synthdata.service.store import Charge, Store
from tests.service.conftest import TINY, open_api


def dp(epsilon: float, **extra) -> dict:
    return {**TINY, "privacy": {"epsilon": epsilon, **extra}}


@pytest.fixture()
def idle(tmp_path):
    """An app with no job workers: submitted jobs stay queued (no worker start-up cost)."""
    client, api = open_api(tmp_path, workers=0, budget_epsilon=4.0, budget_delta=1e-4)
    try:
        yield api
    finally:
        client.__exit__(None, None, None)


def upload(api, path, **totals) -> str:
    query = "&".join(f"{k}={v}" for k, v in totals.items())
    resp = api.client.post(f"/v1/datasets?{query}" if query else "/v1/datasets",
                           headers=api.a, files={"file": ("small.csv", path.read_bytes(),
                                                          "text/csv")})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def budget(api, ds: str) -> dict:
    resp = api.client.get(f"/v1/datasets/{ds}/budget", headers=api.a)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_dp_jobs_add_up_and_the_overrun_is_refused_at_submission(idle, small_csv):
    ds = upload(idle, small_csv, total_epsilon=2.5, total_delta=1e-4)
    b = budget(idle, ds)
    assert (b["total_epsilon"], b["total_delta"], b["spent_epsilon"], b["runs"]) == \
        (2.5, 1e-4, 0, [])
    first = idle.submit(ds, dp(1.0))
    second = idle.submit(ds, dp(1.0, delta=1e-6))
    assert first.status_code == 202 and second.status_code == 202, (first.text, second.text)
    b = budget(idle, ds)
    assert b["spent_epsilon"] == 2.0 and b["remaining_epsilon"] == 0.5
    assert [r["status"] for r in b["runs"]] == ["reserved", "reserved"]
    # no δ given: the largest default δ is reserved; an explicit δ is reserved as is
    assert sorted(r["reserved_delta"] for r in b["runs"]) == [1e-6, 1e-5]
    refused = idle.submit(ds, dp(1.0))
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "ε: this run needs 1, 2 of the declared total 2.5 is spent, 0.5 remains" in detail
    assert f"PUT /v1/datasets/{ds}/budget" in detail and "lower privacy.epsilon" in detail
    jobs = idle.client.get(f"/v1/jobs?dataset={ds}", headers=idle.a).json()["items"]
    assert len(jobs) == 2  # nothing queued for the refused job
    assert idle.submit(ds, dp(0.5)).status_code == 202  # what remains still fits
    assert idle.submit(ds, TINY).status_code == 202  # non-DP jobs spend nothing
    assert len(budget(idle, ds)["runs"]) == 3


def test_server_default_and_knowing_change(idle, small_csv):
    ds = upload(idle, small_csv)
    b = budget(idle, ds)
    assert (b["total_epsilon"], b["total_delta"]) == (4.0, 1e-4)  # the server default
    assert idle.submit(ds, dp(3.0)).status_code == 202
    assert idle.submit(ds, dp(3.0)).status_code == 409
    put = idle.client.put(f"/v1/datasets/{ds}/budget", headers=idle.a,
                          json={"total_epsilon": 6.0, "total_delta": 1e-4})
    assert put.status_code == 200 and put.json()["spent_epsilon"] == 3.0  # stays counted
    assert idle.submit(ds, dp(3.0)).status_code == 202
    for body in ({"total_epsilon": -1, "total_delta": 1e-4}, {"total_epsilon": 1},
                 {"total_epsilon": 1, "total_delta": 1.5}):
        assert idle.client.put(f"/v1/datasets/{ds}/budget", headers=idle.a,
                               json=body).status_code == 422
    bad = idle.client.post("/v1/datasets?total_epsilon=-2", headers=idle.a,
                           files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert bad.status_code == 422


def test_cancelling_a_queued_job_gives_its_budget_back(idle, small_csv):
    ds = upload(idle, small_csv, total_epsilon=1, total_delta=1e-4)
    job = idle.submit(ds, dp(1.0)).json()
    assert idle.submit(ds, dp(1.0)).status_code == 409
    assert idle.client.post(f"/v1/jobs/{job['id']}/cancel", headers=idle.a).status_code == 200
    assert budget(idle, ds)["runs"] == []
    assert idle.submit(ds, dp(1.0)).status_code == 202


def test_pipeline_cannot_name_a_budget_file(idle, small_csv):
    ds = upload(idle, small_csv)
    resp = idle.submit(ds, dp(1.0, budget={"file": "/etc/budget.json"}))
    assert resp.status_code == 422 and "privacy.budget: not allowed" in resp.json()["detail"]


def test_deleting_the_dataset_deletes_its_budget(idle, small_csv):
    ds = upload(idle, small_csv, total_epsilon=1, total_delta=1e-4)
    idle.submit(ds, dp(1.0))
    store = idle.app.state.store
    assert idle.client.delete(f"/v1/datasets/{ds}", headers=idle.a).status_code == 204
    status = store.budget_status(_tenant(idle), ds, default_total_epsilon=9,
                                 default_total_delta=1e-5)
    assert status.runs == () and status.total_epsilon == 9


def _tenant(api) -> str:
    token = api.a["Authorization"].split()[1]
    return api.app.state.store.authenticate(token).tenant_id


def test_finished_jobs_commit_what_the_run_spent(api, small_csv):
    ds = upload(api, small_csv, total_epsilon=3, total_delta=1e-4)
    ok = api.submit(ds, dp(1.0))
    boom = api.submit(ds, {**dp(1.0), "name": "boom"})
    assert ok.status_code == 202 and boom.status_code == 202
    ok_job, boom_job = api.wait(ok.json()["id"]), api.wait(boom.json()["id"])
    assert ok_job["status"] == "succeeded" and boom_job["status"] == "failed"
    runs = {r["job"]: r for r in budget(api, ds)["runs"]}
    # the fake runner's metrics report 0.9 ε and δ = 5e-6 spent
    assert runs[ok_job["id"]]["status"] == "committed"
    assert runs[ok_job["id"]]["epsilon"] == pytest.approx(0.9)
    assert runs[ok_job["id"]]["delta"] == 5e-6 and runs[ok_job["id"]]["reserved_epsilon"] == 1
    # a failed DP job keeps what it reserved (fail closed)
    assert runs[boom_job["id"]]["status"] == "committed"
    assert runs[boom_job["id"]]["epsilon"] == 1.0
    assert budget(api, ds)["spent_epsilon"] == pytest.approx(1.9)

    # the DP job's responses say what is not private
    assert ok_job["privacy"]["epsilon"] == 1.0 and ok_job["privacy"]["delta"] is None
    assert "not private" in ok_job["privacy"]["note"].lower()
    report = api.client.get(f"/v1/jobs/{ok_job['id']}/report", headers=api.a)
    assert "not differentially private" in report.headers["x-synthdata-privacy"]
    # the report shows the dataset's cumulative spend and this job's charge
    spend = report.json()["dataset_budget"]
    assert spend["spent_epsilon"] == pytest.approx(1.9) and spend["total_epsilon"] == 3
    assert spend["remaining_epsilon"] == pytest.approx(1.1) and spend["n_dp_jobs"] == 2
    assert spend["this_job"] == {"status": "committed", "epsilon": pytest.approx(0.9),
                                 "delta": 5e-6}


def test_non_dp_job_responses_carry_no_privacy_block(api, batch):
    assert batch["ok"]["privacy"] is None
    report = api.client.get(f"/v1/jobs/{batch['ok']['id']}/report", headers=api.a)
    assert "x-synthdata-privacy" not in report.headers


def test_concurrent_submissions_cannot_overspend(tmp_path):
    """Eight threads reserve ε=1 at once on a total of 3 (SQLite): exactly three pass."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.create_all()
    tid = store.tenant_id("t", create=True)
    ds = "00000000-0000-4000-8000-0000000000aa"
    store.add_dataset(id=ds, tenant_id=tid, name="x.csv", format="csv", file="x", size_bytes=1,
                      n_rows=1, n_columns=1, columns=["a"], total_epsilon=3.0, total_delta=1e-4)
    barrier, outcomes = threading.Barrier(8), []

    def go(i: int) -> None:
        barrier.wait()
        try:
            store.add_job(job_id=f"00000000-0000-4000-8000-00000000000{i}", tenant_id=tid,
                          dataset_id=ds, pipeline={}, charge=Charge(1.0, 1e-6, "gmm", 9, 1e-4))
            outcomes.append("ok")
        except PrivacyBudgetError:
            outcomes.append("refused")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 5
        status = store.budget_status(tid, ds, default_total_epsilon=9, default_total_delta=1)
        assert status.spent_epsilon == 3.0 and len(status.runs) == 3
        assert store.count_jobs(tid, ("queued",)) == 3  # a refused job is not queued
    finally:
        store.dispose()


def test_first_reservations_without_a_budget_row_race_safely(tmp_path):
    """Datasets made before budgets existed get the default row on first use, once."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.create_all()
    tid = store.tenant_id("t", create=True)
    ds = "00000000-0000-4000-8000-0000000000bb"
    store.add_dataset(id=ds, tenant_id=tid, name="x.csv", format="csv", file="x", size_bytes=1,
                      n_rows=1, n_columns=1, columns=["a"])
    barrier, outcomes = threading.Barrier(4), []

    def go(i: int) -> None:
        barrier.wait()
        try:
            store.add_job(job_id=f"00000000-0000-4000-8000-00000000001{i}", tenant_id=tid,
                          dataset_id=ds, pipeline={}, charge=Charge(1.0, 1e-6, "gmm", 2.0, 1e-4))
            outcomes.append("ok")
        except PrivacyBudgetError:
            outcomes.append("refused")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(outcomes) == ["ok", "ok", "refused", "refused"]
    finally:
        store.dispose()
