"""The job store: tenants, hashed API tokens, datasets and jobs in one SQL database.

SQLite (WAL mode) by default; any SQLAlchemy 2.x URL works, e.g.
``postgresql+psycopg://user:pass@host/db``. Every read and write that concerns a tenant's
objects takes the tenant id, so a query can never return another tenant's rows. Times are
stored as UNIX seconds (floats) to stay portable across databases.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, RowMapping

from synthdata.errors import ConfigError

QUEUED, RUNNING, SUCCEEDED, FAILED, REJECTED, CANCELLED = (
    "queued", "running", "succeeded", "failed", "rejected", "cancelled")
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, REJECTED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
INTERRUPTED = "interrupted by server restart"

TOKEN_PREFIX = "sdt"
READ, SUBMIT, DOWNLOAD, ADMIN = "read", "submit", "download", "admin"
SCOPES = (READ, SUBMIT, DOWNLOAD, ADMIN)


class QuotaExceeded(Exception):
    """A tenant quota or queue limit: the app answers 429 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


@dataclass(frozen=True)
class TokenInfo:
    """Who a valid token speaks for, and what it may do."""

    tenant_id: str
    token_id: str
    scopes: frozenset[str]
    expires_at: float | None


@dataclass(frozen=True)
class Quotas:
    """A tenant's quotas, checked in the transaction that adds the dataset or job."""

    storage_bytes: int
    datasets: int
    jobs_per_hour: int
    queued: int

metadata = MetaData()

tenants = Table(
    "tenants", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("webhook_secret", String(100), nullable=True),  # HMAC key of its job webhooks
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),           # public half of the token
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("salt", String(64), nullable=False),
    Column("digest", String(64), nullable=False),         # sha256(salt + secret), hex
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("scopes", String(100), nullable=True),          # comma-separated; NULL: all
    Column("expires_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("label", String(100), nullable=True),
)

# Append-only: the store has no update or delete for it, and SQLite/PostgreSQL refuse both
# (triggers / rules created with the table, see ``_protect_audit``).
audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("actor", String(40), nullable=False),           # token id, or "cli"
    Column("action", String(40), nullable=False),          # e.g. "dataset.upload"
    Column("target", String(64), nullable=True),           # dataset / job / token id
    Column("detail", JSON, nullable=True),                 # metadata only, never data values
)

