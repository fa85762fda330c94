"""Datasets: upload, list, read, delete; their schema and their privacy budget."""

from __future__ import annotations

import functools
import logging
import shutil
from typing import Any

import anyio
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from sqlalchemy.engine import RowMapping

from synthdata.errors import SynthDataError
from synthdata.io.files import private_dir
from synthdata.service.auth import actor, need
from synthdata.service.deps import Context, context
from synthdata.service.jobs import json_safe
from synthdata.service.models import (
    AUTH,
    JSON_BODY,
    NOT_FOUND,
    BudgetIn,
    BudgetOut,
    DatasetList,
    DatasetOut,
    Error,
    SchemaOut,
    budget_out,
    dataset_out,
    not_found,
)
from synthdata.service.store import ADMIN, READ, SUBMIT, QuotaExceeded, new_id
from synthdata.service.uploads import (
    UploadError,
    display_name,
    inspect_file,
    read_sample,
    receive_file,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "CSV (UTF-8) or Parquet file"}}}}}}}


@router.post("", status_code=201, response_model=DatasetOut, openapi_extra=UPLOAD_BODY,
             responses={**AUTH, 400: {"model": Error}, 413: {"model": Error},
                        415: {"model": Error}, 422: {"model": Error}})
async def upload_dataset(request: Request, tenant: str = Depends(need(SUBMIT)),
                         ctx: Context = Depends(context),
                         total_epsilon: float | None = Query(
                             None, gt=0, allow_inf_nan=False,
                             description="privacy budget: total ε of all DP jobs on this "
                                         "dataset (default: the server's)"),
                         total_delta: float | None = Query(
                             None, gt=0, lt=1, description="privacy budget: total δ "
                                                          "(default: the server's)"),
                         idempotency_key: str | None = Header(
                             None, max_length=200, description="a retried upload with the "
                             "same key and file returns the first dataset"),
                         ) -> DatasetOut:
    """Upload a CSV or Parquet table (multipart field ``file``), streamed to disk.
    ``total_epsilon``/``total_delta`` declare its privacy budget (see
    ``GET /v1/datasets/{id}/budget``)."""
    settings = ctx.settings
    total_epsilon = settings.budget_epsilon if total_epsilon is None else total_epsilon
    total_delta = settings.budget_delta if total_delta is None else total_delta
    limit = settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + (1 << 20):
        raise HTTPException(413, detail=f"the request is larger than the upload limit "
                                        f"({settings.max_upload_mb:g} MB)")
    dataset_id = new_id()
    folder = settings.datasets_dir / dataset_id
    private_dir(folder, exist_ok=False)
    part = folder / "upload.part"
    try:
        filename, size, digest = await receive_file(request.headers.get("content-type"),
                                             request.stream(), part, limit,
                                             max_cells=settings.max_upload_cells)
        info = await anyio.to_thread.run_sync(functools.partial(
            inspect_file, part, filename, max_columns=settings.max_columns,
            max_cells=settings.max_upload_cells, sample_rows=settings.schema_sample_rows))
        final = folder / f"data.{info.format}"
        part.rename(final)
        stored = await anyio.to_thread.run_sync(functools.partial(  # a write: off the loop
            ctx.store.add_dataset, idempotency_key=idempotency_key, request_hash=digest, id=dataset_id, tenant_id=tenant, name=display_name(filename),
            format=info.format, file=final.relative_to(settings.data_dir).as_posix(),
            size_bytes=size, n_rows=info.n_rows, n_columns=len(info.columns),
            columns=info.columns, total_epsilon=total_epsilon, total_delta=total_delta,
            quotas=ctx.quotas, actor=actor(request)))
    except UploadError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(err.status, detail=str(err)) from None
    except (QuotaExceeded, SynthDataError):
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if stored != dataset_id:  # a retry: the first upload's dataset
        shutil.rmtree(folder, ignore_errors=True)
    log.info("dataset %s uploaded (%d bytes)", stored, size)
    row = await ctx.read(ctx.store.get_dataset, tenant, stored)
    assert row is not None
    return dataset_out(row)


@router.get("", response_model=DatasetList, responses=AUTH)
async def list_datasets(tenant: str = Depends(need(READ)), ctx: Context = Depends(context),
                        limit: int = Query(50, ge=1, le=500),
                        offset: int = Query(0, ge=0, le=1_000_000)) -> DatasetList:
    rows = await ctx.read(ctx.store.list_datasets, tenant, limit=limit, offset=offset)
    return DatasetList(items=[dataset_out(r) for r in rows], limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut, responses={**AUTH, **NOT_FOUND})
async def get_dataset(dataset_id: str, tenant: str = Depends(need(READ)),
                      ctx: Context = Depends(context)) -> DatasetOut:
    row = await ctx.read(ctx.store.get_dataset, tenant, dataset_id)
    if row is None:
        raise not_found("dataset")
    return dataset_out(row)


