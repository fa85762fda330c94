"""Wide categorical columns before/after (issue 24): one-hot layers vs embeddings.

Categorical columns with more than ``wide_levels`` levels (default 50) enter the networks of
vae, ctgan and ddpm through a learned ``wide_dim``-unit embedding and leave them through
low-rank logits (``synthdata/models/_torch.py``: ``WideEmbed``, ``WideHead``);
``wide_levels=None`` keeps plain one-hot layers, the layout of earlier versions. For each
generator both variants fit the same training rows with the same seed on one thread,
alternating (one-hot, embedded, one-hot, ...) so that a machine whose load drifts treats
both alike. Reported: fit wall and CPU seconds, sampling rows/s, network parameters, and
for one synthetic draw of the training size the detection AUC, the mean column distance and
the total-variation distance of every column with more than ``wide_levels`` levels
(``benchmarks/_common``, the tabular benchmark's metrics).

Run from the product environment (no peers needed), after building the wide table::

    python benchmarks/wide_table.py --out build/wide_tables
    python benchmarks/bench_wide_embed.py --data-dir build/wide_tables \\
        --epochs vae=30,ctgan=30,ddpm=100 --out benchmarks/results/wide_embed.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import pandas as pd  # noqa: E402

VARIANTS = {"one-hot": None, "embedded": 50}


def run_one(kind: str, variant: str, train: pd.DataFrame, holdout: pd.DataFrame, epochs: int,
            seed: int) -> dict[str, Any]:
    import synthdata as sd

    levels = VARIANTS[variant]
    schema = sd.Schema.infer(train)
    if kind == "ddpm":  # ddpm's threshold is a class setting, not a constructor parameter
        gen = sd.make_generator(kind, schema, seed=seed, epochs=epochs, threads=1)
        gen.wide_levels = levels
    else:
        gen = sd.make_generator(kind, schema, seed=seed, epochs=epochs, threads=1,
                                wide_levels=levels)
    timed = _common.timed_fit_sample(gen, train, seed)
    load, fit_s, fit_cpu, synth, rate = (timed[k] for k in ("load", "fit_s", "fit_cpu", "synth", "rate"))
    net = getattr(gen, "net_", None) or gen.generator_
    wide = [c for c in train.columns if train[c].nunique(dropna=False) > 50]
    infos = _common.column_infos(train)
    dists = _common.column_distances(_common.encode(train, infos), _common.encode(synth, infos),
                                     infos)
    scores = _common.draw_scores(train, holdout, synth, seed=seed)
    return {"generator": kind, "variant": variant, "epochs": epochs, "fit_s": fit_s,
            "fit_cpu_s": fit_cpu, "rows_per_s": rate,
            "params": sum(p.numel() for p in net.parameters()), "load": load,
            "wide_tv": {c: dists[c] for c in wide}, **scores}


def table(rows: list[dict[str, Any]]) -> str:
    wide = list(rows[0]["wide_tv"]) if rows else []
    head = ("| generator | variant | epochs | parameters | fit s | fit CPU s | rows/s | "
            "detect AUC ↓ | col dist ↓ | " + " | ".join(f"TV {c} ↓" for c in wide)
            + " | load (1 min) |")
    out = [head, "|---|---|" + "---:|" * (8 + len(wide))]
    for r in rows:
        out.append(f"| {r['generator']} | {r['variant']} | {r['epochs']} | {r['params']:,} | "
                   f"{r['fit_s']:.1f} | {r['fit_cpu_s']:.1f} | {r['rows_per_s']:,.0f} | "
                   f"{r['detect_auc']:.3f} | {r['col_dist']:.4f} | "
                   + " | ".join(f"{r['wide_tv'][c]:.4f}" for c in wide)
                   + f" | {r['load']:.1f} |")
    return "\n".join(out) + "\n"


def _epochs(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        kind, _, n = part.partition("=")
        out[kind.strip()] = int(n)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="covid_wide")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--epochs", default="vae=30,ctgan=30,ddpm=100",
                   help="generator=epochs, comma-separated (the generators to run)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    spec = _common.dataset_spec(args.dataset, args.data_dir)
    df = _common.load_dataset(spec)
    train, holdout = _common.split(df, seed=args.seed)
    load_start = _common.machine_info()["load"]
    rows = []
    for kind, epochs in _epochs(args.epochs).items():
        for _ in range(args.repeats):
            for variant in VARIANTS:
                r = run_one(kind, variant, train, holdout, epochs, args.seed)
                print(f"{kind}/{variant}: " + ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
                      file=sys.stderr, flush=True)
                rows.append(r)
    notes = (f"dataset {args.dataset}: {len(train)} train / {len(holdout)} holdout rows (split "
             f"seed {args.seed}), dropped {', '.join(spec.drop) or 'none'}; generator seed "
             f"{args.seed}, sample seed {args.seed + 1}; one thread per fit (threads=1); "
             "one-hot = wide_levels=None, embedded = wide_levels=50, wide_dim=16; shared "
             "machine: wall times inflated, CPU s steadier")
    _common.write_report("Wide categorical columns: one-hot layers vs embeddings",
                         "bench_wide_embed.py", argv, load_start, notes, table(rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