datasets = Table(
    "datasets", metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),          # display only, never a path
    Column("format", String(16), nullable=False),
    Column("file", String(255), nullable=False),          # relative to data_dir
    Column("size_bytes", BigInteger, nullable=False),
    Column("n_rows", BigInteger, nullable=False),
    Column("n_columns", Integer, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("schema", JSON, nullable=True),                # effective schema (cache)
    Column("schema_source", String(16), nullable=True),   # "inferred" | "user"
    Column("schema_overrides", JSON, nullable=True),      # what PUT gave; jobs apply it
    Column("created_at", Float, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=True),     # SHA-256 of the uploaded file
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("dataset_id", String(36), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("progress", Float, nullable=False, default=0.0),
    Column("step", String(64), nullable=True),
    Column("pipeline", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Column("gate_passed", Boolean, nullable=True),
    Column("gate", JSON, nullable=True),
    Column("run_dir", String(255), nullable=True),        # relative to data_dir
    Column("synthetic_file", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("webhook_url", String(2048), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Index("ix_jobs_tenant_status", "tenant_id", "status"),
    Index("ix_jobs_status_created", "status", "created_at"),
)


# Per-dataset privacy budgets (synthdata.privacy.budget, kept here instead of in a file):
# the declared total, and one charge per DP job (reserved at submission, committed with the
# ledger's spent values when the job ends). Separate tables, so databases made before them
# gain them with create_all().
dataset_budgets = Table(
    "dataset_budgets", metadata,
    Column("dataset_id", String(36), primary_key=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("total_epsilon", Float, nullable=False),
    Column("total_delta", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

budget_charges = Table(
    "budget_charges", metadata,
    Column("job_id", String(36), primary_key=True),
    Column("dataset_id", String(36), nullable=False, index=True),
    Column("tenant_id", String(36), ForeignKey("tenants.id"), nullable=False),
    Column("status", String(16), nullable=False),          # "reserved" | "committed"
    Column("generator", String(64), nullable=False),
    Column("epsilon", Float, nullable=False),               # what counts against the total
    Column("delta", Float, nullable=False),
    Column("reserved_epsilon", Float, nullable=False),
    Column("reserved_delta", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)


@dataclass(frozen=True)
class Charge:
    """What a DP job reserves on its dataset's budget, and the total to declare when the
    dataset has none yet (the server default)."""

    epsilon: float
    delta: float
    generator: str
    default_total_epsilon: float
    default_total_delta: float


# The status poll's reads, built once: building a statement costs more than running it.
_JOB_OF_TENANT = select(jobs).where(jobs.c.id == bindparam("job_id"),
                                    jobs.c.tenant_id == bindparam("tenant_id"))
_DATASET_OF_TENANT = select(datasets).where(datasets.c.id == bindparam("dataset_id"),
                                            datasets.c.tenant_id == bindparam("tenant_id"))

_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TOKEN_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def new_id() -> str:
    """A server-generated id (UUID4). User input never names a row or a path."""
    return str(uuid.uuid4())


def is_id(value: object) -> bool:
    """Whether ``value`` has the form of an id ``new_id`` makes. Lookups by a client's id
    check this first: anything else cannot exist, and never reaches the database (where,
    e.g., a NUL byte is an error on PostgreSQL, not a miss)."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Claimed:
    """A queued job the dispatcher has just moved to ``running``."""

    id: str
    tenant_id: str
    attempt: int


class Store:
    """Thin, explicit SQL access. Safe to share between threads; one per process.

    ``inline_reads`` is true for SQLite: a read there is a local file access of well under
    a millisecond (WAL: readers never wait for the writer), cheaper than handing it to a
    thread, so the app may run reads on its event loop. A server database is network I/O:
    the app keeps it off the loop.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = _make_engine(_with_driver(url))
        except ConfigError:
            raise
        except ImportError as err:
            hint = (" (install the extra: pip install 'synthdata[postgres]')"
                    if url.startswith("postgres") else "")
            raise ConfigError(f"cannot open the database {_redact(url)}: the driver "
                              f"{err.name!r} is not installed{hint}") from err
        except Exception as err:  # bad URL
            raise ConfigError(f"cannot open the database {_redact(url)}: {err}") from err
        self.inline_reads = self.engine.dialect.name == "sqlite"

    def create_all(self) -> None:
        metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        _protect_audit(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- tenants and tokens -------------------------------------------------------------
    @overload
    def tenant_id(self, name: str, *, create: Literal[True]) -> str: ...
    @overload
    def tenant_id(self, name: str, *, create: bool = False) -> str | None: ...
    def tenant_id(self, name: str, *, create: bool = False) -> str | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(tenants.c.id).where(tenants.c.name == name)).first()
            if row is not None:
                return row.id
            if not create:
                return None
            tid = new_id()
            conn.execute(insert(tenants).values(id=tid, name=name, created_at=time.time()))
            return tid

    def tenant_name(self, tenant_id: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(select(tenants.c.name).where(tenants.c.id == tenant_id)
                                ).scalar_one()

    def create_token(self, tenant: str, *, scopes: Iterable[str] = SCOPES,
                     expires_at: float | None = None, label: str | None = None,
                     actor: str = "cli") -> str:
        """Create (if needed) the tenant and a new token for it; return the token once.

        Only a salted SHA-256 digest is stored: a leaked database does not leak tokens.
        """
        name = tenant.strip()
        if not name or len(name) > 200 or not name.isprintable():
            raise ConfigError("--tenant must be a non-empty name of at most 200 printable "
                              "characters")
        scopes = parse_scopes(scopes)
        if expires_at is not None and expires_at <= time.time():
            raise ConfigError("--expires must be in the future")
        tid = self.tenant_id(name, create=True)
        token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(id=token_id, tenant_id=tid, salt=salt,
                                               digest=_digest(salt, secret),
                                               created_at=time.time(), scopes=",".join(scopes),
                                               expires_at=expires_at,
                                               label=(label or "")[:100] or None))
            _audit(conn, tid, actor, "token.create", token_id,
                   {"scopes": list(scopes), "expires_at": expires_at})
        return f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def list_tokens(self, tenant: str | None = None, *, tenant_id: str | None = None
                    ) -> list[dict[str, Any]]:
        """Tokens (never their secrets) of one tenant, by name or id, or of all tenants."""
        q = (select(tokens.c.id, tokens.c.scopes, tokens.c.created_at, tokens.c.expires_at,
                    tokens.c.last_used_at, tokens.c.revoked_at, tokens.c.label,
                    tenants.c.name.label("tenant"))
             .join(tenants, tenants.c.id == tokens.c.tenant_id)
             .order_by(tokens.c.created_at, tokens.c.id))
        if tenant is not None:
            q = q.where(tenants.c.name == tenant.strip())
        if tenant_id is not None:
            q = q.where(tokens.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{**r, "scopes": list(parse_scopes(r["scopes"]))} for r in rows]

    def revoke_token(self, token_id: str, *, tenant_id: str | None = None,
                     actor: str = "cli") -> bool:
        """Revoke a token (of ``tenant_id`` when given); False when there is none to revoke."""
        if not _TOKEN_ID_RE.match(token_id or ""):
            return False
        q = update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        if tenant_id is not None:
            q = q.where(tokens.c.tenant_id == tenant_id)
        with self.engine.begin() as conn:
            owner = conn.execute(select(tokens.c.tenant_id).where(tokens.c.id == token_id)
                                 ).scalar_one_or_none()
            if owner is None or not conn.execute(q.values(revoked_at=time.time())).rowcount:
                return False
            _audit(conn, owner, actor, "token.revoke", token_id, None)
        return True

    def authenticate(self, token: str) -> TokenInfo | None:
        """Who a token speaks for, or ``None`` (unknown, revoked, expired; constant-time
        comparison). Records its last use (at most once a minute)."""
        prefix, _, rest = token.partition("_")
        token_id, _, secret = rest.partition("_")
        if (prefix != TOKEN_PREFIX or len(token) > 200 or not _TOKEN_ID_RE.match(token_id)
                or not _SECRET_RE.match(secret)):
            return None
        now = time.time()
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id,
                                                    tokens.c.revoked_at.is_(None))).first()
        if row is None or not hmac.compare_digest(row.digest, _digest(row.salt, secret)):
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        if row.last_used_at is None or now - row.last_used_at > 60:
            with self.engine.begin() as conn:
                conn.execute(update(tokens).where(tokens.c.id == token_id)
                             .values(last_used_at=now))
        return TokenInfo(row.tenant_id, token_id, frozenset(parse_scopes(row.scopes)),
                         row.expires_at)

    def new_webhook_secret(self, tenant_id: str, actor: str) -> str:
        """A new webhook secret for the tenant (returned once; the old one stops working)."""
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                         .values(webhook_secret=secret))
            _audit(conn, tenant_id, actor, "webhook.secret", None, None)
        return secret

    def webhook_secret(self, tenant_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(tenants.c.webhook_secret).where(
                tenants.c.id == tenant_id)).scalar_one_or_none()

    # ---- audit log ----------------------------------------------------------------------
    def audit(self, tenant_id: str, actor: str, action: str, target: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
        """Append one entry (who did what to which object); never updated or deleted."""
        with self.engine.begin() as conn:
            _audit(conn, tenant_id, actor, action, target, detail)

    def list_audit(self, tenant_id: str, *, limit: int, offset: int,
                   action: str | None = None) -> list[RowMapping]:
        q = select(audit_log).where(audit_log.c.tenant_id == tenant_id)
        if action is not None:
            q = q.where(audit_log.c.action == action)
        q = q.order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return list(conn.execute(q).mappings())

    # ---- datasets -----------------------------------------------------------------------
    def add_dataset(self, *, total_epsilon: float | None = None,
                    total_delta: float | None = None, quotas: Quotas | None = None,
                    actor: str = "cli", **values: Any) -> str:
        """Insert a dataset row and return its id; with both totals, declare its privacy
        budget too. With ``quotas``, the tenant's storage and dataset count are checked in
        the same transaction (``QuotaExceeded``), after locking the tenant's row. An
        ``idempotency_key`` used before with the same file returns that dataset's id."""
        with self.engine.begin() as conn:
            now = time.time()
            _lock_tenant(conn, values["tenant_id"])
            earlier = _idempotent(conn, datasets, values["tenant_id"],
                                  values.get("idempotency_key"), values.get("request_hash"))
            if earlier is not None:
                return earlier
            if quotas is not None:
                _check_storage(conn, values["tenant_id"], values["size_bytes"], quotas)
            conn.execute(insert(datasets).values(created_at=now, **values))
            _audit(conn, values["tenant_id"], actor, "dataset.upload", values["id"],
                   {"size_bytes": values["size_bytes"], "format": values["format"]})
            if total_epsilon is not None and total_delta is not None:
                conn.execute(insert(dataset_budgets).values(
                    dataset_id=values["id"], tenant_id=values["tenant_id"],
                    total_epsilon=total_epsilon, total_delta=total_delta, updated_at=now))
        return values["id"]

    def get_dataset(self, tenant_id: str, dataset_id: str) -> RowMapping | None:
        if not is_id(dataset_id):
            return None
        with self.engine.connect() as conn:
            return conn.execute(_DATASET_OF_TENANT, {"dataset_id": dataset_id,
                                                     "tenant_id": tenant_id}).mappings().first()

    def dataset_by_id(self, dataset_id: str) -> RowMapping | None:
        """Internal (workers): no tenant filter, never used to answer a request."""
        with self.engine.connect() as conn:
            return conn.execute(select(datasets).where(datasets.c.id == dataset_id)).mappings().first()

    def list_datasets(self, tenant_id: str, *, limit: int, offset: int) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(datasets).where(datasets.c.tenant_id == tenant_id)
                .order_by(datasets.c.created_at.desc(), datasets.c.id)
                .limit(limit).offset(offset)).mappings())

    def set_schema(self, tenant_id: str, dataset_id: str, schema: dict[str, Any],
                   source: str, overrides: dict[str, Any] | None = None) -> bool:
        if not is_id(dataset_id):
            return False
        q = update(datasets).where(datasets.c.id == dataset_id, datasets.c.tenant_id == tenant_id)
        if source == "inferred":  # a cache: never overwrite a schema the user gave
            q = q.where(datasets.c.schema_source.is_(None))
        with self.engine.begin() as conn:
            res = conn.execute(q.values(schema=schema, schema_source=source,
                                        schema_overrides=overrides))
            return res.rowcount == 1

    def delete_dataset(self, tenant_id: str, dataset_id: str) -> list[str]:
        """Delete the dataset row and its jobs' rows; return the deleted job ids."""
        if not is_id(dataset_id):
            return []
        with self.engine.begin() as conn:
            job_ids = [r.id for r in conn.execute(select(jobs.c.id).where(
                jobs.c.dataset_id == dataset_id, jobs.c.tenant_id == tenant_id))]
            conn.execute(delete(jobs).where(jobs.c.dataset_id == dataset_id,
                                            jobs.c.tenant_id == tenant_id))
            conn.execute(delete(datasets).where(datasets.c.id == dataset_id,
                                                datasets.c.tenant_id == tenant_id))
            conn.execute(delete(budget_charges).where(budget_charges.c.dataset_id == dataset_id,
                                                      budget_charges.c.tenant_id == tenant_id))
            conn.execute(delete(dataset_budgets).where(
                dataset_budgets.c.dataset_id == dataset_id,
                dataset_budgets.c.tenant_id == tenant_id))
        return job_ids

    # ---- privacy budgets ----------------------------------------------------------------
    def set_budget(self, tenant_id: str, dataset_id: str, *, total_epsilon: float,
                   total_delta: float) -> None:
        """Declare (or knowingly change) a dataset's total; its charges stay counted."""
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(update(dataset_budgets).where(
                dataset_budgets.c.dataset_id == dataset_id,
                dataset_budgets.c.tenant_id == tenant_id).values(
                total_epsilon=total_epsilon, total_delta=total_delta, updated_at=now))
            if res.rowcount == 0:
                conn.execute(insert(dataset_budgets).values(
                    dataset_id=dataset_id, tenant_id=tenant_id, total_epsilon=total_epsilon,
                    total_delta=total_delta, updated_at=now))

    def budget_status(self, tenant_id: str, dataset_id: str, *, default_total_epsilon: float,
                      default_total_delta: float) -> Any:
        """The dataset's :class:`~synthdata.privacy.budget.BudgetStatus` (the server default
        total when none was declared); its ``runs`` are the DP jobs' charges."""
        with self.engine.connect() as conn:
            return _budget_status(conn, tenant_id, dataset_id,
                                  (default_total_epsilon, default_total_delta))

    def settle_charge(self, job_id: str, epsilon: float | None = None,
                      delta: float | None = None) -> bool:
        """Commit a job's charge: what its ledger spent, or (``None``) what it reserved."""
        values: dict[str, Any] = {"status": "committed", "finished_at": time.time()}
        if epsilon is not None and delta is not None:
            values.update(epsilon=epsilon, delta=delta)
        with self.engine.begin() as conn:
            return conn.execute(update(budget_charges).where(
                budget_charges.c.job_id == job_id, budget_charges.c.status == "reserved")
                .values(**values)).rowcount == 1

    def release_charge(self, job_id: str) -> bool:
        """Drop a job's reservation: only for a job that never read its data."""
        with self.engine.begin() as conn:
            return conn.execute(delete(budget_charges).where(
                budget_charges.c.job_id == job_id,
                budget_charges.c.status == "reserved")).rowcount == 1

    # ---- jobs ---------------------------------------------------------------------------
    def add_job(self, *, job_id: str, tenant_id: str, dataset_id: str,
                pipeline: dict[str, Any], charge: Charge | None = None,
                quotas: Quotas | None = None, actor: str = "cli",
                webhook_url: str | None = None, idempotency_key: str | None = None,
                request_hash: str | None = None) -> str:
        """Queue a job; return its id (an earlier job's id when ``idempotency_key`` was
        used before with the same request). In one transaction, after locking the tenant's
        row (so two submissions cannot both pass a check): the idempotency key, the queue
        limit and jobs-per-hour quota (``QuotaExceeded``), and for a DP job (``charge``) its
        (ε, δ) reservation on the dataset's budget (``PrivacyBudgetError``)."""
        from sqlalchemy.exc import IntegrityError

        for attempt in range(3):
            now = time.time()
            try:
                with self.engine.begin() as conn:
                    _lock_tenant(conn, tenant_id)
                    earlier = _idempotent(conn, jobs, tenant_id, idempotency_key, request_hash)
                    if earlier is not None:
                        return earlier
                    if quotas is not None:
                        _check_jobs(conn, tenant_id, quotas, now)
                    if charge is not None:
                        _reserve(conn, job_id, tenant_id, dataset_id, charge, now)
                    conn.execute(insert(jobs).values(
                        id=job_id, tenant_id=tenant_id, dataset_id=dataset_id, status=QUEUED,
                        attempt=0, progress=0.0, pipeline=pipeline, created_at=now,
                        updated_at=now, webhook_url=webhook_url,
                        idempotency_key=idempotency_key, request_hash=request_hash))
                    _audit(conn, tenant_id, actor, "job.submit", job_id,
                           {"dataset": dataset_id, "dp": charge is not None})
                return job_id
            except IntegrityError:  # two first reservations created the budget row at once
                if charge is None or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def usage(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's current use of each quota (for ``GET /v1/limits``)."""
        now = time.time()
        with self.engine.connect() as conn:
            storage, n_datasets = conn.execute(
                select(func.coalesce(func.sum(datasets.c.size_bytes), 0), func.count())
                .where(datasets.c.tenant_id == tenant_id)).one()
            hour = conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.tenant_id == tenant_id, jobs.c.created_at > now - 3600)).scalar_one()
        return {"storage_bytes": int(storage), "datasets": int(n_datasets),
                "jobs_last_hour": int(hour), "queued": self.count_jobs(tenant_id, (QUEUED,)),
                "running": self.count_jobs(tenant_id, (RUNNING,))}

    def get_job(self, tenant_id: str, job_id: str) -> RowMapping | None:
        if not is_id(job_id):
            return None
        with self.engine.connect() as conn:
            return conn.execute(_JOB_OF_TENANT, {"job_id": job_id, "tenant_id": tenant_id}
                                ).mappings().first()

    def job_by_id(self, job_id: str) -> RowMapping | None:
        """Internal (workers, dispatcher): no tenant filter, never used to answer a request."""
        with self.engine.connect() as conn:
            return conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()

    def list_jobs(self, tenant_id: str, *, limit: int, offset: int, status: str | None = None,
                  dataset_id: str | None = None) -> list[RowMapping]:
        if dataset_id is not None and not is_id(dataset_id):
            return []
        q = select(jobs).where(jobs.c.tenant_id == tenant_id)
        if status is not None:
            q = q.where(jobs.c.status == status)
        if dataset_id is not None:
            q = q.where(jobs.c.dataset_id == dataset_id)
        q = q.order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return list(conn.execute(q).mappings())

    def count_jobs(self, tenant_id: str, statuses: Iterable[str]) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.tenant_id == tenant_id, jobs.c.status.in_(list(statuses)))).scalar_one()

    def claim_jobs(self, *, capacity: int, tenant_limit: int) -> list[Claimed]:
        """Move up to ``capacity`` queued jobs to ``running`` (oldest first), never more
        than ``tenant_limit`` running per tenant. Each claim is a conditional UPDATE, so two
        dispatchers cannot claim the same job."""
        if capacity <= 0:
            return []
        with self.engine.begin() as conn:
            running: dict[str, int] = dict(conn.execute(select(jobs.c.tenant_id, func.count())
                                        .where(jobs.c.status == RUNNING)
                                        .group_by(jobs.c.tenant_id)).all())
            queued = conn.execute(select(jobs.c.id, jobs.c.tenant_id, jobs.c.attempt)
                                  .where(jobs.c.status == QUEUED)
                                  .order_by(jobs.c.created_at, jobs.c.id).limit(200)).all()
            claimed: list[Claimed] = []
            now = time.time()
            for row in queued:
                if len(claimed) >= capacity:
                    break
                if running.get(row.tenant_id, 0) >= tenant_limit:
                    continue
                attempt = row.attempt + 1
                res = conn.execute(update(jobs).where(jobs.c.id == row.id, jobs.c.status == QUEUED)
                                   .values(status=RUNNING, attempt=attempt, started_at=now,
                                           updated_at=now, progress=0.0, step="starting"))
                if res.rowcount == 1:
                    running[row.tenant_id] = running.get(row.tenant_id, 0) + 1
                    claimed.append(Claimed(row.id, row.tenant_id, attempt))
            return claimed

    def report_progress(self, job_id: str, attempt: int, progress: float, step: str) -> bool:
        """Record progress; ``False`` when the job is no longer this attempt's to run
        (cancelled, or failed by a restart): the worker must then stop."""
        with self.engine.begin() as conn:
            res = conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == RUNNING)
                .values(progress=progress, step=step[:64], updated_at=time.time()))
            return res.rowcount == 1

    def finish_job(self, job_id: str, attempt: int, *, status: str, error: str | None = None,
                   gate_passed: bool | None = None, gate: Any = None, run_dir: str | None = None,
                   synthetic_file: str | None = None) -> bool:
        """Write a terminal state, only if this attempt still owns the running job."""
        now = time.time()
        values: dict[str, Any] = dict(status=status, error=error, gate_passed=gate_passed,
                                      gate=gate, run_dir=run_dir, synthetic_file=synthetic_file,
                                      finished_at=now, updated_at=now)
        if status in (SUCCEEDED, REJECTED):
            values.update(progress=1.0, step="done")
        with self.engine.begin() as conn:
            res = conn.execute(update(jobs).where(
                jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == RUNNING)
                .values(**values))
            return res.rowcount == 1

    def cancel_job(self, tenant_id: str, job_id: str) -> str | None:
        """Cancel a queued or running job; return its previous status (None: not active)."""
        if not is_id(job_id):
            return None
        with self.engine.begin() as conn:
            row = conn.execute(select(jobs.c.status).where(
                jobs.c.id == job_id, jobs.c.tenant_id == tenant_id)).first()
            if row is None or row.status not in ACTIVE:
                return None
            now = time.time()
            res = conn.execute(update(jobs).where(jobs.c.id == job_id,
                                                  jobs.c.status == row.status)
                               .values(status=CANCELLED, error="cancelled by the user",
                                       finished_at=now, updated_at=now))
            if res.rowcount == 1 and row.status == QUEUED:  # never read its data
                conn.execute(delete(budget_charges).where(budget_charges.c.job_id == job_id))
            return row.status if res.rowcount == 1 else None

    def fail_running(self, reason: str = INTERRUPTED, job_ids: Iterable[str] | None = None) -> int:
        """Mark running jobs failed (all of them at startup, or the given ones)."""
        now = time.time()
        q = update(jobs).where(jobs.c.status == RUNNING)
        if job_ids is not None:
            q = q.where(jobs.c.id.in_(list(job_ids)))
        with self.engine.begin() as conn:
            return conn.execute(q.values(status=FAILED, error=reason, finished_at=now,
                                         updated_at=now)).rowcount

    def overdue_jobs(self, limit_s: float) -> list[tuple[str, int]]:
        """``(job id, attempt)`` of running jobs started more than ``limit_s`` ago."""
        cutoff = time.time() - limit_s
        with self.engine.connect() as conn:
            return [(r.id, r.attempt) for r in conn.execute(
                select(jobs.c.id, jobs.c.attempt).where(jobs.c.status == RUNNING,
                                                        jobs.c.started_at < cutoff))]

    def fail_if_running(self, job_id: str, attempt: int, reason: str) -> bool:
        return self.finish_job(job_id, attempt, status=FAILED, error=reason)


