"""Liveness: ``GET /healthz`` (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import text

from synthdata import __version__
from synthdata.service.deps import Context, context
from synthdata.service.models import Health

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
