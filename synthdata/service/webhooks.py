"""Job webhooks: when a job with a ``webhook`` URL ends, the server POSTs its status there,
signed with the tenant's webhook secret.

Signature: ``X-Synthdata-Signature: t=<unix time>,sha256=<hex HMAC-SHA256 of
"<t>.<body>" with the secret>``. A receiver recomputes it, compares in constant time, and
rejects old timestamps (replays). Deliveries are tried 3 times (1 s, 2 s apart), never
follow redirects, and carry only the job's id, status and times (no data, no report).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from synthdata.errors import ConfigError

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Synthdata-Signature"


def check_webhook_url(url: str, *, allow_http: bool = False) -> None:
    """``ConfigError`` unless ``url`` is an absolute https URL (http only when allowed)."""
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise ConfigError(f"webhook: use an absolute {' or '.join(schemes)} URL without "
                          "credentials, e.g. https://example.org/hooks/synthdata")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},sha256={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, max_age_s: float = 300.0) -> bool:
    """Whether ``header`` is a valid, fresh signature of ``body`` (for receivers and tests)."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > max_age_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def deliver(url: str, secret: str, payload: dict[str, Any], *, attempts: int = 3,
            timeout_s: float = 5.0) -> bool:
    """POST ``payload`` to ``url``, signed; True once a 2xx came back."""
    body = json.dumps(payload, sort_keys=True).encode()
    opener = urllib.request.build_opener(_NoRedirect())
    for attempt in range(attempts):
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "synthdata-webhook",
            SIGNATURE_HEADER: sign(secret, body, int(time.time()))})
        try:
            with opener.open(req, timeout=timeout_s) as resp:
                if 200 <= resp.status < 300:
                    return True
        except OSError as err:
            log.info("webhook for job %s: attempt %d failed (%s)", payload.get("job"),
                     attempt + 1, type(err).__name__)
        time.sleep(1.0 * (attempt + 1))
    log.warning("webhook for job %s not delivered", payload.get("job"))
    return False


def deliver_in_background(url: str, secret: str, payload: dict[str, Any]) -> threading.Thread:
    thread = threading.Thread(target=deliver, args=(url, secret, payload),
                              name="synthdata-webhook", daemon=True)
    thread.start()
    return thread