def _budget_status(conn: Any, tenant_id: str, dataset_id: str,
                   default: tuple[float, float]) -> Any:
    from synthdata.privacy.budget import BudgetStatus

    row = conn.execute(select(dataset_budgets).where(
        dataset_budgets.c.dataset_id == dataset_id,
        dataset_budgets.c.tenant_id == tenant_id)).first()
    total_e, total_d = (row.total_epsilon, row.total_delta) if row is not None else default
    charges = conn.execute(select(budget_charges).where(
        budget_charges.c.dataset_id == dataset_id, budget_charges.c.tenant_id == tenant_id)
        .order_by(budget_charges.c.created_at, budget_charges.c.job_id)).mappings().all()
    runs = tuple({"job": c["job_id"], "status": c["status"], "generator": c["generator"],
                  "epsilon": c["epsilon"], "delta": c["delta"],
                  "reserved_epsilon": c["reserved_epsilon"],
                  "reserved_delta": c["reserved_delta"], "created_at": c["created_at"],
                  "finished_at": c["finished_at"]} for c in charges)
    reserved = [r for r in runs if r["status"] == "reserved"]
    return BudgetStatus(
        dataset_key=dataset_id, total_epsilon=float(total_e), total_delta=float(total_d),
        spent_epsilon=sum(r["epsilon"] for r in runs),
        spent_delta=min(1.0, sum(r["delta"] for r in runs)),
        reserved_epsilon=sum(r["epsilon"] for r in reserved),
        reserved_delta=sum(r["delta"] for r in reserved), label=dataset_id, runs=runs)


