"""Sampling speed of the sequence generator ("ar"): patient histories per second.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sequence_speed.py [--patients 50000]

Fits the relational synthesizer with ``generator="ar"`` on pbc + pbcseq (few epochs: speed
does not depend on them), then times, best of 3:

- ``sample_histories``: the child model alone, given ``--patients`` synthetic parent rows
  (every history advanced together, one batched step per visit, then the inverse transform);
- ``RelationalSynthesizer.sample(n)``: the whole call (root gmm rows, histories, time order,
  bounds, keys, integrity check).

Target (issue 17): >= 10,000 histories per second on 2 cores. The torch thread count is the
model's fixed ``SAMPLE_THREADS``; the load average is printed with the result (the machine is
shared, so wall-clock numbers under load are lower bounds). Also reported: the process CPU
time (with one torch thread and ``OMP_NUM_THREADS=1``, the time on an idle core).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeat: int = 3) -> tuple[float, float]:
    """Best wall-clock seconds and best process CPU seconds of ``repeat`` calls (on a busy
    machine the CPU time is what the call would take on an idle core of its own)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    return wall, cpu


def main() -> None:
    from synthdata.models import sequence
    from synthdata.relational.schema import MultiTableSchema
    from synthdata.relational.synthesizer import RelationalSynthesizer, count_column

    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    ms = MultiTableSchema.load(ROOT / "schemas" / "pbc.yaml")
    tables = {"pbc": pd.read_csv(ROOT / "data" / "pbc.csv"),
              "pbcseq": pd.read_csv(ROOT / "data" / "pbcseq.csv")}
    rs = RelationalSynthesizer(ms, generator="ar", generator_params={"epochs": args.epochs}, seed=0)
    rs.fit(tables)
    plan = rs.plans_["pbcseq"]
    parents = rs.plans_["pbc"].generator.sample(args.patients, seed=1)
    parents = parents.loc[parents[count_column("pbcseq")] > 0].reset_index(drop=True)
    context = parents[plan.ar_context]
    n_rows = {}

    lengths = parents[count_column("pbcseq")].to_numpy().astype("int64")

    def child_only() -> None:  # as the synthesizer calls it: lengths from the parent rows
        rows, _ = plan.generator.sample_histories(context, min_length=1, lengths=lengths, seed=2)
        n_rows["child"] = len(rows)

    def whole() -> None:
        out = rs.sample(args.patients, seed=3)
        n_rows["whole"] = len(out["pbcseq"])

    load_start = os.getloadavg()[0]
    t_child = best_of(child_only)
    t_whole = best_of(whole)
    load = os.getloadavg()[0]
    lines = [
        "# Sequence generator sampling speed (pbc + pbcseq)", "",
        "Produced by `benchmarks/bench_sequence_speed.py`; measured on a shared 2-core machine "
        f"under load (1-minute load average {load_start:.1f} at the start, {load:.1f} at the "
        f"end; {os.cpu_count()} cores), torch threads = "
        f"{sequence.SAMPLE_THREADS}, best of 3.", "",
        "| what | histories | child rows | wall s | histories / wall s | CPU s | histories / "
        "CPU s |", "|---|---|---|---|---|---|---|",
        f"| `sample_histories` (child model) | {len(context):,} | {n_rows['child']:,} | "
        f"{t_child[0]:.2f} | {len(context) / t_child[0]:,.0f} | {t_child[1]:.2f} | "
        f"{len(context) / t_child[1]:,.0f} |",
        f"| `RelationalSynthesizer.sample` (all tables) | {args.patients:,} patients | "
        f"{n_rows['whole']:,} | {t_whole[0]:.2f} | {args.patients / t_whole[0]:,.0f} | "
        f"{t_whole[1]:.2f} | {args.patients / t_whole[1]:,.0f} |",
    ]
    out = ROOT / "benchmarks" / "results" / "sequence_speed.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
