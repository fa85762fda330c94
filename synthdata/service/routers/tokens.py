"""Access: the tenant's tokens (list, create, revoke), its audit log and webhook secret."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from synthdata.service.auth import actor, authenticate, need
from synthdata.service.deps import Context, context
from synthdata.service.models import (
    AUTH,
    JSON_BODY,
    NOT_FOUND,
    AuditEntry,
    AuditList,
    Error,
    Responses,
    TokenCreated,
    TokenIn,
    TokenOut,
    WebhookSecret,
    iso,
    not_found,
    token_out,
)
from synthdata.service.store import ADMIN, READ, TokenInfo

router = APIRouter(prefix="/v1", tags=["access"])
FORBIDDEN: Responses = {403: {"model": Error, "description": "the token lacks the route's scope"}}


@router.get("/tokens", response_model=list[TokenOut], responses={**AUTH, **FORBIDDEN})
def list_tokens(tenant: str = Depends(need(READ)), ctx: Context = Depends(context)
                ) -> list[TokenOut]:
    """Your tenant's tokens (never their secrets): scopes, expiry, last use, revocation."""
    return [token_out(r) for r in ctx.store.list_tokens(tenant_id=tenant)]


@router.post("/tokens", status_code=201, response_model=TokenCreated,
             responses={**AUTH, **JSON_BODY})
def create_token(body: TokenIn, request: Request, info: TokenInfo = Depends(authenticate),
                 tenant: str = Depends(need(ADMIN)), ctx: Context = Depends(context)
                 ) -> TokenCreated:
    """A new token for your tenant with at most your token's scopes and lifetime (an
    analyst token: ``["read", "submit"]``, no downloads)."""
    if not set(body.scopes) <= info.scopes:
        raise HTTPException(403, detail="a token cannot grant scopes it does not have")
    expires = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86400
    if info.expires_at is not None:
        expires = min(expires or info.expires_at, info.expires_at)
    name = ctx.store.tenant_name(tenant)
    token = ctx.store.create_token(name, scopes=body.scopes, expires_at=expires,
                                   label=body.label, actor=actor(request))
    row = next(r for r in ctx.store.list_tokens(tenant_id=tenant)
               if r["id"] == token.split("_")[1])
    return TokenCreated(**token_out(row).model_dump(), token=token)


@router.delete("/tokens/{token_id}", status_code=204,
               responses={**AUTH, **FORBIDDEN, **NOT_FOUND})
def revoke_token(token_id: str, request: Request, tenant: str = Depends(need(ADMIN)),
                 ctx: Context = Depends(context)) -> Response:
    """Revoke one of your tenant's tokens; it stops working within ``auth_cache_s``
    (1 s by default; at once on this server process)."""
    if not ctx.store.revoke_token(token_id, tenant_id=tenant, actor=actor(request)):
        raise not_found("token")
    request.app.state.auth.forget(token_id)
    return Response(status_code=204)


@router.get("/audit", response_model=AuditList, responses={**AUTH, **FORBIDDEN})
async def audit_log(tenant: str = Depends(need(READ)), ctx: Context = Depends(context),
                    action: str | None = Query(None, max_length=40),
                    limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=10_000_000)) -> AuditList:
    """Your tenant's audit log, newest first: uploads, submissions, downloads, deletions,
    budget and schema changes, token creation and revocation (who: the token id)."""
    rows = await ctx.read(ctx.store.list_audit, tenant, limit=limit, offset=offset,
                          action=action)
    items = [AuditEntry(id=r["id"], at=iso(r["at"]), actor=r["actor"], action=r["action"],
                        target=r["target"], detail=r["detail"]) for r in rows]
    return AuditList(items=items, limit=limit, offset=offset)


@router.post("/webhook-secret", status_code=201, response_model=WebhookSecret,
             responses={**AUTH, **FORBIDDEN})
def new_webhook_secret(request: Request, tenant: str = Depends(need(ADMIN)),
                       ctx: Context = Depends(context)) -> WebhookSecret:
    """Create (or rotate) the secret that signs your jobs' webhooks; shown once."""
    return WebhookSecret(secret=ctx.store.new_webhook_secret(tenant, actor(request)))
