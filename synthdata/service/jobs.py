"""Jobs: the pipeline config a job runs, the worker process, and the dispatcher.

A job never runs in a request thread. The dispatcher (one thread per server) claims queued
jobs from the store, at most ``workers`` at once and ``tenant_jobs`` per tenant, and starts
each in a fresh Python process (``python -m synthdata.service.jobs JOB_ID ATTEMPT``), or as
a Ray task when a Ray address is configured. A local worker writes its own progress and
verdict to the store; every write is conditional on the job still being this attempt's and
``running``, so a cancelled job, or one failed by a restart, can never be revived by a
straggling worker. Workers die with the server (``PR_SET_PDEATHSIG`` on Linux, plus a
parent check on every progress update).

Restart policy: at startup every job still ``running`` is marked ``failed`` with the
reason "interrupted by server restart" (a job that crashed the server is not retried in a
loop); ``queued`` jobs stay queued and run.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdata.errors import ConfigError, SynthDataError
from synthdata.io.files import private_dir
from synthdata.jsonsafe import json_safe as encode_json_safe
from synthdata.service.settings import ServiceSettings
from synthdata.service.store import FAILED, REJECTED, SUCCEEDED, Claimed, Store

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_DB, _ENV_DATA, _ENV_RUNNER, _ENV_PARENT, _ENV_NICE, _ENV_IDLE, _ENV_MEM = (
    "SYNTHDATA_SERVICE_DB", "SYNTHDATA_SERVICE_DATA_DIR", "SYNTHDATA_SERVICE_RUNNER",
    "SYNTHDATA_SERVICE_PARENT", "SYNTHDATA_SERVICE_NICE", "SYNTHDATA_SERVICE_IDLE",
    "SYNTHDATA_SERVICE_MEMORY_MB")
# the thread pools a job may size: torch (intra-op), OpenMP, and the BLAS libraries
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# files of a run folder that may name server paths (rewritten before the job finishes)
TEXT_FILES = ("report.json", "report.html", "manifest.json", "schema.yaml", "expectations.json")
OVERRIDES_FILE = "schema-overrides.yaml"


# ---- the pipeline a job runs ---------------------------------------------------------------
def build_config(body: Any, *, data_path: Path, fmt: str,
                 schema_path: Path | None = None) -> dict[str, Any]:
    """The full pipeline dict for a job body: the body plus a ``data`` block the server owns.

    Raises ``ConfigError`` (message as the CLI would give it) for an invalid body. Fields
    that would let a request name a server path are refused: ``data`` and ``output.dir``;
    ``name`` (used in the run folder's name) must be a plain identifier.
    """
    from synthdata.models.registry import available_generators
    from synthdata.pipeline.config import PipelineConfig

    if not isinstance(body, dict):
        raise ConfigError("pipeline: must be a JSON object (the pipeline model without 'data')")
    if "data" in body:
        raise ConfigError("pipeline.data: not allowed; the dataset is chosen with 'dataset'")
    output = body.get("output")
    if isinstance(output, dict) and "dir" in output:
        raise ConfigError("pipeline.output.dir: not allowed; the server chooses where runs go")
    gate = body.get("gate")
    if isinstance(gate, str) and gate.strip().lower() == "none":
        raise ConfigError("pipeline.gate: 'none' is not allowed in the service: every job is "
                          "judged before its data can be downloaded; leave 'gate' out for the "
                          "default preset, or name a preset or rules")
    privacy = body.get("privacy")
    if isinstance(privacy, dict) and "budget" in privacy:
        raise ConfigError("pipeline.privacy.budget: not allowed; the service keeps each "
                          "dataset's privacy budget (GET/PUT /v1/datasets/{id}/budget)")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME_RE.match(name)):
        raise ConfigError("pipeline.name: use 1-64 letters, digits, '.', '_' or '-' "
                          "(starting with a letter or digit)")
    data: dict[str, Any] = {"path": str(data_path), "format": fmt}
    if fmt == "csv":
        data["encoding"] = "utf-8-sig"  # accepts files with and without a BOM
    if schema_path is not None:
        data["schema"] = str(schema_path)
    cfg = {**body, "data": data}
    parsed = PipelineConfig.from_dict(cfg, where="pipeline")
    if parsed.generator.kind not in available_generators():
        raise ConfigError(f"pipeline.generator.kind: unknown generator {parsed.generator.kind!r}; "
                          f"choose one of {available_generators()}")
    return cfg


def dp_cost(cfg: dict[str, Any]) -> tuple[float, float, str] | None:
    """``(ε, δ, generator)`` a job reserves on its dataset's budget; ``None`` for a non-DP
    job. Without ``privacy.delta`` the δ is derived from the (noisy) row count during the
    run: reserve the largest such δ, and commit what the ledger resolved."""
    from synthdata.pipeline.budget import dp_config
    from synthdata.pipeline.config import PipelineConfig
    from synthdata.privacy.budget import MAX_DEFAULT_DELTA

    parsed = PipelineConfig.from_dict(cfg, where="pipeline")
    privacy = dp_config(parsed)
    if privacy is None:
        return None
    kind = "relational" if parsed.data.tables is not None else parsed.generator.kind
    delta = privacy.delta if privacy.delta is not None else MAX_DEFAULT_DELTA
    return float(privacy.epsilon), float(delta), kind


def spent_of(result: Any) -> tuple[float | None, float | None]:
    """The run's spent ``(ε, δ)`` from its metrics (``None``: commit the reservation)."""
    metrics = getattr(result, "metrics", None) or {}
    try:
        eps, delta = float(metrics["epsilon"]), float(metrics["delta"])
    except (KeyError, TypeError, ValueError):
        return None, None
    if math.isnan(eps) or math.isnan(delta) or eps < 0 or not 0 <= delta <= 1:
        return None, None
    return eps, delta


def json_safe(value: Any) -> Any:
    """Plain JSON types only (numpy scalars unwrapped, NaN and infinities as null)."""
    return encode_json_safe(value, infinity="null")


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def progress_fraction(step: str, done: int, total: int) -> float:
    """Map the runner's ``progress(step, done, total)`` onto 0..1 for the whole job."""
    f = min(max(done / total, 0.0), 1.0) if total else 0.0
    if step == "load":
        return 0.05
    if step.startswith("transform"):
        return 0.05 + 0.15 * f
    if step.endswith("fit") or "epoch" in step:
        return 0.20 + 0.50 * f
    if step == "sample":
        return 0.75
    return 0.75 + 0.20 * f


class _Stopped(BaseException):
    """The job was cancelled or taken away from this worker: unwind and exit."""


class _Progress:
    def __init__(self, store: Store, job_id: str, attempt: int, parent: int | None,
                 min_interval: float = 0.5) -> None:
        self.store, self.job_id, self.attempt, self.parent = store, job_id, attempt, parent
        self.min_interval, self.value, self.step, self.last = min_interval, 0.0, "", 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        self.value = max(self.value, min(progress_fraction(step, done, total), 0.99))
        now = time.monotonic()
        if step == self.step and now - self.last < self.min_interval:
            return
        self.step, self.last = step, now
        if self.parent is not None and os.getppid() != self.parent:
            raise _Stopped()
        if not self.store.report_progress(self.job_id, self.attempt, self.value, step):
            raise _Stopped()


def _die_with_parent(parent: int | None) -> None:
    """Linux: get SIGTERM when the server (the dispatcher thread) goes away."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if parent is not None and os.getppid() != parent:
        raise SystemExit(0)  # the server died before we got here


def _lower_priority(nice: str | None, idle: bool) -> None:
    """Yield the CPU to the API process. Called first thing in the worker, so every thread
    the job starts later (torch, BLAS) inherits it. Thread counts are the worker's share of
    the cores (``THREAD_ENV``, set by the executor): the same seed gives the same output as
    ``synthdata run`` with the same thread count."""
    if nice and hasattr(os, "nice"):
        try:
            os.nice(int(nice))
        except (OSError, ValueError):
            pass
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


def _limit_memory(megabytes: str | None) -> None:
    """Cap the worker's address space (``RLIMIT_AS``): an oversized job gets MemoryError
    (the job fails with "memory limit") instead of waking the OOM killer."""
    if not megabytes or megabytes == "0":
        return
    try:
        import resource

        limit = int(megabytes) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError) as err:
        log.warning("worker memory limit not set: %s", err)


def public_text(text: str, data_dir: Path, dataset: Any) -> str:
    """``text`` without server paths: the dataset's file becomes its display name, anything
    else under the data folder its path inside it."""
    if dataset is not None:
        text = text.replace(str(data_dir / dataset["file"]), dataset["name"])
    return text.replace(str(data_dir) + os.sep, "").replace(str(data_dir), ".")


def _scrub_run_dir(run_dir: Path, data_dir: Path, dataset: Any) -> None:
    """Remove server paths from the run's text files (they are served as they are)."""
    from synthdata.io.files import atomic_write_text

    for name in TEXT_FILES:
        path = run_dir / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            clean = public_text(text, data_dir, dataset)
            if clean != text:
                atomic_write_text(path, clean)


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the runner, which removes its temporary folder


def worker_main(job_id: str, attempt: int) -> int:
    """Entry point of a worker process: run one job attempt and record its outcome."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    parent = int(os.environ[_ENV_PARENT]) if os.environ.get(_ENV_PARENT) else None
    _die_with_parent(parent)
    os.umask(0o077)  # every file the job writes is the service user's only
    _lower_priority(os.environ.get(_ENV_NICE), os.environ.get(_ENV_IDLE) == "1")
    _limit_memory(os.environ.get(_ENV_MEM))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = Store(os.environ[_ENV_DB])
    data_dir = Path(os.environ[_ENV_DATA]).resolve()
    runner = os.environ.get(_ENV_RUNNER) or "synthdata.pipeline.runner:run_pipeline"
    try:
        return _run_job(store, data_dir, runner, job_id, attempt, parent)
    finally:
        store.dispose()


def _run_job(store: Store, data_dir: Path, runner: str, job_id: str, attempt: int,
             parent: int | None) -> int:
    job = store.job_by_id(job_id)
    if job is None or job["attempt"] != attempt:
        return 0
    dataset = store.dataset_by_id(job["dataset_id"])
    if dataset is None:
        store.finish_job(job_id, attempt, status=FAILED, error="the dataset was deleted")
        return 0
    job_dir = private_dir(data_dir / "jobs" / job_id)
    progress = _Progress(store, job_id, attempt, parent)
    try:
        schema_path = _write_overrides(job_dir, dataset["schema_overrides"])
        cfg = build_config(job["pipeline"], data_path=data_dir / dataset["file"],
                           fmt=dataset["format"], schema_path=schema_path)
    except SynthDataError as err:  # before the data was read: give the budget back
        store.release_charge(job_id)
        store.finish_job(job_id, attempt, status=FAILED,
                         error=public_text(str(err), data_dir, dataset))
        return 0
    try:
        progress("load", 0, 1)
        result = _resolve(runner)(cfg, output_dir=job_dir, progress=progress)
    except _Stopped:
        log.info("job %s: stopped (cancelled or taken over)", job_id)
        return 0
    except SynthDataError as err:
        log.info("job %s failed: %s", job_id, type(err).__name__)
        store.settle_charge(job_id)  # fail closed: a DP job keeps what it reserved
        store.finish_job(job_id, attempt, status=FAILED,
                         error=public_text(str(err), data_dir, dataset))
        return 0
    except MemoryError:
        store.settle_charge(job_id)
        store.finish_job(job_id, attempt, status=FAILED,
                         error=f"memory limit: the job needed more than this server's "
                               f"{os.environ.get(_ENV_MEM)} MB per worker (GET /v1/limits); "
                               "use fewer rows, columns or a smaller model")
        return 0
    except Exception as err:  # unexpected: keep the traceback in the private worker log only
        traceback.print_exc()
        store.settle_charge(job_id)
        store.finish_job(job_id, attempt, status=FAILED,
                         error=f"internal error ({type(err).__name__}); the server log has details")
        return 1
    # a DP job's budget charge: what the ledger spent (a failed job keeps its reservation:
    # the service cannot tell whether it read the data under DP before failing)
    store.settle_charge(job_id, *spent_of(result))
    run_dir = Path(result.run_dir).resolve()
    _scrub_run_dir(run_dir, data_dir, dataset)
    synthetic = result.synthetic_path.name if result.synthetic_path is not None else None
    status = SUCCEEDED if result.passed else REJECTED
    store.finish_job(job_id, attempt, status=status, gate_passed=bool(result.passed),
                     gate=json_safe(list(result.gate)),
                     run_dir=run_dir.relative_to(data_dir).as_posix(),
                     synthetic_file=synthetic if result.passed else None)
    log.info("job %s: %s", job_id, status)
    return 0


def _write_overrides(job_dir: Path, overrides: dict[str, Any] | None) -> Path | None:
    if not overrides:
        return None
    import yaml

    from synthdata.io.files import atomic_write_text

    path = job_dir / OVERRIDES_FILE
    atomic_write_text(path, yaml.safe_dump(overrides, sort_keys=False))
    return path


# ---- executors -----------------------------------------------------------------------------
@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    attempt: int
    kill_at: float | None = None


class LocalExecutor:
    """One OS process per job (``sys.executable -m synthdata.service.jobs``)."""

    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self.settings, self.store = settings, store
        self._procs: dict[str, _Proc] = {}
        self._lock = threading.Lock()

    def active(self) -> int:
        with self._lock:
            return len(self._procs)

    def start(self, job: Claimed) -> None:
        job_dir = private_dir(self.settings.jobs_dir / job.id)
        env = {**os.environ, **self.settings.extra_env,
               _ENV_DB: self.settings.database_url, _ENV_DATA: str(self.settings.data_dir),
               _ENV_RUNNER: self.settings.runner, _ENV_PARENT: str(os.getpid()),
               _ENV_NICE: str(self.settings.worker_nice),
               _ENV_IDLE: "1" if self.settings.worker_idle else "0",
               _ENV_MEM: str(self.settings.worker_memory_mb),
               **dict.fromkeys(THREAD_ENV, str(self.settings.threads_per_worker))}
        log_fd = os.open(job_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(log_fd, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "synthdata.service.jobs", job.id, str(job.attempt)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                close_fds=True)
        with self._lock:
            self._procs[job.id] = _Proc(popen, job.attempt)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            proc = self._procs.get(job_id)
            if proc is not None and proc.popen.poll() is None and proc.kill_at is None:
                proc.popen.terminate()
                proc.kill_at = time.monotonic() + self.settings.cancel_grace_s

    def reap(self) -> list[tuple[str, int, int]]:
        """Finished processes as (job id, attempt, exit code); SIGKILL overdue cancels."""
        done = []
        now = time.monotonic()
        with self._lock:
            for job_id, proc in list(self._procs.items()):
                code = proc.popen.poll()
                if code is None:
                    if proc.kill_at is not None and now >= proc.kill_at:
                        proc.popen.kill()
                    continue
                del self._procs[job_id]
                done.append((job_id, proc.attempt, code))
        return done

    def shutdown(self) -> list[tuple[str, int]]:
        with self._lock:
            procs = dict(self._procs)
            self._procs.clear()
        for proc in procs.values():
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + self.settings.cancel_grace_s
        for proc in procs.values():
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        return [(job_id, p.attempt) for job_id, p in procs.items()]


def _ray_job(cfg: dict[str, Any], payload: bytes, overrides: dict[str, Any] | None,
             runner: str) -> dict[str, Any]:
    """The Ray task: run one pipeline on a cluster node from the bytes of the dataset.

    The node needs no shared filesystem and no database access: the data travels in the
    object store, and the run folder's files come back in the result.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="synthdata-job-") as tmp:
        root = Path(tmp)
        data = root / f"data.{cfg['data']['format']}"
        data.write_bytes(payload)
        cfg = {**cfg, "data": {**cfg["data"], "path": str(data)}}
        schema_path = _write_overrides(root, overrides)
        if schema_path is not None:
            cfg["data"]["schema"] = str(schema_path)
        result = _resolve(runner)(cfg, output_dir=root / "out")
        run_dir = Path(result.run_dir)
        files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        return {"passed": bool(result.passed), "gate": json_safe(list(result.gate)),
                "run_name": run_dir.name, "files": files, "spent": spent_of(result),
                "synthetic": result.synthetic_path.name if result.synthetic_path else None}


class RayExecutor:
    """Each job is a Ray task (``num_cpus=1``, no retries) on the cluster at ``address``."""

    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        try:
            import ray
        except ImportError as err:
            raise ConfigError("a Ray address was given but ray is not installed; "
                              "install the extra: pip install 'synthdata[ray]'") from err
        self.ray, self.settings, self.store = ray, settings, store
        if not ray.is_initialized():
            ray.init(address=settings.ray_address, log_to_driver=False,
                     ignore_reinit_error=True)
        self._task = ray.remote(num_cpus=1, max_retries=0)(_ray_job)
        self._refs: dict[str, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def active(self) -> int:
        with self._lock:
            return len(self._refs)

    def start(self, job: Claimed) -> None:
        row = self.store.job_by_id(job.id)
        dataset = self.store.dataset_by_id(row["dataset_id"]) if row is not None else None
        if row is None or dataset is None:
            self.store.finish_job(job.id, job.attempt, status=FAILED,
                                  error="the dataset was deleted")
            return
        data_path = self.settings.data_dir / dataset["file"]
        cfg = build_config(row["pipeline"], data_path=data_path, fmt=dataset["format"])
        payload = self.ray.put(data_path.read_bytes())
        ref = self._task.remote(cfg, payload, dataset["schema_overrides"], self.settings.runner)
        with self._lock:
            self._refs[job.id] = (ref, job.attempt)
        self.store.report_progress(job.id, job.attempt, 0.05, "running on ray")

    def cancel(self, job_id: str) -> None:
        with self._lock:
            entry = self._refs.get(job_id)
        if entry is not None:
            self.ray.cancel(entry[0], force=True)

    def reap(self) -> list[tuple[str, int, int]]:
        with self._lock:
            refs = {ref: (job_id, attempt) for job_id, (ref, attempt) in self._refs.items()}
        if not refs:
            return []
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0)
        done = []
        for ref in ready:
            job_id, attempt = refs[ref]
            with self._lock:
                self._refs.pop(job_id, None)
            done.append((job_id, attempt, self._collect(job_id, attempt, ref)))
        return done

    def _collect(self, job_id: str, attempt: int, ref: Any) -> int:
        try:
            out = self.ray.get(ref)
        except Exception as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, SynthDataError):
                self.store.finish_job(job_id, attempt, status=FAILED, error=str(cause))
                return 0
            name = type(cause or err).__name__
            log.warning("job %s: ray task ended with %s", job_id, name)
            self.store.finish_job(job_id, attempt, status=FAILED,
                                  error=f"internal error ({name}) in the Ray task")
            return 1
        self.store.settle_charge(job_id, *out.get("spent", (None, None)))
        row = self.store.job_by_id(job_id)
        if row is None or row["status"] != "running":  # cancelled or deleted meanwhile
            return 0
        final = self.settings.jobs_dir / job_id / out["run_name"]
        tmp = private_dir(final.with_name("." + final.name + ".tmp"))
        for name, blob in out["files"].items():
            fd = os.open(tmp / Path(name).name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
        tmp.rename(final)
        status = SUCCEEDED if out["passed"] else REJECTED
        self.store.finish_job(job_id, attempt, status=status, gate_passed=out["passed"],
                              gate=out["gate"],
                              run_dir=final.relative_to(self.settings.data_dir).as_posix(),
                              synthetic_file=out["synthetic"] if out["passed"] else None)
        return 0

    def shutdown(self) -> list[tuple[str, int]]:
        with self._lock:
            refs = dict(self._refs)
            self._refs.clear()
        for ref, _ in refs.values():
            self.ray.cancel(ref, force=True)
        return [(job_id, attempt) for job_id, (_, attempt) in refs.items()]


# ---- the dispatcher ------------------------------------------------------------------------
class JobManager:
    """Claims queued jobs, starts them, reaps them, and enforces the concurrency limits."""

    def __init__(self, settings: ServiceSettings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.executor: LocalExecutor | RayExecutor = (
            RayExecutor(settings, store) if settings.ray_address else LocalExecutor(settings, store))
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="synthdata-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        self.executor.cancel(job_id)
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        stopped = self.executor.shutdown()
        for job_id, attempt in stopped:
            self.store.fail_if_running(job_id, attempt, "interrupted by server shutdown")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as err:  # never let the dispatcher die; no data in the message
                log.error("job dispatcher: %s", type(err).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            self._wake.wait(self.settings.poll_interval)
            self._wake.clear()

    def enforce_time_limit(self) -> None:
        """Fail and stop every job running longer than ``job_time_limit_s``."""
        limit = self.settings.job_time_limit_s
        for job_id, attempt in self.store.overdue_jobs(limit):
            if self.store.fail_if_running(job_id, attempt,
                                          f"time limit: the job ran longer than this server's "
                                          f"{limit:g} s (GET /v1/limits)"):
                self.store.settle_charge(job_id)  # it read the data: keep its reservation
                log.warning("job %s: time limit reached, worker stopped", job_id)
            self.executor.cancel(job_id)

    def _notify(self, row: Any) -> None:
        from synthdata.service.webhooks import deliver_in_background

        secret = self.store.webhook_secret(row["tenant_id"])
        if secret is None:
            log.warning("job %s: webhook skipped (the tenant has no webhook secret)", row["id"])
            return
        deliver_in_background(row["webhook_url"], secret, {
            "job": row["id"], "dataset": row["dataset_id"], "status": row["status"],
            "error": row["error"], "finished_at": row["finished_at"]})

    def tick(self) -> None:
        self.enforce_time_limit()
        for job_id, attempt, code in self.executor.reap():
            if self.store.fail_if_running(job_id, attempt,
                                          f"the worker exited unexpectedly (exit code {code})"):
                log.warning("job %s: worker exited with code %s", job_id, code)
            row = self.store.job_by_id(job_id)
            if row is not None and row["webhook_url"]:
                self._notify(row)
            if row is None:  # its dataset was deleted while it ran
                shutil.rmtree(self.settings.jobs_dir / job_id, ignore_errors=True)
            elif row["status"] not in (SUCCEEDED, REJECTED):
                _clean_partial(self.settings.jobs_dir / job_id)
        capacity = self.settings.workers - self.executor.active()
        for claimed in self.store.claim_jobs(capacity=capacity,
                                             tenant_limit=self.settings.tenant_jobs):
            try:
                self.executor.start(claimed)
            except Exception as err:
                log.error("job %s: could not start: %s", claimed.id, type(err).__name__)
                self.store.fail_if_running(claimed.id, claimed.attempt,
                                           f"could not start a worker ({type(err).__name__})")


def _clean_partial(job_dir: Path) -> None:
    """Remove temporary run folders a killed worker may have left behind."""
    if job_dir.is_dir():
        for p in job_dir.glob(".run-*.tmp"):
            shutil.rmtree(p, ignore_errors=True)
        for p in job_dir.iterdir():
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()  # an empty folder a failed worker left
        if not any(job_dir.iterdir()):
            job_dir.rmdir()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m synthdata.service.jobs JOB_ID ATTEMPT", file=sys.stderr)
        return 2
    return worker_main(args[0], int(args[1]))


if __name__ == "__main__":
    sys.exit(main())
