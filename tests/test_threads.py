"""Threads set on purpose around fit and sample (synthdata._threads, issue 24)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

import synthdata as sd
from synthdata import _threads
from synthdata._threads import available_cores, cgroup_cpu_limit, check_threads, limit_threads
from synthdata.errors import ConfigError
from synthdata.pipeline.config import PipelineConfig


def _blas_threads() -> list[int]:
    import numpy  # noqa: F401  (OpenBLAS is loaded with numpy)
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def _cgroup(tmp_path: Path, files: dict[str, str], proc: str = "0::/\n") -> tuple[Path, Path]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "proc").write_text(proc)
    return tmp_path, tmp_path / "proc"


@pytest.mark.parametrize(("files", "proc", "expected"), [
    ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),
    ({"cpu.max": "max 100000\n"}, "0::/\n", None),
    ({"job/cpu.max": "50000 100000\n", "cpu.max": "max 100000\n"}, "0::/job\n", 0.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "1:cpu:/\n", None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "1:cpu:/\n",
     3.0),
    ({}, "0::/\n", None),
])
def test_cgroup_quota_in_cpus(tmp_path, files, proc, expected):
    root, proc_file = _cgroup(tmp_path, files, proc)
    assert cgroup_cpu_limit(root, proc_file) == expected


def test_available_cores_is_affinity_capped_by_the_quota(monkeypatch):
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda: None)
    assert available_cores() == affinity
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda: 0.4)
    assert available_cores() == 1                        # at least one, rounded up
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda: affinity + 3.0)
    assert available_cores() == affinity                 # a quota above the mask changes nothing
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda: 1.5)
    assert available_cores() == min(affinity, math.ceil(1.5))


def test_a_smaller_omp_budget_in_the_environment_wins(monkeypatch):
    monkeypatch.setattr(_threads, "available_cores", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert _threads.default_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert _threads.default_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _threads.default_threads() == 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        check_threads(bad)


def test_a_request_above_the_process_budget_is_capped(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")          # a service worker's budget
    with limit_threads(8) as n:
        assert n == 1 and set(_blas_threads()) == {1} and _threads.requested_threads() == 1


def test_limit_threads_sets_and_restores_blas_openmp_and_torch():
    import torch

    before_torch, before_blas = torch.get_num_threads(), _blas_threads()
    with limit_threads(1) as n:
        assert n == 1 and set(_blas_threads()) == {1} and torch.get_num_threads() == 1
        assert _threads.requested_threads() == 1
    assert torch.get_num_threads() == before_torch and _blas_threads() == before_blas
    assert _threads.requested_threads() is None
    with limit_threads() as n:                    # default: the cores available, torch untouched
        assert n == _threads.default_threads() and _threads.requested_threads() is None
        assert torch.get_num_threads() == before_torch


def _seen_during_fit(monkeypatch, cls):
    seen = {}
    original = cls._fit

    def spy(self, *args, **kwargs):
        import torch

        seen["blas"], seen["torch"] = set(_blas_threads()), torch.get_num_threads()
        return original(self, *args, **kwargs)
    monkeypatch.setattr(cls, "_fit", spy)
    return seen


def test_gmm_fit_and_sample_run_with_the_generators_threads(monkeypatch, flchain_small):
    seen = _seen_during_fit(monkeypatch, sd.GMMGenerator)
    schema = sd.Schema.infer(flchain_small)
    gen = sd.make_generator("gmm", schema, n_components=2, max_iter=5, threads=1)
    assert gen.threads == 1 and gen.clone().threads == 1
    before = _blas_threads()
    gen.fit(flchain_small)
    assert seen["blas"] == {1} and _blas_threads() == before
    assert len(gen.sample(50)) == 50 and _blas_threads() == before


def test_vae_torch_threads_follow_the_parameter(monkeypatch, flchain_small):
    import torch

    torch.set_num_threads(2)
    schema = sd.Schema.infer(flchain_small)
    seen_inner = {}
    from synthdata.models import _torch

    original = _torch.default_threads

    def spy() -> int:
        seen_inner["n"] = original()
        return seen_inner["n"]
    monkeypatch.setattr(_torch, "default_threads", spy)
    gen = sd.make_generator("vae", schema, epochs=1, threads=1)
    gen.fit(flchain_small)
    assert seen_inner["n"] == 1 and torch.get_num_threads() == 2
    gen.set_params(threads=None).fit(flchain_small)
    assert seen_inner["n"] == max(1, min(_torch.MAX_THREADS, _threads.default_threads()))


def test_make_generator_refuses_bad_threads():
    schema = sd.Schema.infer(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    with pytest.raises(ConfigError, match="generator 'gmm': threads must be a positive integer"):
        sd.make_generator("gmm", schema, threads=0)


def test_pipeline_threads_reach_the_generator_once():
    cfg = PipelineConfig.from_dict({"data": {"path": "x.csv"}, "threads": 2})
    assert cfg.generator.params["threads"] == 2
    with pytest.raises(ConfigError, match="threads is given twice"):
        PipelineConfig.from_dict({"data": {"path": "x.csv"}, "threads": 2,
                                  "generator": {"params": {"threads": 1}}})
    with pytest.raises(ConfigError, match="threads"):
        PipelineConfig.from_dict({"data": {"path": "x.csv"}, "threads": 0})


def test_cli_threads_option(tmp_path, capsys, monkeypatch, small_csv):
    from synthdata.cli import main
    from synthdata.pipeline import runner
    from tests.test_cli import FLCHAIN_SCHEMA, write_pipeline

    monkeypatch.setattr(runner, "_validate", lambda *a, **k: (None, None))  # ~6 s, not threads
    seen = _seen_during_fit(monkeypatch, sd.GMMGenerator)
    path = write_pipeline(tmp_path, small_csv, FLCHAIN_SCHEMA)
    assert main(["run", str(path), "--quiet", "--threads", "1"]) == 0, capsys.readouterr().err
    assert seen["blas"] == {1}
    cfg = yaml.safe_load(path.read_text())
    cfg["generator"]["params"]["threads"] = "two"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--quiet"]) == 2
    assert "generator.params.threads must be a positive integer" in " ".join(
        capsys.readouterr().err.split())


def test_limit_threads_reuses_its_library_scan_until_a_module_is_imported(monkeypatch):
    import sys
    import types

    with limit_threads(1):
        first = _threads._controller()
    assert _threads._controller() is first  # no import since: the same scan
    monkeypatch.setitem(sys.modules, "synthdata_test_fresh_module", types.ModuleType("fresh"))
    again = _threads._controller()
    assert again is not first
    with limit_threads(1):
        assert set(_blas_threads()) == {1}
    assert _threads._controller() is again


def test_shared_pool_is_one_pool_per_count_and_runs_the_tasks():
    pool = _threads.shared_pool(2)
    assert _threads.shared_pool(2) is pool and _threads.shared_pool(3) is not pool
    assert list(pool.map(lambda v: v * v, range(6))) == [0, 1, 4, 9, 16, 25]
