"""How many threads a fit or sample uses (torch, OpenMP, BLAS), set on purpose.

A generator's ``threads`` (``make_generator(kind, schema, threads=2)``, ``gen.threads = 2``,
or ``threads:`` in a pipeline / ``synthdata run --threads``) is applied around ``fit`` and
``sample`` with :func:`limit_threads` and the previous settings are restored afterwards.
``None`` (the default) means the cores this process may actually use
(:func:`available_cores`): the CPU affinity mask, capped by a cgroup CPU quota (a container
limited to 1.5 CPUs gets 2), never ``os.cpu_count()`` (the host's cores); a smaller
``OMP_NUM_THREADS`` in the environment (the service's per-worker budget) wins. A given
``threads`` is capped at that default too (more threads than cores only wait on each other). On a machine that
runs other work, fewer threads than cores avoids threads waiting on each other
(benchmarks/results/threads.md).

Threads change the order of some floating-point sums: the same data, config and seed give the
same output for the same ``threads``. The setting is process-wide (torch, OpenBLAS and OpenMP
keep one global count): two fits in threads of one process share it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthdata.errors import ConfigError

CGROUP_ROOT = Path("/sys/fs/cgroup")
# the count an enclosing limit_threads asked for explicitly (None: default or no limit)
_REQUESTED: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "synthdata_threads", default=None)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
                     ) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), None when unlimited.

    cgroup v2: ``cpu.max`` (``"150000 100000"`` or ``"max 100000"``) in the process's cgroup
    or at the root; v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: none).
    """
    paths = [""]
    try:
        for line in proc_cgroup.read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[2] not in ("", "/"):
                paths.insert(0, parts[2].lstrip("/"))
    except OSError:
        pass
    for sub in paths:
        v2 = root / sub / "cpu.max"
        if v2.is_file():
            return _ratio(*(v2.read_text().split() + ["", ""])[:2])
        for folder in ("cpu", "cpu,cpuacct"):
            quota = root / folder / sub / "cpu.cfs_quota_us"
            period = root / folder / sub / "cpu.cfs_period_us"
            if quota.is_file() and period.is_file():
                return _ratio(quota.read_text().strip(), period.read_text().strip())
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = float(quota), float(period)
    except ValueError:  # "max": no quota
        return None
    return q / p if q > 0 and p > 0 else None


def available_cores() -> int:
    """The cores this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def default_threads() -> int:
    """The thread count when none is given: :func:`available_cores`, or ``OMP_NUM_THREADS``
    when the process was started with a smaller one (the service sets it per worker)."""
    cores = available_cores()
    try:
        budget = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return cores
    return max(1, min(cores, budget))


def check_threads(threads: object, where: str = "threads") -> int | None:
    """``threads`` as given (None or a positive integer); ``ConfigError`` otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0:
        raise ConfigError(f"{where} must be a positive integer (threads for torch, OpenMP and "
                          f"BLAS) or empty for the cores available to the process, got "
                          f"{threads!r}")
    return threads


def resolve_threads(threads: int | None) -> int:
    """The count :func:`limit_threads` puts in force for ``threads``: the given count capped
    at :func:`default_threads`, or that default."""
    return min(check_threads(threads) or default_threads(), default_threads())


def requested_threads() -> int | None:
    """The thread count an enclosing :func:`limit_threads` was given explicitly, else None
    (the torch helpers then keep their own default)."""
    return _REQUESTED.get()


@contextlib.contextmanager
def limit_threads(threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` threads (None: :func:`default_threads`) in every BLAS and
    OpenMP library loaded in the process and in torch when it is loaded; restore afterwards.

    Yields the count in force. threadpoolctl reaches the libraries loaded when the block
    starts; torch code that starts inside the block reads :func:`requested_threads`.
    """
    # never more than the process may use: a service worker's budget (OMP_NUM_THREADS) holds
    # whatever a job's config asks for
    n = resolve_threads(threads)
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    token = _REQUESTED.set(None if threads is None else n)
    try:
        with _controller().limit(limits=n):
            if torch is not None and threads is not None:
                torch.set_num_threads(n)
            yield n
    finally:
        _REQUESTED.reset(token)
        if torch is not None and torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


_CONTROLLER: list[Any] = []  # [(modules loaded when built, ThreadpoolController)]


def _controller() -> Any:
    """A threadpoolctl controller of the libraries loaded in the process, rebuilt when a
    module has been imported since (native BLAS/OpenMP libraries come with an extension
    module). Building one scans every loaded library (about 3 ms with torch loaded): a
    sample drawn in 100,000-row chunks entered :func:`limit_threads` twice per chunk and
    spent a third of its time there."""
    from threadpoolctl import ThreadpoolController

    cached = _CONTROLLER[0] if _CONTROLLER else None
    if cached is None or cached[0] != len(sys.modules):
        cached = (len(sys.modules), ThreadpoolController())
        _CONTROLLER[:] = [cached]
    return cached[1]


_POOLS: dict[int, Any] = {}


def shared_pool(threads: int) -> Any:
    """A process-wide ``ThreadPoolExecutor`` with ``threads`` workers, started once and
    reused (starting threads took about 1 ms each, per call). For short tasks that never
    submit to a shared pool themselves (a task waiting on its own pool could deadlock it);
    callers in several threads share its workers."""
    pool = _POOLS.get(threads)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = _POOLS.setdefault(threads, ThreadPoolExecutor(threads,
                                                             thread_name_prefix="synthdata"))
    return pool