def _reserve(conn: Any, job_id: str, tenant_id: str, dataset_id: str, charge: Charge,
             now: float) -> None:
    from synthdata.privacy.budget import refuse_unless_fits

    locked = conn.execute(update(dataset_budgets).where(
        dataset_budgets.c.dataset_id == dataset_id, dataset_budgets.c.tenant_id == tenant_id)
        .values(updated_at=now)).rowcount
    if not locked:  # a dataset without a declared total: the server default, from now on
        conn.execute(insert(dataset_budgets).values(
            dataset_id=dataset_id, tenant_id=tenant_id,
            total_epsilon=charge.default_total_epsilon,
            total_delta=charge.default_total_delta, updated_at=now))
    status = _budget_status(conn, tenant_id, dataset_id, (0.0, 0.0))
    refuse_unless_fits(status, charge.epsilon, charge.delta,
                       where="declared per dataset on this server",
                       how_to_raise=f"PUT /v1/datasets/{dataset_id}/budget")
    conn.execute(insert(budget_charges).values(
        job_id=job_id, dataset_id=dataset_id, tenant_id=tenant_id, status="reserved",
        generator=charge.generator[:64], epsilon=charge.epsilon, delta=charge.delta,
        reserved_epsilon=charge.epsilon, reserved_delta=charge.delta, created_at=now))


