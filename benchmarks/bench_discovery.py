"""What constraint discovery proposes on each shared dataset, and whether the holdout keeps it.

Discovery runs on a seeded 70% split of each table; every proposed rule is then checked on the
other 30% (a rule the holdout breaks is a false rule). Results: ``benchmarks/results/discovery.md``.

Usage::

    .venv/bin/python benchmarks/bench_discovery.py [--datasets flchain,pbc] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from synthdata.constraints.enforce import ConstraintEnforcer
from synthdata.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
DATASETS = ("flchain", "rotterdam", "telco_churn", "nmes1988", "covid_testing", "pbc", "pbcseq",
            "nafld1", "nafld3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    lines = ["# Constraint discovery on the shared datasets", "",
             "Discovery on a seeded 70% split (seed 0), each rule checked on the other 30%.",
             "Command: `.venv/bin/python benchmarks/bench_discovery.py`", "",
             "| dataset | rows x cols | seconds | proposed rule | holdout rows breaking it |",
             "|---|---|---:|---|---:|"]
    for name in args.datasets.split(","):
        path = SHARED / f"{name}.csv"
        if not path.exists():
            print(f"skip {name}: {path} not found")
            continue
        df = pd.read_csv(path)
        idx = np.random.default_rng(0).permutation(len(df))
        cut = int(len(df) * 0.7)
        train, hold = df.iloc[idx[:cut]].reset_index(drop=True), df.iloc[idx[cut:]].reset_index(drop=True)
        start = time.perf_counter()
        schema = Schema.infer(train, name=name, discover_constraints=True)
        seconds = time.perf_counter() - start
        rules = list(schema.proposed_constraints)
        shape = f"{len(df)} x {df.shape[1]}"
        if not rules:
            lines.append(f"| {name} | {shape} | {seconds:.1f} | (none) | |")
        for rule in rules:
            sub = Schema(columns=schema.columns, name=name, constraints=(rule,))
            broken = ConstraintEnforcer(sub).learn(train).violation_counts(hold)[rule.describe()]
            lines.append(f"| {name} | {shape} | {seconds:.1f} | `{rule.describe()}` | {broken} |")
        print(f"{name}: {len(rules)} rule(s) in {seconds:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "discovery.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
