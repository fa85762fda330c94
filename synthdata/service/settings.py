"""Service settings: one frozen value object built by ``synthdata serve`` (or a test)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("synthdata-data")
DEFAULT_RUNNER = "synthdata.pipeline.runner:run_pipeline"
RAY_ADDRESS_ENV = "SYNTHDATA_RAY_ADDRESS"


# the settings ``synthdata serve --limit KEY=VALUE`` may set
LIMIT_FIELDS = ("max_sample_rows", "max_epochs", "max_param_value", "max_upload_cells",
                "max_body_bytes", "max_json_depth", "job_time_limit_s", "worker_memory_mb",
                "schema_sample_rows", "quota_storage_mb", "quota_datasets",
                "quota_jobs_per_hour", "max_queued_per_tenant", "rate_per_second",
                "rate_burst", "auth_cache_s", "worker_threads", "webhook_allow_http")


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the app, the store and the job manager need.

    ``data_dir`` holds the SQLite database (unless ``db_url`` names another), the uploaded
    datasets and the job run folders; it is created when the app starts, never at import.
    ``workers`` caps job processes for the whole server, ``tenant_jobs`` per tenant.
    ``runner`` is the ``module:function`` a worker calls with the pipeline (tests swap it).
    Local workers yield the CPU to the API so status polls stay fast while jobs train: they
    run at ``worker_nice`` and, on Linux with ``worker_idle`` (off by default), under
    ``SCHED_IDLE`` (any runnable thread preempts them; on a machine with other busy programs
    the jobs then starve — seen in a test run beside a training job, where jobs never left
    "starting" in 60 s).
    ``budget_epsilon``/``budget_delta``: the privacy budget a dataset gets when its upload
    declares none; every DP job on it reserves its (ε, δ) at submission, and the sum of a
    dataset's jobs (basic composition) never passes its total.
    Limits, quotas and the rest (the fields below ``budget_delta``) are described in
    docs/service.md and shown to clients at ``GET /v1/limits``; ``synthdata serve --limit
    KEY=VALUE`` sets those named in ``LIMIT_FIELDS``.
    """

    data_dir: Path = DEFAULT_DATA_DIR
    db_url: str | None = None
    max_upload_mb: float = 100.0
    max_columns: int = 500
    workers: int = 2
    tenant_jobs: int = 1
    max_queued_per_tenant: int = 100
    ray_address: str | None = None
    runner: str = DEFAULT_RUNNER
    poll_interval: float = 0.2
    cancel_grace_s: float = 5.0
    worker_nice: int = 10
    worker_idle: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    budget_epsilon: float = 10.0
    budget_delta: float = 1e-4
    # ---- limits (GET /v1/limits shows them; over a limit: 413/422 at submit or upload)
    max_sample_rows: int = 1_000_000
    max_epochs: int = 2_000                 # generator epochs / max_iter / n_timesteps
    max_param_value: int = 100_000          # any other integer generator parameter
    max_upload_cells: int = 50_000_000      # rows x columns of an upload, after decompression
    max_body_bytes: int = 1 << 20           # a JSON request body
    max_json_depth: int = 32
    job_time_limit_s: float = 3600.0        # wall clock; the worker is killed
    worker_memory_mb: int = 4096            # address-space rlimit per worker (0: none)
    schema_sample_rows: int = 10_000        # GET/PUT schema read at most this many rows
    # ---- quotas and rate limits per tenant (429 + Retry-After)
    quota_storage_mb: float = 2048.0
    quota_datasets: int = 100
    quota_jobs_per_hour: int = 120
    rate_per_second: float = 50.0
    rate_burst: int = 100
    # ---- tokens, workers, webhooks, docs
    auth_cache_s: float = 1.0               # revocation takes effect within this time
    worker_threads: int | None = None       # None: cores // workers
    webhook_allow_http: bool = False        # http:// webhooks (tests, loopback only)
    docs: bool = False                      # /docs and /redoc (Swagger UI loads from a CDN)

    @property
    def database_url(self) -> str:
        return self.db_url or default_db_url(self.data_dir)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def threads_per_worker(self) -> int:
        """torch/OpenMP/BLAS threads of one job: its share of the machine's cores."""
        if self.worker_threads is not None:
            return max(1, self.worker_threads)
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceSettings:
        """Settings with ``SYNTHDATA_RAY_ADDRESS`` applied unless ``ray_address`` is given."""
        if overrides.get("ray_address") is None and os.environ.get(RAY_ADDRESS_ENV):
            overrides["ray_address"] = os.environ[RAY_ADDRESS_ENV]
        return cls(**overrides)  # type: ignore[arg-type]


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'synthdata.db'}"


def private_sqlite_file(url: str) -> None:
    """Create a SQLite database file as 0600 before SQLite does (its journal files copy the
    database file's mode); an existing file is made 0600 too."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - the store reports a bad URL itself
        return
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return
    path = Path(parsed.database)
    if path.name == ":memory:":
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