def parse_scopes(value: Iterable[str] | str | None) -> tuple[str, ...]:
    """Scopes from a list or a comma-separated string (``None``: all), checked."""
    if value is None:
        return SCOPES
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    bad = [s for s in out if s not in SCOPES]
    if bad or not out:
        raise ConfigError(f"--scopes: unknown scope(s) {bad or items}; choose from "
                          f"{', '.join(SCOPES)} (comma-separated)")
    return out


def _audit(conn: Any, tenant_id: str, actor: str, action: str, target: str | None,
           detail: dict[str, Any] | None) -> None:
    conn.execute(insert(audit_log).values(at=time.time(), tenant_id=tenant_id,
                                          actor=actor[:40], action=action, target=target,
                                          detail=detail))


def _lock_tenant(conn: Any, tenant_id: str) -> None:
    """Take the write lock (SQLite) / the tenant's row lock (PostgreSQL) first, so the
    quota counts that follow cannot race another request of the same tenant."""
    conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(name=tenants.c.name))


def _check_storage(conn: Any, tenant_id: str, size: int, quotas: Quotas) -> None:
    used, count = conn.execute(select(func.coalesce(func.sum(datasets.c.size_bytes), 0),
                                      func.count()).where(datasets.c.tenant_id == tenant_id)).one()
    if count >= quotas.datasets:
        raise QuotaExceeded(f"dataset quota reached ({quotas.datasets} datasets); delete "
                            "some (GET /v1/limits shows your usage)", 3600)
    if used + size > quotas.storage_bytes:
        raise QuotaExceeded(f"storage quota reached: {used + size} bytes would pass your "
                            f"{quotas.storage_bytes}; delete datasets (GET /v1/limits)", 3600)


