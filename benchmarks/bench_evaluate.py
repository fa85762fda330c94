"""Time evaluate() on a 50,000 x 40 table (train, holdout and synthetic of that size).

The table is built from covid_testing (15,524 x 17): rows are resampled with replacement
and a second, independently resampled block of 23 columns (suffix ``_b``) widens it to 40
columns; the 150,000 rows are split into train / holdout / "synthetic". Numeric columns get
a little seeded noise so the three parts are not row-for-row copies.

Usage: .venv/bin/python benchmarks/bench_evaluate.py [--rows 50000] [--cols 40]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA = [Path("data/covid_testing.csv"), Path("/work/shared/datasets/covid_testing.csv")]


def build(rows: int, cols: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    path = next((p for p in DATA if p.exists()), None)
    if path is None:
        raise SystemExit("covid_testing.csv not found in data/ or /work/shared/datasets/")
    base = pd.read_csv(path)
    rng = np.random.default_rng(seed)
    blocks, width = [], 0
    i = 0
    while width < cols:
        take = base.iloc[rng.integers(len(base), size=3 * rows)].reset_index(drop=True)
        take = take.iloc[:, : cols - width]
        if i:
            take.columns = [f"{c}_b{i}" for c in take.columns]
        for c in take.columns:
            if pd.api.types.is_float_dtype(take[c]):
                take[c] = take[c] + rng.normal(0, 0.01, len(take)) * take[c].std()
        blocks.append(take)
        width += take.shape[1]
        i += 1
    table = pd.concat(blocks, axis=1)
    return (table.iloc[:rows].reset_index(drop=True), table.iloc[rows:2 * rows].reset_index(drop=True),
            table.iloc[2 * rows:].reset_index(drop=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--cols", type=int, default=40)
    parser.add_argument("--target", default="result")
    args = parser.parse_args()
    from synthdata.evaluate import evaluate

    train, holdout, synth = build(args.rows, args.cols)
    print(f"table: {train.shape} x3 (train, holdout, synthetic); cores: {os.cpu_count()}")
    start = time.perf_counter()
    report = evaluate(train, synth, holdout=holdout, target=args.target, seed=0,
                      progress=lambda step, done, total: print(f"  [{done}/{total}] {step}",
                                                                flush=True))
    total = time.perf_counter() - start
    for step, seconds in report.meta["timings"].items():
        print(f"  {step:24s} {seconds:7.2f} s")
    start = time.perf_counter()
    report.to_html()
    html_s = time.perf_counter() - start
    print(f"evaluate: {total:.1f} s (target < 90 s); to_html: {html_s:.1f} s")
    print({k: round(v, 3) for k, v in report.metrics.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
