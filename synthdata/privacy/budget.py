"""A per-dataset privacy budget kept across runs: ``BudgetStore``.

One DP run is (ε, δ)-DP on its own; a custodian who runs five DP fits on the same table has
released all five, and their privacy losses add up. A budget file records, per dataset, a
declared total (``total_epsilon``, ``total_delta``) and every DP run on that dataset, and
refuses a run whose (ε, δ) would take the sum past the total -- *before* the run reads the
data.

Composition across runs is **basic composition**: the runs' ε add up and their δ add up.
For any mechanisms M1 (ε1, δ1)-DP, ..., Mk (εk, δk)-DP run on the same data (even chosen
adaptively), releasing all their outputs is (Σεi, Σδi)-DP (Dwork & Roth 2014, Theorem 3.16),
so the sum is a valid upper bound whatever accountant each run used inside. It is loose
for many runs (advanced composition or summing zCDP ρ would be tighter); we keep the bound
that needs no assumption about how each run was accounted.

Protocol (what ``synthdata run`` does with ``privacy.budget``)::

    store = BudgetStore("budget.json")
    token = store.reserve(key, epsilon=3.0, delta=1e-6, total_epsilon=10, total_delta=1e-5)
    ...  # the run: may raise PrivacyBudgetError above, before any data is read
    store.commit(token, epsilon=spent_eps, delta=spent_delta)  # the ledger's spent values
    # or store.release(token) when the run failed before it touched the data

``key`` is the dataset fingerprint: the SHA-256 of the input file (the CLI), or the
dataset id (the service keeps its budgets in its database, not in a file). A run that dies
between ``reserve`` and ``commit`` (killed, power loss) keeps its reservation charged:
fail closed. ``synthdata budget show FILE`` lists such runs as ``reserved``; when you know
one never read the data, ``synthdata budget clear FILE DATASET RUN`` removes it.

The file is JSON, replaced atomically on every change (write a temporary file, fsync,
rename), and every read-check-write happens under an exclusive lock (``fcntl.flock`` on
``FILE.lock``; an ``O_EXCL`` lock file where ``fcntl`` does not exist), so two runs started
at the same moment cannot both pass a check that only one of them fits. The lock file is
never deleted: ``flock`` locks vanish with the process that held them. Deleting the budget
file resets every dataset's spent budget to zero; keep it with the data it protects.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from synthdata.errors import ConfigError, PrivacyBudgetError

__all__ = ["BudgetStatus", "BudgetStore", "BudgetToken", "MAX_DEFAULT_DELTA", "fits_budget",
           "refuse_unless_fits"]

FORMAT = "synthdata-privacy-budget"
FORMAT_VERSION = 1
# The largest δ a run can resolve by default (``config.default_delta`` is min(1e-5, 1/(10n))
# rounded down): a run without an explicit ``privacy.delta`` reserves this much and commits
# the δ its ledger actually resolved.
MAX_DEFAULT_DELTA = 1e-5
RESERVED, COMMITTED = "reserved", "committed"
_REL_TOL = 1e-9  # float sums of ε: never refuse a run that fits exactly


@dataclass(frozen=True)
class BudgetToken:
    """A reservation made by :meth:`BudgetStore.reserve`; hand it to ``commit``/``release``."""

    path: Path
    dataset_key: str
    run_id: str
    epsilon: float
    delta: float


@dataclass(frozen=True)
class BudgetStatus:
    """One dataset's budget: the declared total, what runs have spent, what remains.

    ``spent_*`` counts committed runs at what they spent and open reservations at what
    they reserved (a run in progress, or one that died before committing).
    """

    dataset_key: str
    total_epsilon: float
    total_delta: float
    spent_epsilon: float
    spent_delta: float
    reserved_epsilon: float
    reserved_delta: float
    label: str | None = None
    runs: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def remaining_epsilon(self) -> float:
        return max(0.0, self.total_epsilon - self.spent_epsilon)

    @property
    def remaining_delta(self) -> float:
        return max(0.0, self.total_delta - self.spent_delta)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset_key, "label": self.label,
                "composition": "basic (sum of ε, sum of δ over runs)",
                "total_epsilon": self.total_epsilon, "total_delta": self.total_delta,
                "spent_epsilon": _out(self.spent_epsilon), "spent_delta": self.spent_delta,
                "reserved_epsilon": self.reserved_epsilon, "reserved_delta": self.reserved_delta,
                "remaining_epsilon": self.remaining_epsilon,
                "remaining_delta": self.remaining_delta, "runs": list(self.runs)}


def fits_budget(spent: float, amount: float, total: float) -> bool:
    """Whether ``spent + amount`` stays within ``total`` (up to float rounding of sums)."""
    return spent + amount <= total * (1 + _REL_TOL) + 1e-300


def _out(x: float) -> float | str:
    return x if math.isfinite(x) else "inf"


def _num(x: Any) -> float:
    return math.inf if x == "inf" else float(x)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_amount(name: str, value: Any, *, upper: float | None = None,
                  allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(v) or v < 0 or (v == 0 and not allow_zero) or not math.isfinite(v):
        raise ConfigError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                          f"got {value!r}")
    if upper is not None and v >= upper:
        raise ConfigError(f"{name} must be below {upper:g}, got {value!r}")
    return v


class BudgetStore:
    """Per-dataset privacy budgets in one JSON file (see the module docstring).

    ``lock_timeout``: seconds to wait for another run's lock before giving up with
    :class:`~synthdata.errors.PrivacyBudgetError` (the lock is held only for the read-check-
    write of one reservation or commit, milliseconds).
    """

    def __init__(self, path: str | Path, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    # ---------------------------------------------------------------- reading
    def status(self, dataset_key: str) -> BudgetStatus | None:
        """The dataset's budget, or ``None`` when the file has no entry for it."""
        with self._locked():
            data = self._load()
        entry = data["datasets"].get(dataset_key)
        return None if entry is None else _status(dataset_key, entry)

    def datasets(self) -> list[BudgetStatus]:
        """Every dataset in the file (in the order they were first declared)."""
        with self._locked():
            data = self._load()
        return [_status(k, v) for k, v in data["datasets"].items()]

    def resolve_key(self, prefix: str) -> str:
        """The full dataset key that starts with ``prefix`` (at least 6 characters)."""
        keys = [k for k in self._read_unlocked()["datasets"] if k.startswith(prefix)]
        if len(prefix) < 6 or len(keys) != 1:
            found = "no dataset" if not keys else f"{len(keys)} datasets"
            raise ConfigError(f"{found} in {self.path} match {prefix!r}; give at least 6 "
                              "leading characters of a key `synthdata budget show` lists")
        return keys[0]

    # ---------------------------------------------------------------- changes
    def declare(self, dataset_key: str, *, total_epsilon: float, total_delta: float,
                label: str | None = None) -> BudgetStatus:
        """Set (or knowingly change) a dataset's declared total; spent runs stay recorded."""
        te = _check_amount("total_epsilon", total_epsilon)
        td = _check_amount("total_delta", total_delta, upper=1.0)
        with self._locked():
            data = self._load()
            entry = data["datasets"].setdefault(dataset_key, {"label": label, "runs": []})
            entry.update(total_epsilon=te, total_delta=td)
            if label and not entry.get("label"):
                entry["label"] = label
            self._save(data)
        return _status(dataset_key, entry)

    def reserve(self, dataset_key: str, epsilon: float, delta: float, *,
                total_epsilon: float | None = None, total_delta: float | None = None,
                generator: str = "", label: str | None = None) -> BudgetToken:
        """Hold ``(epsilon, delta)`` of the dataset's budget for a run about to start.

        ``total_epsilon``/``total_delta`` declare the total when the dataset is new to the
        file; for a known dataset they must equal what the file declares (change a declared
        total knowingly with :meth:`declare`, i.e. ``synthdata budget set``). Raises
        :class:`~synthdata.errors.PrivacyBudgetError` when the run does not fit, naming
        spent, total and remaining; nothing is recorded then.
        """
        eps = _check_amount("epsilon", epsilon)
        dlt = _check_amount("delta", delta, upper=1.0, allow_zero=True)
        with self._locked():
            data = self._load()
            entry = data["datasets"].get(dataset_key)
            if entry is None:
                if total_epsilon is None or total_delta is None:
                    raise ConfigError(
                        f"the budget file {self.path} has no total for this dataset "
                        f"({label or dataset_key[:12]}); declare one: privacy.budget."
                        "total_epsilon and total_delta in the pipeline")
                entry = {"label": label, "runs": [],
                         "total_epsilon": _check_amount("total_epsilon", total_epsilon),
                         "total_delta": _check_amount("total_delta", total_delta, upper=1.0)}
                data["datasets"][dataset_key] = entry
            else:
                self._same_total(dataset_key, entry, total_epsilon, total_delta)
            status = _status(dataset_key, entry)
            refuse_unless_fits(status, eps, dlt, where=str(self.path))
            run_id = str(uuid.uuid4())
            entry["runs"].append({"run": run_id, "status": RESERVED, "generator": generator,
                                  "epsilon": eps, "delta": dlt, "reserved_epsilon": eps,
                                  "reserved_delta": dlt, "started": _now(), "finished": None})
            self._save(data)
        return BudgetToken(self.path, dataset_key, run_id, eps, dlt)

    def commit(self, token: BudgetToken, epsilon: float, delta: float) -> BudgetStatus:
        """Replace the reservation by what the run actually spent (its ledger's values).

        Normally at most what was reserved; a larger value (e.g. ε = ∞ for a run whose
        release was shaped without privacy) is recorded as it is: honest, and it refuses
        later runs rather than hiding the overrun.
        """
        eps = float(epsilon)
        dlt = float(delta)
        if math.isnan(eps) or eps < 0 or math.isnan(dlt) or not 0 <= dlt <= 1:
            raise ConfigError(f"cannot commit ε={epsilon!r}, δ={delta!r}: not a privacy cost")
        with self._locked():
            data = self._load()
            run, entry = self._run_of(data, token)
            run.update(status=COMMITTED, epsilon=_out(eps), delta=dlt, finished=_now())
            self._save(data)
        return _status(token.dataset_key, entry)

    def release(self, token: BudgetToken) -> None:
        """Drop a reservation: only for a run that failed before it read the data."""
        with self._locked():
            data = self._load()
            run, entry = self._run_of(data, token)
            entry["runs"].remove(run)
            self._save(data)

    def clear(self, dataset_key: str, run_id: str) -> None:
        """Remove a stale ``reserved`` run (one that died before committing). Only for a run
        you know never read the data; a committed run cannot be cleared."""
        with self._locked():
            data = self._load()
            entry = data["datasets"].get(dataset_key)
            runs = [] if entry is None else [r for r in entry["runs"] if r["run"] == run_id]
            if not runs:
                raise ConfigError(f"no run {run_id!r} for dataset {dataset_key[:12]} in "
                                  f"{self.path}; `synthdata budget show {self.path}` lists them")
            if runs[0]["status"] != RESERVED:
                raise ConfigError(f"run {run_id} is {runs[0]['status']}: its privacy cost is "
                                  "spent and stays on the budget")
            entry["runs"].remove(runs[0])
            self._save(data)

    # ---------------------------------------------------------------- internals
    def _same_total(self, key: str, entry: dict[str, Any], te: float | None,
                    td: float | None) -> None:
        for name, given in (("total_epsilon", te), ("total_delta", td)):
            if given is not None and not math.isclose(float(given), float(entry[name]),
                                                      rel_tol=1e-12):
                raise ConfigError(
                    f"the budget file {self.path} declares {name}={entry[name]:g} for this "
                    f"dataset, the pipeline {float(given):g}; to change the declared total "
                    f"knowingly run `synthdata budget set {self.path} {key[:12]} "
                    f"--total-epsilon E --total-delta D`, or drop it from the pipeline")

    def _run_of(self, data: dict[str, Any], token: BudgetToken) -> tuple[dict, dict]:
        entry = data["datasets"].get(token.dataset_key)
        for run in [] if entry is None else entry["runs"]:
            if run["run"] == token.run_id:
                if run["status"] != RESERVED:
                    raise ConfigError(f"run {token.run_id} is already {run['status']}")
                return run, entry
        raise ConfigError(f"the reservation {token.run_id} is not in {self.path} (was the "
                          "file replaced or cleared while the run ran?)")

    def _read_unlocked(self) -> dict[str, Any]:
        with self._locked():
            return self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"format": FORMAT, "version": FORMAT_VERSION,
                    "composition": "basic", "datasets": {}}
        hint = ("restore it from a backup, or fix it by hand (deleting it forgets every "
                "run it recorded: their privacy cost would no longer be counted)")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"cannot read the budget file {self.path}: "
                              f"{err.strerror or err}") from err
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"the budget file {self.path} is not valid JSON ({err}); "
                              f"{hint}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{self.path} is not a synthdata budget file (no \"format\": "
                              f"\"{FORMAT}\"); {hint}")
        if data.get("version") != FORMAT_VERSION:
            raise ConfigError(f"the budget file {self.path} has version "
                              f"{data.get('version')!r}; this synthdata reads version "
                              f"{FORMAT_VERSION}")
        try:
            for key, entry in data["datasets"].items():
                float(entry["total_epsilon"]), float(entry["total_delta"])
                for run in entry["runs"]:
                    _num(run["epsilon"]), float(run["delta"]), run["run"], run["status"]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"the budget file {self.path} is damaged (bad or missing "
                              f"{err}); {hint}") from None
        return data

    def _save(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the folder of the budget file {self.path}: "
                              f"{err.strerror or err}") from err
        try:
            import fcntl
        except ImportError:  # no flock (Windows): an exclusive-create lock file
            yield from _excl_lock(lock_path, self.lock_timeout, self.path)
            return
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise ConfigError(f"cannot open the lock file {lock_path}: "
                              f"{err.strerror or err}") from err
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise PrivacyBudgetError(
                            f"the budget file {self.path} is locked by another run (waited "
                            f"{self.lock_timeout:g} s); retry when it has reserved its "
                            "budget") from None
                    time.sleep(0.01)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _excl_lock(lock_path: Path, timeout: float, path: Path) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise PrivacyBudgetError(
                    f"the budget file {path} is locked (waited {timeout:g} s); if no "
                    f"synthdata run is active, a crashed run left {lock_path}: delete "
                    "it") from None
            time.sleep(0.01)
    try:
        yield
    finally:
        os.close(fd)
        lock_path.unlink(missing_ok=True)


