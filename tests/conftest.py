"""Shared fixtures: small real data shipped in the repo, and the shared dataset folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

# One thread per test process for torch, OpenMP and BLAS, unless the environment says
# otherwise: the suite's models are small, and on a shared 2-core machine a second,
# spinning thread cost far more than it gave (tests/models/test_vae.py + test_ctgan.py under
# load 30: 173 CPU s / 854 s wall with the default, 14 CPU s / 93 s with one thread). Fits
# read it through synthdata._threads.default_threads(); set before numpy and torch load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# No per-example deadline: on a busy CI core a 200 ms deadline failed correct examples
# (test_no_cell_a_spreadsheet_would_run_survives under load); a hung example is still caught
# by the test's own limits. Tests that set their own settings keep them.
settings.register_profile("synthdata", deadline=None)
settings.load_profile("synthdata")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "datasets"


def module_scope_unless_mutating(fixture_name: str, config: pytest.Config) -> str:
    """Scope of a fixture that runs code under mutation testing: "module", except in
    mutmut's stats pass (``make mutation``), where it is "function".

    mutmut runs each mutant only against the tests that called the mutated function in its
    stats pass, which records calls test by test. A module-scoped fixture runs once, inside
    the first test that uses it, so every later test of the module was never run against
    mutants of the code the fixture calls (why no leakage control ever saw a mutant of
    ``evaluate/leakage.py``). Each mutant then runs in a fresh process with the mutant
    active, where one module-scoped computation serves all of its tests again.
    """
    return "function" if os.environ.get("MUTANT_UNDER_TEST") == "stats" else "module"


# -- mutation runs (``make mutation``): a test that spins under a mutant fails -------------
MUTANT_TEST_CPU_LIMIT_S = 30.0


class MutantTimeLimit(BaseException):
    """A test phase used more than ``MUTANT_TEST_CPU_LIMIT_S`` CPU seconds under a mutant.

    A ``BaseException``, so hypothesis neither catches nor shrinks it (a limit reached while
    hypothesis shrinks an example that already failed ends the shrinking); pytest reports
    the test as failed, so the mutant counts as killed by a failing test, not as one of
    mutmut's timeouts."""


def _under_mutant() -> bool:
    """True while mutmut runs the tests against one mutant (not its stats pass, its clean
    run of the tests or its forced-failure check)."""
    return os.environ.get("MUTANT_UNDER_TEST", "") not in ("", "stats", "fail")


@contextlib.contextmanager
def _cpu_time_limit(seconds: float) -> Iterator[None]:
    """Raise ``MutantTimeLimit`` once the process has used ``seconds`` more CPU time.

    CPU time (``ITIMER_PROF``), not wall time: the limit means the same on an idle and on a
    loaded machine. The slowest test of the mutation selection uses about 5 s on an idle
    core, so 30 s is a spinning loop, not a slow machine."""
    def expire(signum: int, frame: object) -> None:
        raise MutantTimeLimit(f"test phase over {seconds:g} CPU seconds under a mutant")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _phase_limit() -> contextlib.AbstractContextManager[None]:
    """The CPU-time limit of a test phase under a mutant; none otherwise."""
    return _cpu_time_limit(MUTANT_TEST_CPU_LIMIT_S) if _under_mutant() else contextlib.nullcontext()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _phase_limit():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _phase_limit():
        yield


@pytest.fixture(scope="session")
def flchain() -> pd.DataFrame:
    return pd.read_csv(DATA / "flchain.csv")


@pytest.fixture(scope="session")
def flchain_small(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(800, random_state=0).reset_index(drop=True)


def shared_csvs() -> list[Path]:
    """Every CSV in ../shared/datasets (empty when the folder is absent)."""
    if not SHARED.is_dir():
        return []
    return sorted(SHARED.glob("*.csv"))


def shared_manifest() -> dict:
    path = SHARED / "manifest.json"
    if not path.is_file():
        pytest.skip("../shared/datasets is not available")
    return json.loads(path.read_text())


def requires_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not available")


@pytest.fixture(scope="session")
def flchain_full(flchain: pd.DataFrame) -> pd.DataFrame:
    """The whole bundled flchain table (the evaluation and validation tests use this name)."""
    return flchain


def three_way(df: pd.DataFrame, n: int, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """Disjoint train / holdout / independent-sample splits of ``n`` rows each."""
    import numpy as np

    idx = np.random.default_rng(seed).permutation(len(df))
    return tuple(df.iloc[idx[i * n:(i + 1) * n]].reset_index(drop=True) for i in range(3))


@pytest.fixture(scope="session")
def splits_small(flchain_full: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    return three_way(flchain_full, 400)


@pytest.fixture(scope="session")
def splits_large(flchain_full: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    return three_way(flchain_full, 2500)


@pytest.fixture()
def small_csv(tmp_path: Path, flchain: pd.DataFrame) -> Path:
    """300 flchain rows as a CSV file in the test's folder (for CLI and pipeline runs)."""
    path = tmp_path / "small.csv"
    flchain.sample(300, random_state=0).to_csv(path, index=False)
    return path



@pytest.fixture
def seeded_dp_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """DP noise from one seeded numpy stream instead of OpenDP's OS-entropy samplers, at the
    same scales (Gaussian or Laplace, rounded for integer statistics), and seeded "secure"
    generators: a test of the fidelity a DP run keeps is then deterministic. Test-only: the
    product never seeds DP noise."""
    import numpy as np

    from synthdata.privacy import noise

    rng = np.random.default_rng(20261206)
    real = noise._measurement

    class Seeded:
        """OpenDP's measurement for its privacy map; seeded noise when called."""

        def __init__(self, kind: str, scale: float, size: int, integer: bool, k: int | None):
            self.real = real(kind, scale, size, integer, k)
            self.kind, self.scale, self.size, self.integer = kind, scale, size, integer

        def map(self, distance: float) -> float:
            return self.real.map(distance)

        def __call__(self, data: list) -> np.ndarray:
            noise_draw = (rng.normal(0.0, self.scale, self.size) if self.kind == "gaussian"
                          else rng.laplace(0.0, self.scale, self.size))
            values = np.asarray(data, dtype=float) + noise_draw
            return np.round(values).astype(np.int64) if self.integer else values

    monkeypatch.setattr(noise, "_measurement", Seeded)
    monkeypatch.setattr(noise, "secure_seed", lambda bits=256: int(rng.integers(0, 2**62)))