def _check_jobs(conn: Any, tenant_id: str, quotas: Quotas, now: float) -> None:
    queued = conn.execute(select(func.count()).select_from(jobs).where(
        jobs.c.tenant_id == tenant_id, jobs.c.status == QUEUED)).scalar_one()
    if queued >= quotas.queued:
        raise QuotaExceeded(f"too many queued jobs (limit {quotas.queued}); wait or cancel "
                            "some", 30)
    recent = conn.execute(select(jobs.c.created_at).where(
        jobs.c.tenant_id == tenant_id, jobs.c.created_at > now - 3600)
        .order_by(jobs.c.created_at).limit(quotas.jobs_per_hour)).scalars().all()
    if len(recent) >= quotas.jobs_per_hour:
        raise QuotaExceeded(f"job quota reached ({quotas.jobs_per_hour} jobs per hour)",
                            recent[0] + 3600 - now + 1)


def _idempotent(conn: Any, table: Table, tenant_id: str, key: str | None,
                request_hash: str | None) -> str | None:
    """The row an earlier request with this idempotency key created (``ConfigError`` when
    that request was a different one)."""
    if key is None:
        return None
    row = conn.execute(select(table.c.id, table.c.request_hash).where(
        table.c.tenant_id == tenant_id, table.c.idempotency_key == key)).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise ConfigError("Idempotency-Key: already used for a different request; use a "
                          "new key for a new one")
    return row.id