def _status(key: str, entry: dict[str, Any]) -> BudgetStatus:
    runs = entry["runs"]
    spent_e = sum(_num(r["epsilon"]) for r in runs)
    spent_d = sum(float(r["delta"]) for r in runs)
    res = [r for r in runs if r["status"] == RESERVED]
    return BudgetStatus(
        dataset_key=key, total_epsilon=float(entry["total_epsilon"]),
        total_delta=float(entry["total_delta"]), spent_epsilon=spent_e,
        spent_delta=min(spent_d, 1.0), reserved_epsilon=sum(_num(r["epsilon"]) for r in res),
        reserved_delta=sum(float(r["delta"]) for r in res), label=entry.get("label"),
        runs=tuple(dict(r) for r in runs))


def refuse_unless_fits(status: BudgetStatus, epsilon: float, delta: float, *, where: str,
                       how_to_raise: str = "`synthdata budget set`") -> None:
    """Raise ``PrivacyBudgetError`` when ``(epsilon, delta)`` does not fit in ``status``."""
    parts = []
    if not fits_budget(status.spent_epsilon, epsilon, status.total_epsilon):
        parts.append(f"ε: this run needs {epsilon:g}, {_g(status.spent_epsilon)} of the "
                     f"declared total {status.total_epsilon:g} is spent, "
                     f"{status.remaining_epsilon:.4g} remains")
    if not fits_budget(status.spent_delta, delta, status.total_delta):
        parts.append(f"δ: this run needs {delta:g}, {status.spent_delta:g} of the declared "
                     f"total {status.total_delta:g} is spent, {status.remaining_delta:.3g} "
                     "remains")
    if not parts:
        return
    n_open = sum(1 for r in status.runs if r["status"] == RESERVED)
    open_note = (f" ({n_open} run(s) still hold a reservation: in progress, or died before "
                 "committing)") if n_open else ""
    raise PrivacyBudgetError(
        f"privacy budget of dataset {status.label or status.dataset_key[:12]} ({where}) "
        f"exceeded{open_note}: " + "; ".join(parts) + ". Runs on the same data add up: lower "
        "privacy.epsilon (or delta) to fit what remains, or raise the declared total "
        f"knowingly ({how_to_raise})")


def _g(x: float) -> str:
    return "∞" if not math.isfinite(x) else f"{x:.4g}"
