"""The FastAPI application: wires the routers (health, datasets, jobs, tokens) to one
:class:`~synthdata.service.deps.Context`.

Every ``/v1`` route takes the caller's tenant from its bearer token and filters every query
by it, so another tenant's ids answer 404 exactly like ids that never existed. Responses
carry only metadata, aggregates (schemas, reports, gate verdicts) and synthetic data; the
uploaded rows are never sent back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from synthdata._version import __version__
from synthdata.errors import SynthDataError
from synthdata.io.files import private_dir
from synthdata.service.auth import Authenticator, RateLimiter
from synthdata.service.deps import Context
from synthdata.service.guards import Guards
from synthdata.service.jobs import JobManager
from synthdata.service.routers import datasets, health, jobs, tokens
from synthdata.service.settings import ServiceSettings, private_sqlite_file
from synthdata.service.store import INTERRUPTED, QuotaExceeded, Store

log = logging.getLogger(__name__)


def _lifespan(ctx: Context) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    settings, store = ctx.settings, ctx.store

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
        app.state.jobs = ctx.jobs = manager
        manager.start()
        try:
            yield
        finally:
            manager.stop()
            store.dispose()

    return lifespan


async def _synthdata_error(_request: Request, err: SynthDataError) -> Response:
    return JSONResponse({"detail": str(err)}, status_code=422)


async def _quota_error(_request: Request, err: QuotaExceeded) -> Response:
    return JSONResponse({"detail": str(err)}, status_code=429,
                        headers={"Retry-After": str(err.retry_after)})


def _allow_header(app: FastAPI) -> Any:
    """405 answers with ``Allow`` listing every method of the path (Starlette lists only
    the first matching route's)."""
    import re

    from starlette.exceptions import HTTPException as StarletteHTTPException

    table: list[tuple[re.Pattern[str], set[str]]] = []

    async def handler(request: Request, err: StarletteHTTPException) -> Response:
        headers = dict(err.headers or {})
        if err.status_code == 405:
            if not table:
                for path, ops in app.openapi()["paths"].items():
                    pattern = re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(path))
                    table.append((re.compile(pattern + "$"), {m.upper() for m in ops}))
            methods = set().union(*(m for rx, m in table if rx.match(request.url.path)))
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": err.detail}, status_code=err.status_code,
                            headers=headers or None)

    return handler


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app. Folders, tables and the job dispatcher start with the app (lifespan)."""
    settings = settings or ServiceSettings.from_env()
    settings = dataclasses.replace(settings, data_dir=Path(settings.data_dir).resolve())
    ctx = Context(settings, Store(settings.database_url))
    docs: dict[str, Any] = {} if settings.docs else {"docs_url": None, "redoc_url": None}
    app = FastAPI(title="synthdata", version=__version__, lifespan=_lifespan(ctx), **docs,
                  description="Upload a dataset, run a pipeline, read the report, and download "
                              "the synthetic table when the gate passed.")
    app.state.ctx, app.state.settings, app.state.store = ctx, settings, ctx.store
    app.state.auth = Authenticator(ctx.store, ttl_s=settings.auth_cache_s,
                                   limiter=RateLimiter(settings.rate_per_second,
                                                       settings.rate_burst))
    app.add_exception_handler(SynthDataError, _synthdata_error)  # type: ignore[arg-type]
    app.add_exception_handler(QuotaExceeded, _quota_error)  # type: ignore[arg-type]
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(StarletteHTTPException, _allow_header(app))
    app.add_middleware(Guards, max_body_bytes=settings.max_body_bytes,
                       max_depth=settings.max_json_depth)
    for router in (health.router, datasets.router, jobs.router, tokens.router):
        app.include_router(router)
    return app
