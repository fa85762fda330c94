"""The routers' dependency layer: the app context (settings, store, job manager) and the
helpers every route shares.

Routers never build their own store or read settings from the environment: they take the
one :class:`Context` the app made (``Depends(context)``), so a test app and a served app
behave alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import HTTPException, Request
from sqlalchemy.engine import RowMapping

from synthdata.service.models import not_found
from synthdata.service.settings import ServiceSettings
from synthdata.service.store import Quotas, Store

T = TypeVar("T")


class Context:
    """What every route needs: the settings, the store and (once started) the job manager."""

    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.jobs: Any = None  # the JobManager, set when the app starts (lifespan)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A short store read for an ``async`` route: inline on the event loop for SQLite,
        in a worker thread for a server database (see ``Store.inline_reads``). Status polls
        use this: no thread hand-off, so no wait for a pool thread and the GIL to come
        back when the CPU is busy (e.g. with a training job)."""
        if self.store.inline_reads:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    @property
    def quotas(self) -> Quotas:
        s = self.settings
        return Quotas(storage_bytes=int(s.quota_storage_mb * 1024 * 1024),
                      datasets=s.quota_datasets, jobs_per_hour=s.quota_jobs_per_hour,
                      queued=s.max_queued_per_tenant)

    def dataset(self, tenant: str, dataset_id: str) -> RowMapping:
        """The tenant's dataset row, or 404 (blocking: call from a sync route)."""
        row = self.store.get_dataset(tenant, dataset_id)
        if row is None:
            raise not_found("dataset")
        return row

    def job(self, tenant: str, job_id: str) -> RowMapping:
        row = self.store.get_job(tenant, job_id)
        if row is None:
            raise not_found("job")
        return row

    def run_file(self, row: RowMapping, name: str) -> Path:
        """A file of a job's run folder, checked to stay inside the data folder (410 when
        the files are gone)."""
        data_dir = self.settings.data_dir
        path = (data_dir / row["run_dir"] / name).resolve()
        if data_dir not in path.parents or not path.is_file():
            raise HTTPException(410, detail="the run's files are gone")
        return path


def context(request: Request) -> Context:
    """FastAPI dependency: the app's :class:`Context`."""
    return request.app.state.ctx
