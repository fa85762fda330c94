"""ASGI guards in front of every route: the JSON body limits (size, nesting depth, well-formed)
and the security headers of every response.

They run before FastAPI parses a body, so a 50 MB or 100,000-deep JSON body is refused with
413/422 without being parsed, stored or logged, and malformed JSON is a 400 with one line.
"""

from __future__ import annotations

import json
import re
from typing import Any

# a JSON string (escapes included); removed before counting brackets
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")

SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")]
# the HTML report has inline styles and no scripts; nothing loads from elsewhere
HTML_CSP = (b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays/objects in a JSON text (no parsing, no recursion)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class Guards:
    """Pure ASGI middleware: JSON body limits on requests, security headers on responses."""

    def __init__(self, app: Any, *, max_body_bytes: int, max_depth: int) -> None:
        self.app, self.max_body_bytes, self.max_depth = app, max_body_bytes, max_depth

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = _with_headers(send)
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["method"] in ("GET", "HEAD", "DELETE") or ctype == b"multipart/form-data":
            return await self.app(scope, receive, send)  # uploads have their own limits
        body, error = await self._read(headers, receive)
        if error is not None:
            return await _reply(send, *error)
        if body and ctype.endswith(b"json"):
            error = self._check_json(body)
            if error is not None:
                return await _reply(send, *error)
        return await self.app(scope, _replay(body), send)

    async def _read(self, headers: dict, receive: Any) -> tuple[bytes, tuple[int, str] | None]:
        too_big = (413, (f"the request body is larger than this server's limit of "
                         f"{self.max_body_bytes} bytes (GET /v1/limits)"))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return b"", too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", (400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", too_big
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks), None

    def _check_json(self, body: bytes) -> tuple[int, str] | None:
        depth = json_depth(body)
        if depth > self.max_depth:
            return 422, (f"the JSON body is nested {depth} levels deep; this server's limit "
                         f"is {self.max_depth} (GET /v1/limits)")
        try:
            json.loads(body)
        except (ValueError, RecursionError) as err:
            where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
            return 400, f"the request body is not valid JSON{where}"
        return None


def _replay(body: bytes) -> Any:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _with_headers(send: Any) -> Any:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", [])
                       if k.lower() not in {h for h, _ in SECURITY_HEADERS}]
            headers += SECURITY_HEADERS
            ctype = {k.lower(): v for k, v in headers}.get(b"content-type", b"")
            if ctype.startswith(b"text/html"):
                headers.append((b"content-security-policy", HTML_CSP))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _reply(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
