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
from typing import Any

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


def run(generators: list[str], epochs: int, seed: int,
        save: Any = None) -> list[dict]:
    rows: list[dict] = []
    for file, target, sensitive, drop in CASES:
        df = pd.read_csv(SHARED / file).drop(columns=drop)
        train = df.sample(frac=0.7, random_state=seed)
        holdout = df.drop(train.index).reset_index(drop=True)
        train = train.reset_index(drop=True)
        over = {c: {"kind": "categorical"} for c in [target, *sensitive]}
        schema = Schema.infer(train).with_overrides(
            {"columns": [{"name": c, **v} for c, v in over.items()]})
        for kind in generators:
            params = {} if kind == "gmm" or not epochs else {"epochs": epochs}
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
            if save is not None:  # the table so far, so a stopped run keeps what it measured
                save(rows)
            print(f"{row['dataset']:12s} {kind:6s} shapes {row['shapes']:.3f} worst group "
                  f"{row['worst_group_shapes']:.3f} ({groups['worst_group']['group']}) "
                  f"tstr {row['tstr_auc']:.3f} worst-group ratio "
                  f"{row['tstr_worst_group_ratio']:.3f}", flush=True)
    return rows


AUGMENT_CASES = [("telco_churn.csv", "churn", "senior_citizen", []),
                 ("nafld1.csv", "status", "male", ["id", "case.id", "futime"]),
                 ("flchain.csv", "death", "sex", ["futime", "chapter"])]


def _auc_by_group(model, x: pd.DataFrame, y: pd.Series, groups: pd.Series) -> dict:
    from sklearn.metrics import roc_auc_score

    p = model.predict_proba(x)[:, 1]
    out = {"overall": float(roc_auc_score(y, p))}
    for g in sorted(groups.unique()):
        m = (groups == g).to_numpy()
        out[str(g)] = float(roc_auc_score(y[m], p[m]))
    return out


def _xy(df: pd.DataFrame, target: str, positive) -> tuple[pd.DataFrame, pd.Series]:
    x = df.drop(columns=[target]).copy()
    for c in x.columns:
        if x[c].dtype == object or str(x[c].dtype).startswith(("str", "string")):
            x[c] = x[c].astype("category")
    return x, (df[target] == positive).astype(int)


def run_augment(seeds: list[int]) -> list[dict]:
    """Real-only vs real + balanced synthetic rows (gmm, sd.augment): ROC AUC per group."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows = []
    for file, target, by, drop in AUGMENT_CASES:
        df = pd.read_csv(SHARED / file).drop(columns=drop)
        positive = df[target].value_counts().idxmin()
        for seed in seeds:
            train = df.sample(frac=0.7, random_state=seed)
            holdout = df.drop(train.index).reset_index(drop=True)
            train = train.reset_index(drop=True)
            schema = Schema.infer(train).with_overrides(
                {"columns": [{"name": c, "kind": "categorical"} for c in (target, by)]})
            gen = sd.make_generator("gmm", schema, seed=seed).fit(train)
            extra = sd.augment(gen, train, by=by, seed=seed)
            cats = {c: pd.CategoricalDtype(sorted(df[c].dropna().astype(str).unique()))
                    for c in df.columns if df[c].dtype == object
                    or str(df[c].dtype).startswith(("str", "string")) if c != target}
            res = {}
            for label, frame in (("real", train), ("real+synthetic",
                                                   pd.concat([train, extra], ignore_index=True))):
                x, y = _xy(frame, target, positive)
                xt, yt = _xy(holdout, target, positive)
                for c, dt in cats.items():
                    x[c], xt[c] = x[c].astype(str).astype(dt), xt[c].astype(str).astype(dt)
                model = HistGradientBoostingClassifier(categorical_features="from_dtype",
                                                       random_state=seed, max_iter=200)
                model.fit(x, y)
                res[label] = _auc_by_group(model, xt, yt, holdout[by])
            groups = [g for g in res["real"] if g != "overall"]
            worst_real = min(res["real"][g] for g in groups)
            worst_aug = min(res["real+synthetic"][g] for g in groups)
            rows.append({"dataset": file.removesuffix(".csv"), "by": by, "seed": seed,
                         "extra_rows": len(extra), "auc": res,
                         "worst_group_real": worst_real, "worst_group_augmented": worst_aug,
                         "overall_real": res["real"]["overall"],
                         "overall_augmented": res["real+synthetic"]["overall"]})
            print(f"{file:16s} {by:15s} seed {seed} +{len(extra)} rows: worst group "
                  f"{worst_real:.4f} -> {worst_aug:.4f}, overall {res['real']['overall']:.4f} "
                  f"-> {res['real+synthetic']['overall']:.4f}", flush=True)
    return rows


def write_augment(rows: list[dict], out: Path, argv: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "augment.json").write_text(json.dumps(rows, indent=1))
    lines = ["# Fair augmentation (issue 23): real-only vs real + synthetic rows for the "
             "smaller groups", "",
             f"Command: `python benchmarks/bench_groups.py {' '.join(argv)}`. gmm fitted on the "
             "70% training split, `sd.augment(gen, train, by=..., target_share='balanced')`, "
             "HistGradientBoosting on real vs real+synthetic, ROC AUC on the real 30% holdout "
             "per group. A measured effect, not a promised one.", "",
             "| dataset | group column | seed | extra rows | worst-group AUC real | "
             "worst-group AUC real+synthetic | overall real | overall real+synthetic |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['by']} | {r['seed']} | {r['extra_rows']} | "
                     f"{r['worst_group_real']:.4f} | {r['worst_group_augmented']:.4f} | "
                     f"{r['overall_real']:.4f} | {r['overall_augmented']:.4f} |")
    (out / "augment.md").write_text("\n".join(lines) + "\n")


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
    ap.add_argument("--epochs", type=int, default=0,
                    help="epochs for the deep generators (default 0: their own defaults)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--augment", action="store_true",
                    help="measure fair augmentation instead (3 seeds, gmm)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"bench_groups: {SHARED} is missing (the shared datasets)")
    if args.augment:
        write_augment(run_augment([0, 1, 2]), args.out, sys.argv[1:])
        return
    write(run(args.generators, args.epochs, args.seed,
              save=lambda rows: write(rows, args.out, sys.argv[1:])), args.out, sys.argv[1:])


if __name__ == "__main__":
    main()
