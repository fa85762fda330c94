"""Per-group fidelity and utility (issue 23): is the worst group's gap close to the overall one?

For each dataset, sensitive column and generator: overall shapes and TSTR ROC AUC, and per
group (synthdata.evaluate.groups) the within-group shapes and TSTR/TRTR AUC on the holdout.
The target of the issue: worst-group fidelity gap (1 - worst_group_shapes) no larger than the
overall gap (1 - shapes) + 0.05, for gmm and ddpm.

    python benchmarks/bench_groups.py [--generators gmm ddpm vae ctgan] [--epochs 30]

Writes benchmarks/results/groups.md and groups.json. Needs ../shared/datasets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import synthdata as sd  # noqa: E402
from synthdata.evaluate import evaluate  # noqa: E402
from synthdata.evaluate.groups import group_report  # noqa: E402
from synthdata.schema.model import Schema  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
CASES = [  # file, target, sensitive columns, columns dropped (ids and leaks)
    ("flchain.csv", "death", ["sex"], ["futime", "chapter"]),
    ("telco_churn.csv", "churn", ["senior_citizen", "female"], []),
    ("nafld1.csv", "status", ["male"], ["id", "case.id", "futime"]),
]


def run(generators: list[str], epochs: int, seed: int) -> list[dict]:
    rows = []
    for file, target, sensitive, drop in CASES:
        df = pd.read_csv(SHARED / file).drop(columns=drop)
        train = df.sample(frac=0.7, random_state=seed)
        holdout = df.drop(train.index).reset_index(drop=True)
        train = train.reset_index(drop=True)
        over = {c: {"kind": "categorical"} for c in [target, *sensitive]}
        schema = Schema.infer(train).with_overrides(
            {"columns": [{"name": c, **v} for c, v in over.items()]})
        for kind in generators:
            params = {} if kind == "gmm" else {"epochs": epochs}
            t0 = time.perf_counter()
            gen = sd.make_generator(kind, schema, seed=seed, **params).fit(train)
            synth = gen.sample(len(train), seed=seed)
            fit_s = time.perf_counter() - t0
            overall = evaluate(train, synth, holdout=holdout, schema=schema, target=target,
                               seed=seed, sections=("fidelity",)).metrics
            groups = group_report(train, synth, holdout=holdout, schema=schema,
                                  sensitive=sensitive, target=target, seed=seed,
                                  detection=False)
            m = groups["metrics"]
            per_group = {f"{c}={g['group']}": {k: g.get(k) for k in
                                                ("shapes", "tstr_auc", "trtr_auc",
                                                 "share_difference")}
                         for c, e in groups["columns"].items() for g in e["groups"]}
            row = {"dataset": file.removesuffix(".csv"), "generator": kind,
                   "sensitive": sensitive, "fit_sample_s": round(fit_s, 1),
                   "shapes": overall["shapes"], "tstr_auc": overall["tstr_auc"],
                   "trtr_auc": overall["trtr_auc"],
                   "worst_group_shapes": m["worst_group_shapes"],
                   "worst_group": groups["worst_group"],
                   "tstr_worst_group_ratio": m["tstr_worst_group_ratio"],
                   "tstr_dp_difference": m["tstr_dp_difference"],
                   "trtr_dp_difference": m["trtr_dp_difference"],
                   "tstr_eo_difference": m["tstr_eo_difference"],
                   "trtr_eo_difference": m["trtr_eo_difference"],
                   "groups": per_group}
            row["overall_gap"] = 1 - row["shapes"]
            row["worst_group_gap"] = 1 - row["worst_group_shapes"]
            row["target_met"] = row["worst_group_gap"] <= row["overall_gap"] + 0.05
            rows.append(row)
            print(f"{row['dataset']:12s} {kind:6s} shapes {row['shapes']:.3f} worst group "
                  f"{row['worst_group_shapes']:.3f} ({groups['worst_group']['group']}) "
                  f"tstr {row['tstr_auc']:.3f} worst-group ratio "
                  f"{row['tstr_worst_group_ratio']:.3f}", flush=True)
    return rows


def write(rows: list[dict], out: Path, argv: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "groups.json").write_text(json.dumps(rows, indent=1, default=str))
    lines = ["# Per-group fidelity and utility (issue 23)", "",
             f"Command: `python benchmarks/bench_groups.py {' '.join(argv)}` (seed 0, 70/30 "
             "split, per-group detection off). Gap = 1 - shapes; target: worst-group gap <= "
             "overall gap + 0.05.", "",
             "| dataset | generator | shapes | worst group | its shapes | gap / worst gap | "
             "target | TSTR | TRTR | worst-group TSTR/TRTR | DP diff TSTR / TRTR | "
             "EO diff TSTR / TRTR |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(v: object) -> str:
        return "-" if v is None else f"{v:.3f}"
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['generator']} | {f(r['shapes'])} | "
            f"{r['worst_group']['group']} | {f(r['worst_group_shapes'])} | "
            f"{f(r['overall_gap'])} / {f(r['worst_group_gap'])} | "
            f"{'met' if r['target_met'] else 'MISSED'} | {f(r['tstr_auc'])} | "
            f"{f(r['trtr_auc'])} | {f(r['tstr_worst_group_ratio'])} | "
            f"{f(r['tstr_dp_difference'])} / {f(r['trtr_dp_difference'])} | "
            f"{f(r['tstr_eo_difference'])} / {f(r['trtr_eo_difference'])} |")
    (out / "groups.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generators", nargs="+", default=["gmm", "ddpm", "vae", "ctgan"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"bench_groups: {SHARED} is missing (the shared datasets)")
    write(run(args.generators, args.epochs, args.seed), args.out, sys.argv[1:])


if __name__ == "__main__":
    main()
