"""ddpm: fidelity and sampling speed against the number of sampling steps (issue 9).

One fit per dataset and numeric encoding (default parameters, generator seed 0, 70/30
split seed 0, leak columns dropped), then for each step count ``--draws`` synthetic draws
of the training size (sample seeds 10, 11, ...): detection AUC (mean ± sd over the draws)
and mean column distance with ``benchmarks/_common`` (the tabular benchmark's functions),
sampling rows/s (median over the draws, inverse transform included), and the leakage
numbers of the first draw (exact copies, DCR share, MIA AUC).

Run from the product environment (no peers needed)::

    .venv/bin/python benchmarks/bench_ddpm_steps.py --out benchmarks/results/ddpm_steps.md
    .venv/bin/python benchmarks/bench_ddpm_steps.py --encodings quantile,mode --steps 25
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


def run(name: str, encoding: str, steps_list: list[int], draws: int,
        data_dir: Path | None, orders: list[int], model: Path | None = None,
        speed_rows: int = 0) -> list[dict[str, Any]]:
    import synthdata as sd
    from synthdata.models import diffusion

    spec = _common.dataset_spec(name, data_dir)
    train, holdout = _common.split(_common.load_dataset(spec), seed=0)
    if model is not None and model.exists():     # a saved fit of this split (same seed)
        gen = sd.load_generator(model)
        fit_s = float(gen.fit_seconds_ or float("nan"))
    else:
        gen = sd.make_generator("ddpm", sd.Schema.infer(train), seed=0, numeric_encoding=encoding)
        t0 = time.perf_counter()
        gen.fit(train)
        fit_s = time.perf_counter() - t0
        if model is not None:
            gen.save(model)
    rows = []
    default_order = diffusion.SOLVER_ORDER
    for steps in steps_list:
        for order in orders:
            gen.sampling_steps = steps
            diffusion.SOLVER_ORDER = order
            aucs, dists, rates, cpu_rates = [], [], [], []
            first = None
            for k in range(draws):
                t0, c0 = time.perf_counter(), time.process_time()
                synth = gen.sample(len(train), seed=10 + k)
                rates.append(len(train) / (time.perf_counter() - t0))
                cpu_rates.append(len(train) / max(time.process_time() - c0, 1e-9))
                first = synth if first is None else first
                scores = _common.draw_scores(train, holdout, synth, seed=0)
                aucs.append(scores["detect_auc"])
                dists.append(scores["col_dist"])
            big = {}
            if speed_rows:
                t0, c0 = time.perf_counter(), time.process_time()
                gen.sample(speed_rows, seed=99)
                big = {"big_rows_per_s": speed_rows / (time.perf_counter() - t0),
                       "big_rows_per_cpu_s": speed_rows / (time.process_time() - c0)}
            diffusion.SOLVER_ORDER = default_order
            assert first is not None
            leak = _common.leakage(train, holdout, first, seed=0)
            rows.append({"dataset": name, "encoding": encoding, "fit_s": fit_s, "steps": steps,
                         "order": order, "aucs": aucs, "col_dist": float(np.mean(dists)),
                         "rows_per_s": float(np.median(rates)),
                         "rows_per_cpu_s": float(np.median(cpu_rates)), **big, **leak})
            print(f"[{name}/{encoding}] steps {steps} order {order}: AUC {np.mean(aucs):.3f} "
                  f"{[round(a, 3) for a in aucs]}, {np.median(rates):,.0f} rows/s "
                  f"({np.median(cpu_rates):,.0f} per CPU s) {big}",
                  file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    cols = ["dataset", "encoding", "fit s", "sampling steps", "value solver", "rows/s",
            "rows per CPU s", "rows/s (large draw)", "detect AUC ↓", "col dist ↓",
            "exact copies (holdout rate, 95% upper)", "DCR share", "MIA AUC"]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 11) + "|"]
    for r in rows:
        aucs = r["aucs"]
        auc = f"{np.mean(aucs):.3f}" + (f" ± {np.std(aucs, ddof=1):.3f}" if len(aucs) > 1 else "")
        copies = (f"{r['exact_copies']} = {100 * r['exact_copy_share']:.2f}% "
                  f"({100 * r['holdout_exact_copy_share']:.2f}%, "
                  f"≤ {100 * r['holdout_exact_copy_upper']:.2f}%)")
        solver = {1: "DDIM", 2: "DPM-Solver++(2M)"}.get(r["order"], str(r["order"]))
        big = f"{r['big_rows_per_s']:,.0f}" if "big_rows_per_s" in r else "–"
        out.append(f"| {r['dataset']} | {r['encoding']} | {r['fit_s']:.1f} | {r['steps']} | "
                   f"{solver} | {r['rows_per_s']:,.0f} | {r['rows_per_cpu_s']:,.0f} | {big} | "
                   f"{auc} | {r['col_dist']:.4f} | {copies} | "
                   f"{r['dcr_share']:.3f} | {r['mia_auc']:.3f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="flchain")
    p.add_argument("--encodings", default="quantile", help="comma list of quantile, mode")
    p.add_argument("--steps", default="10,25,50,100,1000")
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--orders", default="2",
                   help="value solver orders to compare: 1 = DDIM, 2 = DPM-Solver++(2M)")
    p.add_argument("--model", type=Path, default=None,
                   help="saved fit to reuse (written after the fit when missing)")
    p.add_argument("--speed-rows", type=int, default=0,
                   help="also time one draw of this many rows per setting")
    p.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = p.parse_args(argv)
    orders = [int(o) for o in args.orders.split(",") if o.strip()]
    steps_list = [int(s) for s in args.steps.split(",") if s.strip()]
    load_start = _common.machine_info()["load"]
    rows: list[dict[str, Any]] = []
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        for encoding in [e.strip() for e in args.encodings.split(",") if e.strip()]:
            rows.extend(run(name, encoding, steps_list, args.draws, args.data_dir, orders,
                            args.model, args.speed_rows))
    _common.write_report(
        "ddpm: sampling steps vs fidelity and speed", "bench_ddpm_steps.py", argv, load_start,
        f"one fit per row group (default parameters, seed 0, 70/30 split seed 0, leak columns "
        f"dropped); {args.draws} draws of the training size per step count (sample seeds "
        f"10..): detection AUC mean ± sd, column distance mean, rows/s median (inverse "
        f"transform included; per CPU s: rows over the process CPU time, steadier on a busy "
        f"machine); leakage on the first draw", table(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
