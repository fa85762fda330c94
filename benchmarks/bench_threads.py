"""Busy machines (issue 24): one fit alone vs two fits at once, at each thread setting.

    .venv/bin/python benchmarks/bench_threads.py [--vae-epochs 20] [--repeat 1]

Each fit runs in its own process (``--worker``) on the bundled flchain table (futime and
chapter dropped): gmm with its defaults and vae for ``--vae-epochs`` epochs. "alone": one
process; "two at once": two identical processes started together (the mean and the slower of
the two are shown). ``threads`` is the generator's parameter: ``default`` (the cores available
to the process: affinity and cgroup quota) or a number. The load average (1 min, from
/proc/loadavg) before each case is printed beside it: other work on the machine counts.
Writes benchmarks/results/threads.md and threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def worker(kind: str, threads: str, vae_epochs: int) -> None:
    import pandas as pd

    import synthdata as sd
    from synthdata._threads import available_cores

    df = pd.read_csv(ROOT / "data" / "flchain.csv").drop(columns=["futime", "chapter"])
    schema = sd.Schema.infer(df)
    params: dict[str, Any] = {"epochs": vae_epochs} if kind == "vae" else {}
    if threads != "default":
        params["threads"] = int(threads)
    gen = sd.make_generator(kind, schema, seed=0, **params)
    start, cpu = time.perf_counter(), time.process_time()
    gen.fit(df)
    fit, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    gen.sample(len(df))
    sample = time.perf_counter() - start
    print(json.dumps({"fit_s": fit, "fit_cpu_s": cpu, "sample_s": sample,
                      "cores": available_cores()}))


def _run(kind: str, threads: str, copies: int, vae_epochs: int) -> list[dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--worker", kind, threads, "--vae-epochs", str(vae_epochs)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {' '.join(cmd)}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "THREADS"))
    ap.add_argument("--vae-epochs", type=int, default=20)
    ap.add_argument("--threads", default="default,1")
    ap.add_argument("--kinds", default="gmm,vae")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.vae_epochs)
        return
    rows = []
    for kind in args.kinds.split(","):
        for threads in args.threads.split(","):
            for copies in (1, 2):
                before = load()
                res = _run(kind, threads, copies, args.vae_epochs)
                fits = [r["fit_s"] for r in res]
                row = {"kind": kind, "threads": threads, "copies": copies, "load_before": before,
                       "fit_mean_s": sum(fits) / len(fits), "fit_max_s": max(fits),
                       "fit_cpu_mean_s": sum(r["fit_cpu_s"] for r in res) / len(res),
                       "sample_mean_s": sum(r["sample_s"] for r in res) / len(res),
                       "cores": res[0]["cores"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(rows, indent=1))
    lines = ["# Busy machines: one fit alone vs two at once (issue 24)", "",
             f"Command: `python benchmarks/bench_threads.py {' '.join(sys.argv[1:])}`. flchain "
             f"(7874 rows, futime/chapter dropped), gmm defaults, vae {args.vae_epochs} "
             "epochs; each fit in its own process; `default` = the cores available to the "
             f"process ({rows[0]['cores']} here: affinity and cgroup quota). Measured on a "
             "shared 2-core machine with other helpers' jobs running: the load average "
             "before each case is shown, and timings vary with it.", "",
             "CPU s: the fit's process CPU time (all its threads): what the fit costs the "
             "machine, less sensitive to the other jobs than the wall clock.", "",
             "| generator | threads | fits at once | load before | fit s (mean) | fit s (slower) "
             "| fit CPU s (mean) | sample s (mean) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['threads']} | {r['copies']} | {r['load_before']:.1f} "
                     f"| {r['fit_mean_s']:.2f} | {r['fit_max_s']:.2f} | "
                     f"{r['fit_cpu_mean_s']:.2f} | {r['sample_mean_s']:.2f} |")
    (RESULTS / "threads.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
