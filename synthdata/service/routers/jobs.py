"""Jobs: submit, list, poll, cancel; the report and the synthetic table of a finished job."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from synthdata.service.auth import actor, need
from synthdata.service.deps import Context, context
from synthdata.service.jobs import build_config, dp_cost, json_safe
from synthdata.service.models import (
    AUTH,
    JSON_BODY,
    NOT_FOUND,
    Error,
    JobIn,
    JobList,
    JobOut,
    Status,
    job_out,
    job_privacy,
    not_found,
)
from synthdata.service.store import (
    DOWNLOAD,
    READ,
    REJECTED,
    RUNNING,
    SUBMIT,
    SUCCEEDED,
    Charge,
    new_id,
)
from synthdata.service.validate import check_job
from synthdata.service.webhooks import check_webhook_url

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202, response_model=JobOut,
             responses={**AUTH, **JSON_BODY,
                        404: {"model": Error, "description": "no such dataset"},
                        409: {"model": Error, "description": "the DP job does not fit in "
                                                             "the dataset's privacy budget"},
                        422: {"model": Error}, 429: {"model": Error}})
def submit_job(job: JobIn, request: Request, tenant: str = Depends(need(SUBMIT)),
               ctx: Context = Depends(context),
               idempotency_key: str | None = Header(
                   None, max_length=200, description="a retried POST with the same key and "
                                                     "body returns the first job")) -> JobOut:
    """Queue a pipeline run on one of your datasets (same model as the pipeline YAML,
    without 'data'). The whole model and the server's limits are checked here (422), so an
    invalid job never takes a worker; it then runs in a worker process: poll
    ``GET /v1/jobs/{id}``. A DP job reserves its (ε, δ) on the dataset's privacy budget
    here, or is refused (409 with the remaining budget)."""
    from synthdata.errors import PrivacyBudgetError

    settings, store = ctx.settings, ctx.store
    ds = store.get_dataset(tenant, job.dataset)
    if ds is None:
        raise not_found("dataset")
    cfg = build_config(job.pipeline, data_path=settings.data_dir / ds["file"], fmt=ds["format"])
    check_job(cfg, settings)  # the whole model and the limits: 422 before any worker
    if job.webhook is not None:
        check_webhook_url(job.webhook, allow_http=settings.webhook_allow_http)
    cost = dp_cost(cfg)
    charge = None if cost is None else Charge(
        epsilon=cost[0], delta=cost[1], generator=cost[2],
        default_total_epsilon=settings.budget_epsilon, default_total_delta=settings.budget_delta)
    request_hash = hashlib.sha256(job.model_dump_json().encode()).hexdigest()
    try:
        job_id = store.add_job(job_id=new_id(), tenant_id=tenant, dataset_id=ds["id"],
                               pipeline=json_safe(job.pipeline), charge=charge,
                               quotas=ctx.quotas, actor=actor(request),
                               webhook_url=job.webhook, idempotency_key=idempotency_key,
                               request_hash=request_hash)
    except PrivacyBudgetError as err:
        raise HTTPException(409, detail=str(err)) from None
    ctx.jobs.wake()
    return job_out(ctx.job(tenant, job_id))


@router.get("", response_model=JobList, responses=AUTH)
async def list_jobs(tenant: str = Depends(need(READ)), ctx: Context = Depends(context),
                    status_: Status | None = Query(None, alias="status"),
                    dataset: str | None = Query(None, max_length=64),
                    limit: int = Query(50, ge=1, le=500),
                    offset: int = Query(0, ge=0, le=1_000_000)) -> JobList:
    rows = await ctx.read(ctx.store.list_jobs, tenant, limit=limit, offset=offset,
                          status=status_, dataset_id=dataset)
    return JobList(items=[job_out(r) for r in rows], limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses={**AUTH, **NOT_FOUND})
async def get_job(job_id: str, tenant: str = Depends(need(READ)),
                  ctx: Context = Depends(context)) -> JobOut:
    """Status (queued, running, succeeded, failed, rejected, cancelled), progress 0..1,
    gate verdict. ``rejected``: the gate refused export; the report says why."""
    row = await ctx.read(ctx.store.get_job, tenant, job_id)
    if row is None:
        raise not_found("job")
    return job_out(row)


@router.post("/{job_id}/cancel", response_model=JobOut,
             responses={**AUTH, **NOT_FOUND, 409: {"model": Error}})
def cancel_job(job_id: str, request: Request, tenant: str = Depends(need(SUBMIT)),
               ctx: Context = Depends(context)) -> JobOut:
    """Cancel a queued or running job (a running worker is terminated)."""
    row = ctx.job(tenant, job_id)
    previous = ctx.store.cancel_job(tenant, job_id)
    if previous is None:
        raise HTTPException(409, detail=f"the job is already {row['status']}")
    if previous == RUNNING:
        ctx.jobs.cancel(job_id)
    ctx.store.audit(tenant, actor(request), "job.cancel", job_id, {"was": previous})
    return job_out(ctx.job(tenant, job_id))


@router.get("/{job_id}/report",
            responses={**AUTH, **NOT_FOUND, 409: {"model": Error},
                       200: {"content": {"application/json": {}, "text/html": {}},
                             "description": "the run report (aggregates only)"}})
def job_report(job_id: str, request: Request, tenant: str = Depends(need(READ)),
               ctx: Context = Depends(context),
               format_: Literal["json", "html"] = Query("json", alias="format")) -> Response:
    """The run report: JSON by default, ``?format=html`` for the page a person reads."""
    row = ctx.job(tenant, job_id)
    if row["run_dir"] is None:
        raise HTTPException(409, detail=f"no report: the job is {row['status']}")
    # a DP job's report is for the data custodian: its sections that read the real data
    # are not covered by ε (the report marks them); say so on the response too
    headers = ({"X-Synthdata-Privacy": "internal QA: sections that read the real data "
                "are not differentially private; do not publish"}
               if job_privacy(row) is not None else None)
    ctx.store.audit(tenant, actor(request), "job.report", job_id, {"format": format_})
    if format_ == "html":
        return FileResponse(ctx.run_file(row, "report.html"), media_type="text/html",
                            headers=headers)
    path = ctx.run_file(row, "report.json")
    if headers is None:
        return FileResponse(path, media_type="application/json")
    report = json.loads(path.read_text(encoding="utf-8"))
    report["dataset_budget"] = _cumulative_budget(ctx, tenant, row)
    return JSONResponse(report, headers=headers)


def _cumulative_budget(ctx: Context, tenant: str, row: Any) -> dict[str, Any]:
    """The DP job's charge and its dataset's cumulative spend (basic composition) so far."""
    status = ctx.store.budget_status(tenant, row["dataset_id"],
                                     default_total_epsilon=ctx.settings.budget_epsilon,
                                     default_total_delta=ctx.settings.budget_delta)
    mine = next((r for r in status.runs if r["job"] == row["id"]), None)
    return {"composition": "basic", "total_epsilon": status.total_epsilon,
            "total_delta": status.total_delta,
            "spent_epsilon": json_safe(status.spent_epsilon),
            "spent_delta": status.spent_delta,
            "remaining_epsilon": status.remaining_epsilon,
            "remaining_delta": status.remaining_delta,
            "this_job": None if mine is None else {
                "status": mine["status"], "epsilon": json_safe(mine["epsilon"]),
                "delta": mine["delta"]},
            "n_dp_jobs": len(status.runs)}


@router.get("/{job_id}/synthetic",
            responses={**AUTH, **NOT_FOUND, 409: {"model": Error},
                       200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
                             "description": "the synthetic table"}})
def job_synthetic(job_id: str, request: Request, tenant: str = Depends(need(DOWNLOAD)),
                  ctx: Context = Depends(context)) -> Response:
    """The synthetic table, only when the job succeeded (the gate passed)."""
    row = ctx.job(tenant, job_id)
    if row["status"] == REJECTED:
        raise HTTPException(409, detail="the gate refused export; the report says why")
    if row["status"] != SUCCEEDED or not row["synthetic_file"]:
        raise HTTPException(409, detail=f"no synthetic data: the job is {row['status']}")
    name = row["synthetic_file"]
    media = "application/vnd.apache.parquet" if name.endswith(".parquet") else "text/csv"
    ctx.store.audit(tenant, actor(request), "job.download", job_id, {"file": name})
    return FileResponse(ctx.run_file(row, name), media_type=media,
                        filename=f"synthetic-{job_id}{Path(name).suffix}")