@router.delete("/{dataset_id}", status_code=204, responses={**AUTH, **NOT_FOUND})
def delete_dataset(dataset_id: str, request: Request, tenant: str = Depends(need(SUBMIT)),
                   ctx: Context = Depends(context)) -> Response:
    """Delete a dataset and everything derived from it (jobs, reports, synthetic data);
    running jobs on it are stopped."""
    ctx.dataset(tenant, dataset_id)
    job_ids = ctx.store.delete_dataset(tenant, dataset_id)
    for job_id in job_ids:
        ctx.jobs.cancel(job_id)
        shutil.rmtree(ctx.settings.jobs_dir / job_id, ignore_errors=True)
    shutil.rmtree(ctx.settings.datasets_dir / dataset_id, ignore_errors=True)
    ctx.store.audit(tenant, actor(request), "dataset.delete", dataset_id,
                    {"jobs": len(job_ids)})
    log.info("dataset %s deleted with %d job(s)", dataset_id, len(job_ids))
    return Response(status_code=204)


def read_frame(ctx: Context, row: RowMapping) -> Any:
    """A bounded sample of the upload (``schema_sample_rows``): the API process never
    loads a whole upload; the job's worker reads and checks all of it."""
    from synthdata.errors import DataError

    path = ctx.settings.data_dir / row["file"]
    try:
        return read_sample(path, row["format"], ctx.settings.schema_sample_rows)
    except DataError as err:
        raise DataError(str(err).replace(str(path), row["name"])) from None


@router.get("/{dataset_id}/schema", response_model=SchemaOut, responses={**AUTH, **NOT_FOUND})
def get_schema(dataset_id: str, tenant: str = Depends(need(READ)),
               ctx: Context = Depends(context)) -> SchemaOut:
    """The dataset's schema: inferred on first request (from the first
    ``schema_sample_rows`` rows, see ``GET /v1/limits``; a job infers from all rows), or
    the one you PUT."""
    row = ctx.dataset(tenant, dataset_id)
    if row["schema"] is None:
        from synthdata.schema import Schema

        inferred = json_safe(Schema.infer(read_frame(ctx, row), name="data").to_dict())
        ctx.store.set_schema(tenant, dataset_id, inferred, "inferred")
        row = ctx.dataset(tenant, dataset_id)
    return SchemaOut(dataset=dataset_id, source=row["schema_source"] or "inferred",
                     schema=row["schema"])


@router.put("/{dataset_id}/schema", response_model=SchemaOut,
            responses={**AUTH, **NOT_FOUND, **JSON_BODY})
def put_schema(dataset_id: str, request: Request, body: dict[str, Any] = Body(
                   ..., examples=[{"columns": [{"name": "age", "kind": "integer",
                                                "min": 0, "max": 120, "public": True}]}]),
               tenant: str = Depends(need(SUBMIT)),
               ctx: Context = Depends(context)) -> SchemaOut:
    """Set the schema jobs on this dataset use: a schema mapping whose entries override
    the inferred columns they name (a complete schema works too). Checked here against a
    bounded sample of the data, and by the job against all of it."""
    from synthdata.errors import SchemaError
    from synthdata.schema import Schema

    row = ctx.dataset(tenant, dataset_id)
    df = read_frame(ctx, row)
    try:
        effective = Schema.infer(df, name="data").with_overrides(body, where="schema")
        effective.validate(df, where=row["name"])
    except SynthDataError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise SchemaError(f"schema: {err}") from None
    ctx.store.set_schema(tenant, dataset_id, json_safe(effective.to_dict()), "user",
                         json_safe(body))
    ctx.store.audit(tenant, actor(request), "dataset.schema", dataset_id, None)
    row = ctx.dataset(tenant, dataset_id)
    return SchemaOut(dataset=dataset_id, source="user", schema=row["schema"])


def _budget(ctx: Context, tenant: str, dataset_id: str) -> BudgetOut:
    return budget_out(ctx.store.budget_status(
        tenant, dataset_id, default_total_epsilon=ctx.settings.budget_epsilon,
        default_total_delta=ctx.settings.budget_delta))


@router.get("/{dataset_id}/budget", response_model=BudgetOut, responses={**AUTH, **NOT_FOUND})
def get_budget(dataset_id: str, tenant: str = Depends(need(READ)),
               ctx: Context = Depends(context)) -> BudgetOut:
    """The dataset's privacy budget: declared total, spent and remaining (ε, δ), and
    every DP job's charge. DP jobs add up (basic composition); a job that would pass the
    total is refused at submission (409)."""
    ctx.dataset(tenant, dataset_id)
    return _budget(ctx, tenant, dataset_id)


@router.put("/{dataset_id}/budget", response_model=BudgetOut,
            responses={**AUTH, **NOT_FOUND, **JSON_BODY})
def put_budget(dataset_id: str, body: BudgetIn, request: Request,
               tenant: str = Depends(need(ADMIN)),
               ctx: Context = Depends(context)) -> BudgetOut:
    """Declare (or knowingly change) the dataset's total ε and δ. What earlier DP jobs
    spent stays counted: raising the total lets more jobs run on the same data, and each
    adds to what an attacker holding all their outputs learns."""
    ctx.dataset(tenant, dataset_id)
    ctx.store.set_budget(tenant, dataset_id, total_epsilon=body.total_epsilon,
                         total_delta=body.total_delta)
    ctx.store.audit(tenant, actor(request), "dataset.budget", dataset_id,
                    {"total_epsilon": body.total_epsilon, "total_delta": body.total_delta})
    log.info("dataset %s: privacy budget set", dataset_id)
    return _budget(ctx, tenant, dataset_id)
