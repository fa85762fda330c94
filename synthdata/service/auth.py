"""Bearer-token authentication: every ``/v1`` call names its tenant with a token.

Tokens look like ``sdt_<id>_<secret>``; the store keeps only a salted SHA-256 of the
secret. A short-lived in-memory cache (keyed by a hash of the token, never the token)
keeps status polls to one query.
"""

from __future__ import annotations

import hashlib
import threading
import time

import anyio
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from synthdata.service.store import Store

bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth",
                    description="`Authorization: Bearer <token>`; create one with "
                                "`synthdata tokens create --tenant NAME`.")


class Authenticator:
    """Token → tenant id, with a bounded TTL cache of successful look-ups."""

    def __init__(self, store: Store, *, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self.store, self.ttl_s, self.max_entries = store, ttl_s, max_entries
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    def cached(self, token: str) -> str | None:
        """The tenant from the cache only (no I/O: safe on the event loop)."""
        with self._lock:
            hit = self._cache.get(self._key(token))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def tenant_for(self, token: str) -> str | None:
        """The tenant for a token, from the cache or the store (blocking I/O)."""
        tenant = self.cached(token)
        if tenant is not None:
            return tenant
        tenant = self.store.authenticate(token)
        if tenant is not None:
            with self._lock:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[self._key(token)] = (tenant, time.monotonic() + self.ttl_s)
        return tenant


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


async def require_tenant(request: Request,
                         creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """FastAPI dependency: the caller's tenant id, or 401. A cache hit costs no thread hop;
    a miss asks the store in a worker thread."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise _unauthorized()
    auth: Authenticator = request.app.state.auth
    tenant = auth.cached(creds.credentials)
    if tenant is None:
        tenant = await anyio.to_thread.run_sync(auth.tenant_for, creds.credentials)
    if tenant is None:
        raise _unauthorized()
    return tenant
