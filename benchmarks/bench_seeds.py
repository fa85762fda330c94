"""Seed spread: detection AUC over several fits and draws of our generators, side by side.

A single fit and a single synthetic draw move the detection AUC by about ±0.01, which is as
large as the gap between the best generators on some datasets. This runs each generator
with ``--fit-seeds`` generator seeds and ``--draws`` synthetic draws of the training size per
fit (sample seeds 10, 11, ...), all on the same 70/30 split (seed 0, leak columns dropped),
and reports the mean ± sd over all fits × draws, the mean of each fit, column distance
and fit seconds — with ``benchmarks/_common`` (the tabular benchmark's functions).

Run from the product environment (ours only, default parameters)::

    .venv/bin/python benchmarks/bench_seeds.py --datasets flchain --systems gmm,ddpm \\
        --out benchmarks/results/seeds.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402


def run(name: str, kind: str, fit_seeds: int, draws: int,
        data_dir: Path | None) -> dict[str, Any]:
    import synthdata as sd

    spec = _common.dataset_spec(name, data_dir)
    train, holdout = _common.split(_common.load_dataset(spec), seed=0)
    per_fit, dists, fit_s = [], [], []
    for seed in range(fit_seeds):
        gen = sd.make_generator(kind, sd.Schema.infer(train), seed=seed)
        t0 = time.perf_counter()
        gen.fit(train)
        fit_s.append(time.perf_counter() - t0)
        aucs = []
        for k in range(draws):
            synth = gen.sample(len(train), seed=10 + k)
            scores = _common.draw_scores(train, holdout, synth, seed=0)
            aucs.append(scores["detect_auc"])
            dists.append(scores["col_dist"])
        per_fit.append(aucs)
        print(f"[{name}/{kind}] seed {seed}: {[round(a, 3) for a in aucs]} "
              f"({fit_s[-1]:.1f} s)", file=sys.stderr, flush=True)
    return {"dataset": name, "system": kind, "aucs": per_fit, "col_dist": float(np.mean(dists)),
            "fit_s": float(np.mean(fit_s))}


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| dataset | system | detect AUC ↓ (all fits × draws) | per-fit means | col dist ↓ | fit s |",
           "|---|---|---:|---|---:|---:|"]
    for r in rows:
        flat = np.concatenate([np.asarray(a) for a in r["aucs"]])
        fits = ", ".join(f"{np.mean(a):.3f}" for a in r["aucs"])
        spread = f" ± {flat.std(ddof=1):.3f}" if len(flat) > 1 else ""
        out.append(f"| {r['dataset']} | {r['system']} | {flat.mean():.3f}{spread} "
                   f"(n = {len(flat)}) | {fits} | {r['col_dist']:.4f} | {r['fit_s']:.1f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="flchain")
    p.add_argument("--systems", default="gmm,ddpm")
    p.add_argument("--fit-seeds", type=int, default=3)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = p.parse_args(argv)
    load_start = _common.machine_info()["load"]
    rows = [run(name.strip(), kind.strip(), args.fit_seeds, args.draws, args.data_dir)
            for name in args.datasets.split(",") if name.strip()
            for kind in args.systems.split(",") if kind.strip()]
    _common.write_report(
        "Seed spread of the detection AUC", "bench_seeds.py", argv, load_start,
        f"default parameters; generator seeds 0..{args.fit_seeds - 1}, {args.draws} draws of "
        f"the training size per fit (sample seeds 10..); detection AUC = HistGradientBoosting "
        f"real holdout vs synthetic, 3-fold ROC AUC (as in tabular_all.md)", table(rows),
        args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
