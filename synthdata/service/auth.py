"""Bearer-token authentication, scopes and the per-tenant request rate.

Tokens look like ``sdt_<id>_<secret>``; the store keeps only a salted SHA-256 of the
secret. A short-lived in-memory cache (keyed by a hash of the token, never the token)
keeps status polls to one query; its lifetime (``auth_cache_s``, 1 s by default) bounds
how long a revoked or expired token still works.

Scopes: ``read`` (datasets, schemas, budgets, jobs, reports, limits, audit, tokens),
``submit`` (upload, delete, schema, submit, cancel), ``download`` (synthetic rows),
``admin`` (privacy budgets, tokens). A token without a route's scope gets 403.

Requests per second: a token bucket per tenant in this process (``rate_per_second``,
``rate_burst``), checked after authentication: over it, 429 with ``Retry-After``. It is
in memory on purpose: a database write per request would cost every status poll a write
transaction; the quotas that must survive restarts and be exact across processes (storage,
datasets, jobs per hour, queue) are counted in the database (``store.Quotas``).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from synthdata.service.store import Store, TokenInfo

bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                    description="`Authorization: Bearer <token>`; create one with "
                                "`synthdata tokens create --tenant NAME`.")


class RateLimiter:
    """Token buckets per tenant: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, max_tenants: int = 100_000) -> None:
        self.rate, self.burst, self.max_tenants = rate, max(1, burst), max_tenants
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, tenant: str) -> int | None:
        """Take one request from the tenant's bucket; the seconds to wait when empty."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(tenant, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[tenant] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) / self.rate))
            if len(self._buckets) >= self.max_tenants:
                self._buckets.clear()
            self._buckets[tenant] = (tokens - 1.0, now)
        return None


class Authenticator:
    """Token → :class:`TokenInfo`, with a bounded TTL cache of successful look-ups."""

    def __init__(self, store: Store, *, ttl_s: float = 1.0, max_entries: int = 10_000,
                 limiter: RateLimiter | None = None) -> None:
        self.store, self.ttl_s, self.max_entries = store, ttl_s, max_entries
        self.limiter = limiter or RateLimiter(0.0, 1)
        self._cache: dict[str, tuple[TokenInfo, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    def cached(self, token: str) -> TokenInfo | None:
        """The token's info from the cache only (no I/O: safe on the event loop)."""
        with self._lock:
            hit = self._cache.get(self._key(token))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def lookup(self, token: str) -> TokenInfo | None:
        """The token's info, from the cache or the store (blocking I/O)."""
        info = self.cached(token)
        if info is not None:
            return info
        info = self.store.authenticate(token)
        if info is not None:
            until = time.monotonic() + self.ttl_s
            if info.expires_at is not None:  # never cache past the expiry
                until = min(until, time.monotonic() + info.expires_at - time.time())
            with self._lock:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[self._key(token)] = (info, until)
        return info

    def forget(self, token_id: str) -> None:
        """Drop a revoked token from this process's cache at once."""
        with self._lock:
            for key, (info, _) in list(self._cache.items()):
                if info.token_id == token_id:
                    del self._cache[key]

    def tenant_for(self, token: str) -> str | None:
        info = self.lookup(token)
        return None if info is None else info.tenant_id


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request,
                       creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> TokenInfo:
    """FastAPI dependency: the caller's token info, or 401; then the tenant's request rate
    (429). A cache hit costs no thread hop; a miss asks the store in a worker thread."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise _unauthorized()
    auth: Authenticator = request.app.state.auth
    info = auth.cached(creds.credentials)
    if info is None:
        info = await anyio.to_thread.run_sync(auth.lookup, creds.credentials)
    if info is None:
        raise _unauthorized()
    wait = auth.limiter.retry_after(info.tenant_id)
    if wait is not None:
        raise HTTPException(429, detail="too many requests for this tenant; slow down",
                            headers={"Retry-After": str(wait)})
    request.state.token = info
    return info


def need(scope: str) -> Callable[..., Coroutine[Any, Any, str]]:
    """FastAPI dependency factory: the caller's tenant id when its token has ``scope``
    (403 otherwise)."""

    async def tenant_with_scope(info: TokenInfo = Depends(authenticate)) -> str:
        if scope not in info.scopes:
            raise HTTPException(403, detail=f"this token lacks the {scope!r} scope; create "
                                            f"one with: synthdata tokens create --scopes ...")
        return info.tenant_id

    tenant_with_scope.__name__ = f"need_{scope}"
    return tenant_with_scope


async def require_tenant(info: TokenInfo = Depends(authenticate)) -> str:
    """The caller's tenant id, whatever the token's scopes."""
    return info.tenant_id


def actor(request: Request) -> str:
    """The audit log's ``actor`` of this request: its token id."""
    info = getattr(request.state, "token", None)
    return info.token_id if info is not None else "unknown"
