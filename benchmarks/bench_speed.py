"""Speed checks that used to be tempting as timed unit tests, printed side by side.

    .venv/bin/python benchmarks/bench_speed.py

Targets (issues 3, 6, 10): transforming 100k x 20 takes seconds; the cheap evaluation path
on flchain well under a second; constraint discovery on 50k x 50 under 10 s; sampling with
constraints within 2x of without.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import synthdata as sd
from synthdata.evaluate import evaluate
from synthdata.transform import TableTransformer

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    n = 100_000
    cols = {f"c{i}": rng.lognormal(size=n) for i in range(10)}
    cols |= {f"k{i}": rng.choice(["a", "b", "c", "d"], size=n) for i in range(10)}
    wide = pd.DataFrame(cols)
    schema = sd.Schema.infer(wide)
    for numeric in ("quantile", "mode"):
        def round_trip(numeric=numeric):
            tt = TableTransformer(schema, numeric=numeric).fit(wide)
            tt.inverse_transform(tt.transform(wide))
        rows.append((f"transform fit+transform+inverse 100k x 20 ({numeric})", timed(round_trip, 1), "seconds"))

    flchain = pd.read_csv(ROOT / "data" / "flchain.csv")
    holdout = flchain.sample(2000, random_state=1)
    evaluate(flchain, flchain, sections=("fidelity_basic",))  # warm imports
    rows.append(("evaluate fidelity_basic, flchain",
                 timed(lambda: evaluate(flchain, holdout, sections=("fidelity_basic",))), "< 1 s"))

    m = 50_000
    cols = {f"x{i}": rng.normal(size=m).round(3) for i in range(30)}
    cols |= {f"c{i}": rng.choice(list("abcde"), size=m) for i in range(15)}
    cols |= {f"k{i}": rng.integers(0, 1000, size=m) for i in range(5)}
    table = pd.DataFrame(cols)
    rows.append(("schema infer + constraint discovery, 50k x 50",
                 timed(lambda: sd.Schema.infer(table, discover_constraints=True), 1), "< 10 s"))

    base = sd.Schema.infer(flchain)
    from synthdata.schema.model import load_yaml

    ruled_schema = base.with_overrides(load_yaml(ROOT / "schemas" / "flchain.yaml"))
    plain = sd.make_generator("gmm", base, seed=0).fit(flchain)
    ruled = sd.make_generator("gmm", ruled_schema, seed=0).fit(flchain)
    t_plain = timed(lambda: plain.sample(100_000), 5)
    t_ruled = timed(lambda: ruled.sample(100_000), 5)
    rows.append(("gmm sample 100k rows, no constraints", t_plain, f"{100_000 / t_plain:,.0f} rows/s"))
    rows.append(("gmm sample 100k rows, flchain constraints", t_ruled,
                 f"ratio {t_ruled / t_plain:.2f} (target < 2)"))

    print(f"load average: {os.getloadavg()}")
    print("| measurement | best seconds | note |\n|---|---:|---|")
    for name, secs, note in rows:
        print(f"| {name} | {secs:.3f} | {note} |")


if __name__ == "__main__":
    main()