def _add_missing_columns(engine: Engine) -> None:
    """Databases made by an older version gain the new (nullable) columns."""
    from sqlalchemy import inspect as sa_inspect

    have = sa_inspect(engine)
    with engine.begin() as conn:
        for table in (tenants, tokens, datasets, jobs):
            present = {c["name"] for c in have.get_columns(table.name)}
            for col in table.columns:
                if col.name not in present and col.nullable:
                    ddl = col.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}')


def _protect_audit(engine: Engine) -> None:
    """Make the audit table refuse UPDATE and DELETE in the database itself."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{op.lower()} BEFORE {op} ON "
                    f"audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")
        elif engine.dialect.name == "postgresql":
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(f"CREATE OR REPLACE RULE audit_log_no_{op.lower()} AS ON "
                                     f"{op} TO audit_log DO INSTEAD NOTHING")


def _with_driver(url: str) -> str:
    """The URL with a PostgreSQL driver SQLAlchemy can load.

    ``postgresql://`` (or ``postgres://``) names no driver, and SQLAlchemy then loads
    psycopg2; the ``postgres`` extra installs psycopg 3, so use it when psycopg2 is absent.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        return url
    driver = "postgresql"
    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        driver = "postgresql+psycopg"
    return f"{driver}://{rest}"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url.rstrip("/") in ("sqlite:", "sqlite:///:memory:") or ":memory:" in url:
            raise ConfigError("job workers are separate processes: use a SQLite file "
                              "(sqlite:///path/to/db) or a server database, not :memory:")
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=20, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: say nothing of it
        return "(unparsable database URL)"
