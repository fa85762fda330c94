"""The per-dataset privacy budget file: sums, refusal, locking, crashes, damaged files."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.errors import ConfigError, PrivacyBudgetError
from synthdata.privacy.budget import MAX_DEFAULT_DELTA, BudgetStore, fits_budget
from synthdata.privacy.config import default_delta

KEY = "a" * 64
# fork where there is one: a spawned child re-imports the test module (seconds under load)
CTX = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def test_runs_add_up_and_the_one_that_does_not_fit_is_refused(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    t1 = store.reserve(KEY, 2.0, 1e-6, total_epsilon=5.0, total_delta=1e-5, generator="gmm")
    store.commit(t1, 1.5, 5e-7)  # the ledger spent less than reserved
    t2 = store.reserve(KEY, 3.0, 1e-6)  # total known from the file now
    status = store.status(KEY)
    assert status.spent_epsilon == pytest.approx(4.5)  # 1.5 committed + 3 reserved
    assert status.reserved_epsilon == 3.0 and status.remaining_epsilon == pytest.approx(0.5)
    with pytest.raises(PrivacyBudgetError) as err:
        store.reserve(KEY, 1.0, 1e-6)
    msg = str(err.value)
    assert "4.5 of the declared total 5 is spent" in msg and "0.5 remains" in msg
    assert "lower privacy.epsilon" in msg and "synthdata budget set" in msg
    assert "1 run(s) still hold a reservation" in msg
    store.commit(t2, 3.0, 1e-6)
    store.reserve(KEY, 0.5, 1e-6)  # exactly what remains fits
    assert store.status(KEY).remaining_epsilon == pytest.approx(0.0)
    runs = store.status(KEY).runs
    assert [r["status"] for r in runs] == ["committed", "committed", "reserved"]
    assert runs[0]["generator"] == "gmm" and runs[0]["reserved_epsilon"] == 2.0


def test_delta_adds_up_too(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    store.reserve(KEY, 0.1, 6e-6, total_epsilon=100, total_delta=1e-5)
    with pytest.raises(PrivacyBudgetError, match="δ: this run needs 6e-06"):
        store.reserve(KEY, 0.1, 6e-6)


def test_datasets_are_separate(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    store.reserve(KEY, 1.0, 0, total_epsilon=1, total_delta=1e-5)
    store.reserve("b" * 64, 1.0, 0, total_epsilon=1, total_delta=1e-5)
    with pytest.raises(PrivacyBudgetError):
        store.reserve(KEY, 0.1, 0)
    assert len(store.datasets()) == 2


def test_release_returns_the_reservation(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    token = store.reserve(KEY, 1.0, 1e-6, total_epsilon=1, total_delta=1e-5)
    store.release(token)
    assert store.status(KEY).spent_epsilon == 0
    store.reserve(KEY, 1.0, 1e-6)
    with pytest.raises(ConfigError, match="not in"):
        store.release(token)  # a token is used once


def test_new_dataset_needs_a_declared_total(tmp_path):
    with pytest.raises(ConfigError, match="no total for this dataset.*total_epsilon"):
        BudgetStore(tmp_path / "b.json").reserve(KEY, 1.0, 1e-6, label="x.csv")
    assert not (tmp_path / "b.json").exists()  # nothing recorded


def test_a_different_total_is_changed_only_knowingly(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    store.reserve(KEY, 1.0, 1e-6, total_epsilon=2, total_delta=1e-5)
    with pytest.raises(ConfigError, match="declares total_epsilon=2 .* the pipeline 9.*budget set"):
        store.reserve(KEY, 1.0, 1e-6, total_epsilon=9, total_delta=1e-5)
    store.reserve(KEY, 1.0, 1e-6, total_epsilon=2, total_delta=1e-5)  # the same total is fine
    store.declare(KEY, total_epsilon=9, total_delta=1e-5)
    assert store.status(KEY).spent_epsilon == 2.0  # spent runs stay counted
    store.reserve(KEY, 7.0, 1e-6)


def test_crash_between_reserve_and_commit_stays_charged(tmp_path):
    """A process killed after reserving (no commit, no release) keeps its ε on the budget."""
    path = tmp_path / "b.json"
    proc = CTX.Process(target=_reserve_and_die, args=(str(path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9
    store = BudgetStore(path)
    status = store.status(KEY)
    assert status.spent_epsilon == 3.0 and status.reserved_epsilon == 3.0
    with pytest.raises(PrivacyBudgetError):
        store.reserve(KEY, 1.0, 1e-6)
    (run,) = status.runs
    store.clear(KEY, run["run"])  # the custodian knows it died before reading the data
    store.reserve(KEY, 1.0, 1e-6)
    # and the lock died with the process: nothing is stuck
    assert BudgetStore(path, lock_timeout=0.5).status(KEY) is not None


def _reserve_and_die(path: str) -> None:
    import os

    BudgetStore(path).reserve(KEY, 3.0, 1e-6, total_epsilon=3.5, total_delta=1e-5)
    os._exit(9)


def test_committed_runs_cannot_be_cleared(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    token = store.reserve(KEY, 1.0, 1e-6, total_epsilon=2, total_delta=1e-5)
    store.commit(token, 1.0, 1e-6)
    with pytest.raises(ConfigError, match="is committed: its privacy cost is spent"):
        store.clear(KEY, token.run_id)
    with pytest.raises(ConfigError, match="already committed"):
        store.commit(token, 0.5, 0)


def test_an_unbounded_run_exhausts_the_budget(tmp_path):
    """ε = ∞ (a release shaped without privacy) is recorded honestly and refuses later runs."""
    path = tmp_path / "b.json"
    store = BudgetStore(path)
    token = store.reserve(KEY, 1.0, 1e-6, total_epsilon=100, total_delta=1e-5)
    store.commit(token, math.inf, 1.0)
    assert json.loads(path.read_text())["datasets"][KEY]["runs"][0]["epsilon"] == "inf"
    assert store.status(KEY).spent_epsilon == math.inf
    with pytest.raises(PrivacyBudgetError, match="∞ of the declared total 100"):
        store.reserve(KEY, 0.01, 0)


def _race(path: str, barrier: object, results: object) -> None:
    store = BudgetStore(path)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        store.reserve(KEY, 1.0, 1e-7)
        results.put("ok")  # type: ignore[attr-defined]
    except PrivacyBudgetError:
        results.put("refused")  # type: ignore[attr-defined]


def test_concurrent_processes_cannot_overspend(tmp_path):
    """Six processes reserve ε=1 at the same moment on a total of 4: exactly four pass."""
    path = tmp_path / "b.json"
    BudgetStore(path).declare(KEY, total_epsilon=4.0, total_delta=1e-5)
    ctx = CTX
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(path), barrier, results)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["ok"] * 4 + ["refused"] * 2
    assert BudgetStore(path).status(KEY).spent_epsilon == 4.0


def test_concurrent_threads_cannot_overspend(tmp_path):
    path = tmp_path / "b.json"
    BudgetStore(path).declare(KEY, total_epsilon=3.0, total_delta=1e-5)
    barrier, outcomes = threading.Barrier(8), []

    def go() -> None:
        store = BudgetStore(path)  # each its own lock descriptor, like separate runs
        barrier.wait()
        try:
            store.reserve(KEY, 1.0, 1e-7)
            outcomes.append("ok")
        except PrivacyBudgetError:
            outcomes.append("refused")

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 5
    assert len(BudgetStore(path).status(KEY).runs) == 3


def test_a_held_lock_times_out_with_a_clear_error(tmp_path):
    import fcntl
    import os

    path = tmp_path / "b.json"
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(PrivacyBudgetError, match="locked by another run .*waited 0.2 s"):
            BudgetStore(path, lock_timeout=0.2).reserve(KEY, 1, 0, total_epsilon=2,
                                                        total_delta=1e-5)
    finally:
        os.close(fd)


@pytest.mark.parametrize("content, pattern", [
    ("{not json", "is not valid JSON"),
    ('{"datasets": {}}', "is not a synthdata budget file"),
    ('{"format": "synthdata-privacy-budget", "version": 99, "datasets": {}}', "version 99"),
    ('{"format": "synthdata-privacy-budget", "version": 1, "datasets": {"k": {"runs": []}}}',
     "is damaged"),
])
def test_damaged_file_is_a_clear_error_and_stays_untouched(tmp_path, content, pattern):
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=pattern) as err:
        BudgetStore(path).reserve(KEY, 1.0, 1e-6, total_epsilon=5, total_delta=1e-5)
    assert "deleting it forgets every run" in str(err.value) or "version" in pattern
    assert path.read_text() == content


def test_bad_amounts_are_refused(tmp_path):
    store = BudgetStore(tmp_path / "b.json")
    for eps in (0, -1, math.nan, math.inf, "x"):
        with pytest.raises(ConfigError, match="epsilon must be"):
            store.reserve(KEY, eps, 1e-6, total_epsilon=5, total_delta=1e-5)
    with pytest.raises(ConfigError, match="total_delta must be below 1"):
        store.reserve(KEY, 1, 1e-6, total_epsilon=5, total_delta=1.0)


def test_the_file_is_replaced_atomically(tmp_path, monkeypatch):
    """A write that fails half way leaves the previous file intact and no temporary file."""
    path = tmp_path / "b.json"
    store = BudgetStore(path)
    store.reserve(KEY, 1.0, 1e-6, total_epsilon=5, total_delta=1e-5)
    before = path.read_text()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("synthdata.privacy.budget.os.replace", broken)
    with pytest.raises(OSError):
        store.reserve(KEY, 1.0, 1e-6)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "b.json.lock"]


def test_max_default_delta_bounds_every_default_delta():
    assert all(default_delta(n) <= MAX_DEFAULT_DELTA for n in (1, 10, 1000, 10**9))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 3.0), min_size=1, max_size=12), st.floats(0.5, 10.0))
def test_reserved_sum_never_exceeds_the_total(tmp_path_factory, amounts, total):
    store = BudgetStore(tmp_path_factory.mktemp("h") / "b.json")
    store.declare(KEY, total_epsilon=total, total_delta=1e-5)
    accepted = []
    for eps in amounts:
        try:
            store.reserve(KEY, eps, 0)
            accepted.append(eps)
        except PrivacyBudgetError:
            assert not fits_budget(sum(accepted), eps, total)
    assert sum(accepted) <= total * (1 + 1e-9)
    assert store.status(KEY).spent_epsilon == pytest.approx(sum(accepted))
