"""Liveness: ``GET /healthz`` (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import text

from synthdata._version import __version__
from synthdata.service.auth import need
from synthdata.service.deps import Context, context
from synthdata.service.models import AUTH, Error, Health, LimitsOut
from synthdata.service.store import READ

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz(ctx: Context = Depends(context)) -> Health:
    """Liveness and database check; no authentication."""

    def ping() -> None:
        with ctx.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await ctx.read(ping)
    except Exception as err:
        raise HTTPException(503, detail="database unavailable") from err
    return Health(status="ok", version=__version__)


@router.get("/v1/limits", response_model=LimitsOut, tags=["health"],
            responses={**AUTH, 403: {"model": Error}})
async def limits(tenant: str = Depends(need(READ)), ctx: Context = Depends(context)) -> LimitsOut:
    """This server's limits and your tenant's quotas and current usage."""
    s = ctx.settings
    return LimitsOut(
        limits={"max_upload_mb": s.max_upload_mb, "max_upload_cells": s.max_upload_cells,
                "max_columns": s.max_columns, "max_sample_rows": s.max_sample_rows,
                "max_epochs": s.max_epochs, "max_param_value": s.max_param_value,
                "max_body_bytes": s.max_body_bytes, "max_json_depth": s.max_json_depth,
                "job_time_limit_s": s.job_time_limit_s, "worker_memory_mb": s.worker_memory_mb,
                "tenant_running_jobs": s.tenant_jobs, "workers": s.workers,
                "threads_per_worker": s.threads_per_worker,
                "schema_sample_rows": s.schema_sample_rows},
        quotas={"storage_mb": s.quota_storage_mb, "datasets": s.quota_datasets,
                "jobs_per_hour": s.quota_jobs_per_hour,
                "queued_jobs": s.max_queued_per_tenant,
                "requests_per_second": s.rate_per_second, "request_burst": s.rate_burst},
        usage=await ctx.read(ctx.store.usage, tenant))
