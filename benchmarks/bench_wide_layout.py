"""Span layout before/after (issue 24): one padded block vs width groups, same code otherwise.

``SpanPlan`` splits the softmax spans into width groups (``_torch.width_groups``); setting
``_torch.GROUP_COST_SLOTS`` huge makes a single group, which is the layout of earlier
versions (every span padded to the widest one). For each generator the two layouts fit the
same data with the same seed, alternating (padded, grouped, padded, grouped, ...) so that a
machine whose load drifts treats both alike; reported: fit wall and CPU seconds, sampling
rows/s, and the detection AUC and mean column distance of one synthetic draw of the
training size (``benchmarks/_common``, the tabular benchmark's metrics).

Run from the product environment (no peers needed), after building the wide table::

    python benchmarks/wide_table.py --out build/wide_tables
    python benchmarks/bench_wide_layout.py --data-dir build/wide_tables --dataset covid_wide \\
        --generators vae,ctgan --epochs 20 --out benchmarks/results/wide_layout.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

LAYOUTS = ("padded", "grouped")


def _widths(train: Any) -> list[int]:
    """Softmax span widths of the table's layout (the transformer the generators use)."""
    import synthdata as sd
    from synthdata.transform.columns import Activation
    from synthdata.transform.table import TableTransformer

    tt = TableTransformer(sd.Schema.infer(train), numeric="quantile").fit(train)
    return [s.width for s in tt.layout_ if s.kind == Activation.SOFTMAX]


def run_one(kind: str, layout: str, train: Any, holdout: Any, epochs: int,
            seed: int) -> dict[str, Any]:
    import synthdata as sd
    from synthdata.models import _torch

    default_cost = _torch.GROUP_COST_SLOTS
    _torch.GROUP_COST_SLOTS = 10**12 if layout == "padded" else default_cost
    try:
        params = {"epochs": epochs}
        gen = sd.make_generator(kind, sd.Schema.infer(train), seed=seed, **params)
        timed = _common.timed_fit_sample(gen, train, seed)
        load, fit_s, fit_cpu, synth, rate = (timed[k] for k in ("load", "fit_s", "fit_cpu", "synth", "rate"))
        plan = gen.plan_
    finally:
        _torch.GROUP_COST_SLOTS = default_cost
    scores = _common.draw_scores(train, holdout, synth, seed=seed)
    return {"generator": kind, "layout": layout, "fit_s": fit_s, "fit_cpu_s": fit_cpu,
            "rows_per_s": rate, "groups": len(plan.groups), "slots": plan.padded_slots,
            "levels": int(plan.widths.sum()), "load": load, **scores}


def micro(widths: list[int], batch: int, reps: int) -> list[dict[str, Any]]:
    """Span operations alone (one thread, best of ``reps``): the per-batch work that the
    layout changes, without the matmuls that it does not."""
    import torch

    from synthdata.models import _torch
    from synthdata.transform.columns import Activation, Span, SpanRole

    layout = [Span(f"c{i}", Activation.SOFTMAX, w, SpanRole.CATEGORY) for i, w in enumerate(widths)]
    default_cost = _torch.GROUP_COST_SLOTS
    out = []
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for layout_name in (*LAYOUTS, *LAYOUTS):
            _torch.GROUP_COST_SLOTS = 10**12 if layout_name == "padded" else default_cost
            plan = _torch.SpanPlan(layout)
            gen = torch.Generator().manual_seed(0)
            x = torch.randn((batch, plan.n_features), generator=gen, requires_grad=True)
            codes = torch.stack([torch.randint(w, (batch,), generator=gen) for w in widths], 1)
            ops = {"cross-entropy fwd+bwd": lambda: plan.cross_entropy(x, codes).sum().backward(),
                   "Gumbel-softmax fwd+bwd": lambda: plan.activate(
                       x, tau=0.2, generator=gen).sum().backward(),
                   "sample_codes": lambda: plan.sample_codes(x.detach(), gen)}
            row: dict[str, Any] = {"layout": layout_name, "groups": len(plan.groups),
                                   "slots": plan.padded_slots}
            for name, op in ops.items():
                best = math.inf
                for _ in range(reps):
                    t0 = time.perf_counter()
                    op()
                    best = min(best, time.perf_counter() - t0)
                row[name] = best * 1e3
            out.append(row)
    finally:
        _torch.GROUP_COST_SLOTS = default_cost
        torch.set_num_threads(previous)
    return out


def micro_table(rows: list[dict[str, Any]], batch: int, reps: int) -> str:
    names = [k for k in rows[0] if k not in ("layout", "groups", "slots")]
    out = [f"Span operations alone, batch {batch}, 1 thread, best of {reps} (ms):\n",
           "| layout | width groups | padded slots | " + " | ".join(names) + " |",
           "|---|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        out.append(f"| {r['layout']} | {r['groups']} | {r['slots']} | "
                   + " | ".join(f"{r[n]:.2f}" for n in names) + " |")
    return "\n".join(out) + "\n"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| generator | layout | width groups | padded slots / real | fit s | fit CPU s | "
            "rows/s | detect AUC ↓ | col dist ↓ | load (1 min) |")
    out = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['generator']} | {r['layout']} | {r['groups']} | "
                   f"{r['slots']} / {r['levels']} | {r['fit_s']:.1f} | {r['fit_cpu_s']:.1f} | "
                   f"{r['rows_per_s']:,.0f} | {r['detect_auc']:.3f} | {r['col_dist']:.4f} | "
                   f"{r['load']:.1f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="covid_wide")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--generators", default="vae,ctgan")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--micro-only", action="store_true",
                   help="only the span-operation timings (no fits)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    spec = _common.dataset_spec(args.dataset, args.data_dir)
    train, holdout = _common.split(_common.load_dataset(spec), seed=args.seed)
    rows = []
    load_start = _common.machine_info()["load"]
    widths = _widths(train)
    micro_rows = micro(widths, 500, 30)
    print(micro_table(micro_rows, 500, 30), file=sys.stderr, flush=True)
    for kind in [] if args.micro_only else [g.strip() for g in args.generators.split(",") if g.strip()]:
        for _ in range(args.repeats):
            for layout in LAYOUTS:
                r = run_one(kind, layout, train, holdout, args.epochs, args.seed)
                print(f"{kind}/{layout}: " + ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
                      file=sys.stderr, flush=True)
                rows.append(r)
    m = _common.machine_info()
    text = (f"# Span layout: one padded block vs width groups\n\n"
            f"- command: `python benchmarks/bench_wide_layout.py {' '.join(argv or sys.argv[1:])}`\n"
            f"- dataset {args.dataset}: {len(train)} train / {len(holdout)} holdout rows "
            f"(split seed {args.seed}); epochs {args.epochs}; generator seed {args.seed}\n"
            f"- machine: {m['nproc']} CPUs, load average {load_start} at start, {m['load']} at "
            f"end (shared machine: wall times inflated, CPU s steadier)\n\n"
            + micro_table(micro_rows, 500, 30) + ("\nFits:\n\n" + table(rows) if rows else ""))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
