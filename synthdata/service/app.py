"""The FastAPI application: datasets, schemas, jobs, reports and synthetic downloads.

Every ``/v1`` route takes the caller's tenant from its bearer token and filters every query
by it, so another tenant's ids answer 404 exactly like ids that never existed. Responses
carry only metadata, aggregates (schemas, reports, gate verdicts) and synthetic data; the
uploaded rows are never sent back.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.engine import RowMapping

from synthdata._version import __version__
from synthdata.errors import SynthDataError
from synthdata.io.files import private_dir
from synthdata.service.auth import Authenticator, require_tenant
from synthdata.service.jobs import JobManager, build_config, dp_cost, json_safe
from synthdata.service.settings import ServiceSettings, private_sqlite_file
from synthdata.service.store import (
    INTERRUPTED,
    QUEUED,
    REJECTED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    Charge,
    Store,
    new_id,
)
from synthdata.service.uploads import UploadError, display_name, inspect_file, receive_file

log = logging.getLogger(__name__)
T = TypeVar("T")

Status = Literal["queued", "running", "succeeded", "failed", "rejected", "cancelled"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]


# ---- response and request models -------------------------------------------------------------
class Error(BaseModel):
    detail: str


class DatasetOut(BaseModel):
    id: str
    name: str = Field(description="the uploaded file's name (display only)")
    format: Literal["csv", "parquet"]
    size_bytes: int
    n_rows: int = Field(description="exact row count of your upload: internal metadata for "
                                    "the data custodian, not differentially private; never "
                                    "publish it beside a DP release")
    n_columns: int
    columns: list[str]
    schema_source: Literal["inferred", "user"] | None
    created_at: str


class DatasetList(BaseModel):
    items: list[DatasetOut]
    limit: int
    offset: int


class SchemaOut(BaseModel):
    dataset: str
    source: Literal["inferred", "user"]
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(description="id of one of your datasets")
    pipeline: dict[str, Any] = Field(
        default_factory=dict,
        description="the pipeline model without its 'data' block, e.g. "
                    '{"generator": {"kind": "gmm"}, "sample": {"rows": 1000}}')


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total_epsilon: float = Field(gt=0, allow_inf_nan=False)
    total_delta: float = Field(gt=0, lt=1)


class BudgetRun(BaseModel):
    job: str
    status: Literal["reserved", "committed"] = Field(
        description="reserved: queued, running, or stopped without a result (counted at "
                    "what it reserved); committed: counted at what its ledger spent")
    generator: str
    epsilon: float | None = Field(description="counted against the total (null: unbounded)")
    delta: float
    reserved_epsilon: float
    reserved_delta: float
    created_at: str
    finished_at: str | None


class BudgetOut(BaseModel):
    dataset: str
    composition: Literal["basic"] = Field(
        "basic", description="runs add up: the sum of their ε and the sum of their δ")
    total_epsilon: float
    total_delta: float
    spent_epsilon: float | None = Field(description="null: unbounded (a run released "
                                                    "without privacy)")
    spent_delta: float
    remaining_epsilon: float
    remaining_delta: float
    runs: list[BudgetRun]


class JobPrivacy(BaseModel):
    epsilon: float = Field(description="the ε the job declared (privacy.epsilon)")
    delta: float | None = Field(description="the δ it declared (null: derived from the noisy "
                                            "row count)")
    note: str = Field(
        "covered by ε: the synthetic data and its public schema. Not private (internal QA "
        "for the data custodian, do not publish): the gate rules' metric values here and the "
        "report's sections that read the real data")


class GateOut(BaseModel):
    passed: bool | None
    rules: list[dict[str, Any]]


class JobOut(BaseModel):
    id: str
    dataset: str
    status: Status
    progress: float = Field(ge=0.0, le=1.0)
    step: str | None
    error: str | None
    gate: GateOut | None
    report_available: bool
    synthetic_available: bool
    privacy: JobPrivacy | None = Field(None, description="set for a DP job")
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobList(BaseModel):
    items: list[JobOut]
    limit: int
    offset: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(
        timespec="milliseconds")


def _dataset_out(row: RowMapping) -> DatasetOut:
    return DatasetOut(id=row["id"], name=row["name"], format=row["format"],
                      size_bytes=row["size_bytes"], n_rows=row["n_rows"],
                      n_columns=row["n_columns"], columns=list(row["columns"]),
                      schema_source=row["schema_source"], created_at=_iso(row["created_at"]))


def _job_privacy(row: RowMapping) -> JobPrivacy | None:
    privacy = (row["pipeline"] or {}).get("privacy")
    if not isinstance(privacy, dict) or privacy.get("epsilon") is None:
        return None
    return JobPrivacy(epsilon=privacy["epsilon"], delta=privacy.get("delta"))


def _budget_out(status_: Any) -> BudgetOut:
    import math

    def fin(x: float) -> float | None:
        return x if math.isfinite(x) else None

    runs = [BudgetRun(job=r["job"], status=r["status"], generator=r["generator"],
                      epsilon=fin(r["epsilon"]), delta=r["delta"],
                      reserved_epsilon=r["reserved_epsilon"], reserved_delta=r["reserved_delta"],
                      created_at=_iso(r["created_at"]), finished_at=_iso(r["finished_at"]))
            for r in status_.runs]
    return BudgetOut(dataset=status_.dataset_key, total_epsilon=status_.total_epsilon,
                     total_delta=status_.total_delta, spent_epsilon=fin(status_.spent_epsilon),
                     spent_delta=status_.spent_delta,
                     remaining_epsilon=status_.remaining_epsilon,
                     remaining_delta=status_.remaining_delta, runs=runs)


def _job_out(row: RowMapping) -> JobOut:
    gate = None
    if row["gate_passed"] is not None or row["gate"] is not None:
        gate = GateOut(passed=row["gate_passed"], rules=list(row["gate"] or []))
    return JobOut(id=row["id"], dataset=row["dataset_id"], status=row["status"],
                  progress=float(row["progress"] or 0.0), step=row["step"], error=row["error"],
                  gate=gate, report_available=row["run_dir"] is not None,
                  synthetic_available=bool(row["status"] == SUCCEEDED and row["synthetic_file"]),
                  privacy=_job_privacy(row), created_at=_iso(row["created_at"]),
                  started_at=_iso(row["started_at"]),
                  finished_at=_iso(row["finished_at"]))


NOT_FOUND = {404: {"model": Error, "description": "no such id for this tenant"}}
AUTH = {401: {"model": Error, "description": "missing or invalid bearer token"}}


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


# ---- the app ---------------------------------------------------------------------------------
def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app. Folders, tables and the job dispatcher start with the app (lifespan)."""
    settings = settings or ServiceSettings.from_env()
    settings = dataclasses.replace(settings, data_dir=Path(settings.data_dir).resolve())
    store = Store(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for folder in (settings.data_dir, settings.datasets_dir, settings.jobs_dir):
            private_dir(folder)  # uploads, runs and the database are readable by us only
        private_sqlite_file(settings.database_url)
        store.create_all()
        interrupted = store.fail_running(INTERRUPTED)
        if interrupted:
            log.warning("%d job(s) were running when the server stopped: marked failed",
                        interrupted)
        manager = JobManager(settings, store)
        app.state.jobs = manager
        manager.start()
        try:
            yield
        finally:
            manager.stop()
            store.dispose()

    app = FastAPI(title="synthdata", version=__version__, lifespan=lifespan,
                  description="Upload a dataset, run a pipeline, read the report, and download "
                              "the synthetic table when the gate passed.")
    app.state.settings, app.state.store = settings, store
    app.state.auth = Authenticator(store)

    async def read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A short store read for an ``async`` route: inline on the event loop for SQLite,
        in a worker thread for a server database (see ``Store.inline_reads``). Status polls
        use this: no thread hand-off, so no wait for a pool thread and the GIL to come
        back when the CPU is busy (e.g. with a training job)."""
        if store.inline_reads:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    @app.exception_handler(SynthDataError)
    async def _synthdata_error(_request: Request, err: SynthDataError) -> Response:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": str(err)}, status_code=422)

    def _ping() -> None:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness and database check; no authentication."""
        try:
            await read(_ping)
        except Exception as err:
            raise HTTPException(503, detail="database unavailable") from err
        return Health(status="ok", version=__version__)

    # ---- datasets ----------------------------------------------------------------------------
    upload_body = {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "CSV (UTF-8) or Parquet file"}}}}}}}

    @app.post("/v1/datasets", status_code=201, response_model=DatasetOut, tags=["datasets"],
              openapi_extra=upload_body,
              responses={**AUTH, 400: {"model": Error}, 413: {"model": Error},
                         415: {"model": Error}, 422: {"model": Error}})
    async def upload_dataset(request: Request,
                             tenant: str = Depends(require_tenant),
                             total_epsilon: float | None = Query(
                                 None, gt=0, allow_inf_nan=False,
                                 description="privacy budget: total ε of all DP jobs on this "
                                             "dataset (default: the server's)"),
                             total_delta: float | None = Query(
                                 None, gt=0, lt=1, description="privacy budget: total δ "
                                                              "(default: the server's)"),
                             ) -> DatasetOut:
        """Upload a CSV or Parquet table (multipart field ``file``), streamed to disk.
        ``total_epsilon``/``total_delta`` declare its privacy budget (see
        ``GET /v1/datasets/{id}/budget``)."""
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
            filename, size = await receive_file(request.headers.get("content-type"),
                                                 request.stream(), part, limit)
            info = await anyio.to_thread.run_sync(
                lambda: inspect_file(part, filename, max_columns=settings.max_columns))
            final = folder / f"data.{info.format}"
            part.rename(final)
            await anyio.to_thread.run_sync(functools.partial(  # a write: off the loop
                store.add_dataset, id=dataset_id, tenant_id=tenant, name=display_name(filename),
                format=info.format, file=final.relative_to(settings.data_dir).as_posix(),
                size_bytes=size, n_rows=info.n_rows, n_columns=len(info.columns),
                columns=info.columns, total_epsilon=total_epsilon, total_delta=total_delta))
        except UploadError as err:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(err.status, detail=str(err)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("dataset %s uploaded (%d bytes)", dataset_id, size)
        row = await read(store.get_dataset, tenant, dataset_id)
        assert row is not None
        return _dataset_out(row)

    @app.get("/v1/datasets", response_model=DatasetList, tags=["datasets"], responses=AUTH)
    async def list_datasets(tenant: str = Depends(require_tenant),
                            limit: int = Query(50, ge=1, le=500),
                            offset: int = Query(0, ge=0, le=1_000_000)) -> DatasetList:
        rows = await read(store.list_datasets, tenant, limit=limit, offset=offset)
        return DatasetList(items=[_dataset_out(r) for r in rows], limit=limit, offset=offset)

    def _dataset(tenant: str, dataset_id: str) -> RowMapping:
        row = store.get_dataset(tenant, dataset_id)
        if row is None:
            raise _not_found("dataset")
        return row

    @app.get("/v1/datasets/{dataset_id}", response_model=DatasetOut, tags=["datasets"],
             responses={**AUTH, **NOT_FOUND})
    async def get_dataset(dataset_id: str, tenant: str = Depends(require_tenant)) -> DatasetOut:
        row = await read(store.get_dataset, tenant, dataset_id)
        if row is None:
            raise _not_found("dataset")
        return _dataset_out(row)

    @app.delete("/v1/datasets/{dataset_id}", status_code=204, tags=["datasets"],
                responses={**AUTH, **NOT_FOUND})
    def delete_dataset(dataset_id: str, tenant: str = Depends(require_tenant)) -> Response:
        """Delete a dataset and everything derived from it (jobs, reports, synthetic data);
        running jobs on it are stopped."""
        _dataset(tenant, dataset_id)
        job_ids = store.delete_dataset(tenant, dataset_id)
        for job_id in job_ids:
            app.state.jobs.cancel(job_id)
            shutil.rmtree(settings.jobs_dir / job_id, ignore_errors=True)
        shutil.rmtree(settings.datasets_dir / dataset_id, ignore_errors=True)
        log.info("dataset %s deleted with %d job(s)", dataset_id, len(job_ids))
        return Response(status_code=204)

    def _read_frame(row: RowMapping) -> Any:
        from synthdata.errors import DataError
        from synthdata.io.files import read_table

        path = settings.data_dir / row["file"]
        try:
            return read_table(path, encoding="utf-8-sig", fmt=row["format"])
        except DataError as err:
            raise DataError(str(err).replace(str(path), row["name"])) from None

    @app.get("/v1/datasets/{dataset_id}/schema", response_model=SchemaOut, tags=["datasets"],
             responses={**AUTH, **NOT_FOUND})
    def get_schema(dataset_id: str, tenant: str = Depends(require_tenant)) -> SchemaOut:
        """The dataset's schema: inferred on first request, or the one you PUT."""
        row = _dataset(tenant, dataset_id)
        if row["schema"] is None:
            from synthdata.schema import Schema

            inferred = json_safe(Schema.infer(_read_frame(row), name="data").to_dict())
            store.set_schema(tenant, dataset_id, inferred, "inferred")
            row = _dataset(tenant, dataset_id)
        return SchemaOut(dataset=dataset_id, source=row["schema_source"] or "inferred",
                         schema=row["schema"])

    @app.put("/v1/datasets/{dataset_id}/schema", response_model=SchemaOut, tags=["datasets"],
             responses={**AUTH, **NOT_FOUND, 422: {"model": Error}})
    def put_schema(dataset_id: str, body: dict[str, Any] = Body(
                       ..., examples=[{"columns": [{"name": "age", "kind": "integer",
                                                    "min": 0, "max": 120, "public": True}]}]),
                   tenant: str = Depends(require_tenant)) -> SchemaOut:
        """Set the schema jobs on this dataset use: a schema mapping whose entries override
        the inferred columns they name (a complete schema works too). Checked against the data."""
        from synthdata.errors import SchemaError
        from synthdata.schema import Schema

        row = _dataset(tenant, dataset_id)
        df = _read_frame(row)
        try:
            effective = Schema.infer(df, name="data").with_overrides(body, where="schema")
            effective.validate(df, where=row["name"])
        except SynthDataError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise SchemaError(f"schema: {err}") from None
        overrides = json_safe(body)
        store.set_schema(tenant, dataset_id, json_safe(effective.to_dict()), "user", overrides)
        row = _dataset(tenant, dataset_id)
        return SchemaOut(dataset=dataset_id, source="user", schema=row["schema"])

    # ---- privacy budgets ---------------------------------------------------------------------
    def _budget(tenant: str, dataset_id: str) -> BudgetOut:
        return _budget_out(store.budget_status(
            tenant, dataset_id, default_total_epsilon=settings.budget_epsilon,
            default_total_delta=settings.budget_delta))

    @app.get("/v1/datasets/{dataset_id}/budget", response_model=BudgetOut, tags=["datasets"],
             responses={**AUTH, **NOT_FOUND})
    def get_budget(dataset_id: str, tenant: str = Depends(require_tenant)) -> BudgetOut:
        """The dataset's privacy budget: declared total, spent and remaining (ε, δ), and
        every DP job's charge. DP jobs add up (basic composition); a job that would pass the
        total is refused at submission (409)."""
        _dataset(tenant, dataset_id)
        return _budget(tenant, dataset_id)

    @app.put("/v1/datasets/{dataset_id}/budget", response_model=BudgetOut, tags=["datasets"],
             responses={**AUTH, **NOT_FOUND, 422: {"model": Error}})
    def put_budget(dataset_id: str, body: BudgetIn,
                   tenant: str = Depends(require_tenant)) -> BudgetOut:
        """Declare (or knowingly change) the dataset's total ε and δ. What earlier DP jobs
        spent stays counted: raising the total lets more jobs run on the same data, and each
        adds to what an attacker holding all their outputs learns."""
        _dataset(tenant, dataset_id)
        store.set_budget(tenant, dataset_id, total_epsilon=body.total_epsilon,
                         total_delta=body.total_delta)
        log.info("dataset %s: privacy budget set", dataset_id)
        return _budget(tenant, dataset_id)

    # ---- jobs --------------------------------------------------------------------------------
    @app.post("/v1/jobs", status_code=202, response_model=JobOut, tags=["jobs"],
              responses={**AUTH, 404: {"model": Error, "description": "no such dataset"},
                         409: {"model": Error, "description": "the DP job does not fit in "
                                                              "the dataset's privacy budget"},
                         422: {"model": Error}, 429: {"model": Error}})
    def submit_job(job: JobIn, tenant: str = Depends(require_tenant)) -> JobOut:
        """Queue a pipeline run on one of your datasets (same model as the pipeline YAML,
        without 'data'). It runs in a worker process; poll ``GET /v1/jobs/{id}``. A DP job
        reserves its (ε, δ) on the dataset's privacy budget here, or is refused (409)."""
        from synthdata.errors import PrivacyBudgetError

        ds = store.get_dataset(tenant, job.dataset)
        if ds is None:
            raise _not_found("dataset")
        cfg = build_config(job.pipeline, data_path=settings.data_dir / ds["file"],
                           fmt=ds["format"])
        cost = dp_cost(cfg)
        if store.count_jobs(tenant, (QUEUED,)) >= settings.max_queued_per_tenant:
            raise HTTPException(429, detail=f"too many queued jobs (limit "
                                            f"{settings.max_queued_per_tenant}); wait or cancel some")
        job_id = new_id()
        charge = None if cost is None else Charge(
            epsilon=cost[0], delta=cost[1], generator=cost[2],
            default_total_epsilon=settings.budget_epsilon,
            default_total_delta=settings.budget_delta)
        try:
            store.add_job(job_id=job_id, tenant_id=tenant, dataset_id=ds["id"],
                          pipeline=json_safe(job.pipeline), charge=charge)
        except PrivacyBudgetError as err:
            raise HTTPException(409, detail=str(err)) from None
        app.state.jobs.wake()
        row = store.get_job(tenant, job_id)
        assert row is not None
        return _job_out(row)

    @app.get("/v1/jobs", response_model=JobList, tags=["jobs"], responses=AUTH)
    async def list_jobs(tenant: str = Depends(require_tenant),
                        status_: Status | None = Query(None, alias="status"),
                        dataset: str | None = Query(None, max_length=64),
                        limit: int = Query(50, ge=1, le=500),
                        offset: int = Query(0, ge=0, le=1_000_000)) -> JobList:
        rows = await read(store.list_jobs, tenant, limit=limit, offset=offset, status=status_,
                          dataset_id=dataset)
        return JobList(items=[_job_out(r) for r in rows], limit=limit, offset=offset)

    def _job(tenant: str, job_id: str) -> RowMapping:
        row = store.get_job(tenant, job_id)
        if row is None:
            raise _not_found("job")
        return row

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"],
             responses={**AUTH, **NOT_FOUND})
    async def get_job(job_id: str, tenant: str = Depends(require_tenant)) -> JobOut:
        """Status (queued, running, succeeded, failed, rejected, cancelled), progress 0..1,
        gate verdict. ``rejected``: the gate refused export; the report says why."""
        row = await read(store.get_job, tenant, job_id)
        if row is None:
            raise _not_found("job")
        return _job_out(row)

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"],
              responses={**AUTH, **NOT_FOUND, 409: {"model": Error}})
    def cancel_job(job_id: str, tenant: str = Depends(require_tenant)) -> JobOut:
        """Cancel a queued or running job (a running worker is terminated)."""
        row = _job(tenant, job_id)
        previous = store.cancel_job(tenant, job_id)
        if previous is None:
            raise HTTPException(409, detail=f"the job is already {row['status']}")
        if previous == RUNNING:
            app.state.jobs.cancel(job_id)
        return _job_out(_job(tenant, job_id))

    def _run_file(row: RowMapping, name: str) -> Path:
        path = (settings.data_dir / row["run_dir"] / name).resolve()
        if settings.data_dir not in path.parents or not path.is_file():
            raise HTTPException(410, detail="the run's files are gone")
        return path

    @app.get("/v1/jobs/{job_id}/report", tags=["jobs"],
             responses={**AUTH, **NOT_FOUND, 409: {"model": Error},
                        200: {"content": {"application/json": {}, "text/html": {}},
                              "description": "the run report (aggregates only)"}})
    def job_report(job_id: str, tenant: str = Depends(require_tenant),
                   format_: Literal["json", "html"] = Query("json", alias="format")) -> Response:
        """The run report: JSON by default, ``?format=html`` for the page a person reads."""
        row = _job(tenant, job_id)
        if row["run_dir"] is None:
            raise HTTPException(409, detail=f"no report: the job is {row['status']}")
        # a DP job's report is for the data custodian: its sections that read the real data
        # are not covered by ε (the report marks them); say so on the response too
        headers = ({"X-Synthdata-Privacy": "internal QA: sections that read the real data "
                    "are not differentially private; do not publish"}
                   if _job_privacy(row) is not None else None)
        if format_ == "html":
            return FileResponse(_run_file(row, "report.html"), media_type="text/html",
                                headers=headers)
        return FileResponse(_run_file(row, "report.json"), media_type="application/json",
                            headers=headers)

    @app.get("/v1/jobs/{job_id}/synthetic", tags=["jobs"],
             responses={**AUTH, **NOT_FOUND, 409: {"model": Error},
                        200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
                              "description": "the synthetic table"}})
    def job_synthetic(job_id: str, tenant: str = Depends(require_tenant)) -> Response:
        """The synthetic table, only when the job succeeded (the gate passed)."""
        row = _job(tenant, job_id)
        if row["status"] == REJECTED:
            raise HTTPException(409, detail="the gate refused export; the report says why")
        if row["status"] != SUCCEEDED or not row["synthetic_file"]:
            raise HTTPException(409, detail=f"no synthetic data: the job is {row['status']}")
        name = row["synthetic_file"]
        media = "application/vnd.apache.parquet" if name.endswith(".parquet") else "text/csv"
        return FileResponse(_run_file(row, name), media_type=media,
                            filename=f"synthetic-{job_id}{Path(name).suffix}")

    return app
