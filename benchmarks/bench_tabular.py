"""Tabular benchmark: our generators vs SDV's, same split, same epochs, one table per dataset.

Run from the benchmark environment (SDV lives only there)::

    make bench BENCH_ARGS="--systems gmm,sdv_gc"
    .venv-bench/bin/python benchmarks/bench_tabular.py --datasets flchain,rotterdam,telco_churn \
        --systems gmm,vae,ctgan,sdv_gc,sdv_tvae,sdv_ctgan --epochs 300 --seed 0

Each system fits and samples in its own subprocess (``--worker``), so its peak RSS is its
own; the parent scores every synthetic table with the same functions (``_common.evaluate``).
A system whose code is missing (e.g. ``synthdata.models.vae`` not written yet, or SDV not
installed in this environment) gets a "not available" row instead of stopping the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OURS = ("gmm", "vae", "ctgan", "ddpm")
SDV = {"sdv_gc": "GaussianCopulaSynthesizer", "sdv_tvae": "TVAESynthesizer",
       "sdv_ctgan": "CTGANSynthesizer"}
REFERENCE = "real"   # the real train rows scored as if synthetic: the noise floor
ALL_SYSTEMS = (*OURS, *SDV, REFERENCE)
DEFAULT_DATASETS = "flchain,rotterdam,telco_churn"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
NOT_AVAILABLE = 3    # worker exit code: the system's code is not installed/implemented


# -- worker (one system, one subprocess) ----------------------------------------------------

def _make_ours(kind: str, train: pd.DataFrame, epochs: int, seed: int,
               threads: int | None = None) -> Any:
    import synthdata as sd
    try:
        schema = sd.Schema.infer(train)
        # gmm has no epochs; ddpm keeps its own default (its epochs are not SDV's epochs)
        params: dict[str, Any] = {} if kind in ("gmm", "ddpm") else {"epochs": epochs}
        if threads:
            params["threads"] = threads
        return sd.make_generator(kind, schema, seed=seed, **params)
    except sd.ConfigError as err:
        if "not implemented" in str(err) or "optional dependency" in str(err):
            raise _NotAvailable(str(err)) from err
        raise


def _make_sdv(kind: str, train: pd.DataFrame, epochs: int, seed: int) -> Any:
    import random
    try:
        import sdv.single_table as st
    except ModuleNotFoundError as err:
        raise _NotAvailable(f"SDV is not installed in this environment ({err}); "
                            "run from .venv-bench (make bench)") from err
    # SDV draws from the global generators; seeding them is fine in a benchmark process.
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
        torch.manual_seed(seed)
    except ModuleNotFoundError:
        pass
    # Keys were dropped before the split (they are never learned), so no key inference.
    from sdv.metadata import Metadata
    if hasattr(Metadata, "detect_from_dataframes"):        # SDV >= 1.15 (2.x has only this)
        metadata = Metadata.detect_from_dataframes({"data": train}, infer_keys=None)
    else:
        metadata = Metadata.detect_from_dataframe(train, table_name="data")
    cls = getattr(st, SDV[kind])
    params = {} if kind == "sdv_gc" else {"epochs": epochs}
    return _SDVAdapter(cls(metadata, **params))


class _SDVAdapter:
    """``fit(df)`` / ``sample(n) -> df`` over SDV 1.x (frames) and 2.x (dicts of frames)."""

    def __init__(self, synth: Any) -> None:
        self.synth = synth
        import sdv
        self.dict_api = int(sdv.__version__.split(".")[0]) >= 2

    def fit(self, df: pd.DataFrame) -> None:
        self.synth.fit({"data": df} if self.dict_api else df)

    def sample(self, n: int) -> pd.DataFrame:
        out = self.synth.sample(n)
        return next(iter(out.values())) if isinstance(out, dict) else out


class _NotAvailable(Exception):
    pass


def _tree_cpu_s() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])   # user, system, children_user, children_system
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def worker(args: argparse.Namespace) -> int:
    train = pd.read_pickle(args.train)
    result: dict[str, Any] = {"system": args.worker}
    if args.threads:
        # every system gets the same intra-op threads (the parent also sets OMP/MKL/BLAS)
        import torch
        torch.set_num_threads(args.threads)
        result["threads"] = args.threads
    try:
        if args.worker in OURS:
            gen = _make_ours(args.worker, train, args.epochs, args.seed, args.threads)
        else:
            gen = _make_sdv(args.worker, train, args.epochs, args.seed)
    except _NotAvailable as err:
        result["status"] = f"not available: {err}"
        Path(args.result).write_text(json.dumps(result))
        return NOT_AVAILABLE
    t0, c0, tree0 = time.perf_counter(), time.process_time(), _tree_cpu_s()
    gen.fit(train)
    result["fit_s"] = time.perf_counter() - t0
    result["fit_cpu_s"] = time.process_time() - c0   # all threads; robust to a busy machine
    # with the CPU of child processes (SDV's preprocessing can start worker pools)
    result["fit_tree_cpu_s"] = _tree_cpu_s() - tree0
    t0 = time.perf_counter()
    big = gen.sample(args.sample_rows)
    result["sample_s"] = time.perf_counter() - t0
    result["rows_per_s"] = len(big) / result["sample_s"]
    del big
    # independent synthetic draws of the training size: every metric uses the first, the
    # detection AUC is averaged over all (one draw's AUC moves by about ±0.01)
    pd.to_pickle([gen.sample(len(train)) for _ in range(args.draws)], args.synth)
    result["peak_rss_self_mb"] = _common.peak_rss_self_mb()
    result["status"] = "ok"
    Path(args.result).write_text(json.dumps(result))
    return 0


# -- parent -------------------------------------------------------------------------------

def run_system(system: str, train_path: Path, workdir: Path, n_train: int,
               args: argparse.Namespace) -> tuple[dict[str, Any], list[pd.DataFrame] | None]:
    synth_path, result_path = workdir / f"{system}.synth.pkl", workdir / f"{system}.json"
    log_path = workdir / f"{system}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", system,
           "--train", str(train_path), "--synth", str(synth_path), "--result", str(result_path),
           "--epochs", str(args.epochs), "--seed", str(args.seed),
           "--sample-rows", str(args.sample_rows), "--draws", str(args.draws)]
    env = None
    if args.threads:
        cmd += ["--threads", str(args.threads)]
        env = {**os.environ, **{v: str(args.threads) for v in THREAD_VARS}}
    code, wall, rss = _common.run_measured(cmd, env=env, log_path=log_path)
    if result_path.exists():
        res = json.loads(result_path.read_text())
    else:
        res = {"system": system}
    if code == 0 and res.get("status") == "ok":
        res["peak_rss_mb"] = rss
        res["wall_s"] = wall
        return res, pd.read_pickle(synth_path)
    if code != NOT_AVAILABLE:
        tail = log_path.read_text().strip().splitlines()[-1:] if log_path.exists() else []
        res["status"] = f"failed (exit {code}): {' '.join(tail)[:200]}"
        if args.keep_logs:
            print(log_path.read_text(), file=sys.stderr)
    return res, None


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def _copies(r: dict[str, Any]) -> str:
    if r.get("exact_copies") is None:
        return "–"
    base, upper = r.get("holdout_exact_copy_share"), r.get("holdout_exact_copy_upper")
    rate = "–" if base is None else f"{100 * base:.2f}%"
    if upper is not None:
        rate += f", ≤ {100 * upper:.2f}%"
    return f"{r['exact_copies']} = {100 * r['exact_copy_share']:.2f}% ({rate})"


def _detect(r: dict[str, Any]) -> str:
    aucs = r.get("detect_aucs") or []
    if len(aucs) < 2:
        return _fmt(r.get("detect_auc"), ".3f")
    return f"{np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f}"


def dataset_table(name: str, spec: _common.DatasetSpec, n_train: int, n_hold: int,
                  rows: list[dict[str, Any]]) -> str:
    umetric = _common.utility_metric_name(spec.task)
    head = (f"### {name}\n\n{n_train} train / {n_hold} holdout rows; dropped: "
            f"{', '.join(spec.drop) or 'none'}; target: `{spec.target}` ({spec.task}, "
            f"TSTR/TRTR as {umetric})\n\n")
    cols = ["system", "fit s", "fit CPU s", "fit CPU s (process tree)", "sample rows/s", "peak RSS MB", "col dist ↓",
            "pair diff ↓",
            "detect AUC ↓", f"TSTR {umetric}", f"TRTR {umetric}", "TSTR/TRTR",
            "exact copies (holdout rate, 95% upper)", "DCR share", "MIA AUC"]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['system']} | {r.get('status', '?')} |" + " |" * (len(cols) - 2))
            continue
        cells = [r["system"], _fmt(r.get("fit_s"), ".2f"), _fmt(r.get("fit_cpu_s"), ".2f"),
                 _fmt(r.get("fit_tree_cpu_s"), ".2f"),
                 _fmt(r.get("rows_per_s"), ",.0f"),
                 _fmt(r.get("peak_rss_mb"), ".0f"), _fmt(r.get("col_dist"), ".4f"),
                 _fmt(r.get("pair_diff"), ".4f"), _detect(r),
                 _fmt(r.get("tstr"), ".3f"), _fmt(r.get("trtr"), ".3f"),
                 _fmt(r.get("ratio"), ".3f"), _copies(r),
                 _fmt(r.get("dcr_share"), ".3f"), _fmt(r.get("mia_auc"), ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def _versions() -> str:
    from importlib import metadata
    out = []
    for pkg in ("synthdata", "sdv", "torch", "numpy", "pandas", "scikit-learn"):
        try:
            out.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def header(args: argparse.Namespace, argv: list[str], load_start: str) -> str:
    m = _common.machine_info()
    busy = (" (busy machine: wall times are inflated; fit CPU s is the steadier number)"
            if float(load_start.split(",")[0]) > float(m["nproc"]) else "")
    cmd = " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_tabular.py", *argv])
    threads = (f"; every system pinned to {args.threads} thread(s) (torch.set_num_threads, "
               f"{', '.join(THREAD_VARS)})" if args.threads else "")
    return (f"# Tabular benchmark\n\n"
            f"- command: `{cmd}`\n"
            f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}\n"
            f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}, "
            f"Python {m['python']}; load average (1/5/15 min) {load_start} at start, "
            f"{m['load']} at end{busy}\n"
            f"- versions: {_versions()}\n"
            f"- seeds: split seed {args.seed} (70/30), generator seed {args.seed}, "
            f"metric seed {args.seed}; epochs {args.epochs} (vae, ctgan, sdv_tvae, sdv_ctgan); "
            f"sampling speed timed on {args.sample_rows:,} rows"
            f"{threads}\n"
            f"- metrics (see benchmarks/_common.py): col dist = mean KS (numeric) / TV "
            f"(discrete, missing as a category) vs real train; pair diff = mean |Δ| of pairwise "
            f"association (|Pearson|, Cramér's V, correlation ratio); detect AUC = "
            f"HistGradientBoosting real holdout vs as many synthetic rows, 3-fold ROC AUC, "
            f"mean ± sd over {args.draws} independent synthetic draws (every other metric "
            f"uses the first draw); "
            f"TSTR/TRTR = HistGradientBoosting trained on synthetic / real train, scored on "
            f"the real holdout. fit s is wall time, fit CPU s the process CPU time over all its "
            f"threads (process tree: plus child processes, e.g. worker pools). Peak RSS "
            f"covers the worker's process tree (fit + sampling). Row `real` "
            f"scores the real train rows as if synthetic (the noise floor). Leakage (synthdata's "
            f"own evaluation): exact copies of train rows with the holdout's natural copy "
            f"rate and its one-sided 95% Clopper-Pearson upper bound, DCR share (synthetic "
            f"rows closer to train than to holdout, 0.5 ideal), MIA "
            f"AUC (best of three membership attacks, 0.5 = no leak).\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=DEFAULT_DATASETS)
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rows", type=int, default=100_000)
    p.add_argument("--draws", type=int, default=3,
                   help="synthetic draws per system; detection AUC is their mean (default 3)")
    p.add_argument("--out", default="benchmarks/results/tabular.md")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with manifest.json (default ../shared/datasets)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, 10k sample rows")
    p.add_argument("--keep-logs", action="store_true", help="print a failed worker's log")
    p.add_argument("--threads", type=int, default=None,
                   help="pin every system to this many threads (torch, OpenMP, MKL, OpenBLAS); "
                        "default: each system's own choice")
    # worker mode (internal)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--train", help=argparse.SUPPRESS)
    p.add_argument("--synth", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.epochs = min(args.epochs, 2)
        args.sample_rows = min(args.sample_rows, 10_000)

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL_SYSTEMS]
    if unknown:
        p.error(f"unknown system(s) {unknown}; choose from {list(ALL_SYSTEMS)}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    sections = []
    load_start = _common.machine_info()["load"]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in datasets:
            spec = _common.dataset_spec(name, args.data_dir)
            df = _common.load_dataset(spec)
            train, holdout = _common.split(df, seed=args.seed)
            workdir = Path(tmp) / name
            workdir.mkdir()
            train_path = workdir / "train.pkl"
            train.to_pickle(train_path)
            rows, trtr = [], None
            for system in systems:
                print(f"[{name}] {system} ...", file=sys.stderr, flush=True)
                if system == REFERENCE:
                    res: dict[str, Any] = {"system": REFERENCE, "status": "ok"}
                    synths: list[pd.DataFrame] | None = [train]
                else:
                    res, synths = run_system(system, train_path, workdir, len(train), args)
                if synths is not None:
                    t0 = time.perf_counter()
                    res.update(_common.evaluate(train, holdout, synths[0], target=spec.target,
                                                task=spec.task, seed=args.seed, trtr=trtr))
                    aucs = [res["detect_auc"], *(_common.draw_scores(
                        train, holdout, s, seed=args.seed)["detect_auc"] for s in synths[1:])]
                    res["detect_aucs"] = aucs
                    res["detect_auc"] = float(np.mean(aucs))
                    trtr = res.get("trtr", trtr)
                    res["eval_s"] = time.perf_counter() - t0
                print(f"[{name}] {system}: " + json.dumps(
                    {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}),
                      file=sys.stderr, flush=True)
                rows.append(res)
            table = dataset_table(name, spec, len(train), len(holdout), rows)
            print(table, flush=True)
            sections.append(table)
    text = header(args, argv, load_start) + "\n" + "\n".join(sections)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
