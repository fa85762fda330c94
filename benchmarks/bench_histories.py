"""Whole-patient detection: can a classifier tell a synthetic patient history from a real one?

    .venv/bin/python benchmarks/bench_histories.py [--dataset pbc|nafld] [--generators gmm,ar]

For each relational generator (``gmm``: the parent-cluster baseline; ``ar``: the sequence
generator), fit on all real tables, sample as many patients as the real root table, and build
one feature row per patient *with at least one child row*: the number of child rows; the first,
last, mean and least-squares slope (per year of the time column) of every numeric child column
(booleans and numeric codes included); the first time, last time and mean/min/max gap between
consecutive rows; the patient-level columns copied to the child rows. A gradient-boosting
classifier separates real from synthetic patients (equal numbers, synthetic subsampled with a
fixed seed), 5-fold stratified CV ROC AUC (0.5 = indistinguishable). The fit sees every real
patient, so the real side of the test is the training data (the usual detection set-up).

Also reported: the total-variation distance of the children-per-parent distribution, the share
of synthetic patients whose child times go backwards, and rows after the end of follow-up.
Results go to ``benchmarks/results/histories_<dataset>.md`` (timings measured on a shared
2-core machine under load).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"

DATASETS = {
    # name: (schema, {table: file}, child table, time column, follow-up end column or None)
    "pbc": ("schemas/pbc.yaml", {"pbc": ROOT / "data" / "pbc.csv",
                                 "pbcseq": ROOT / "data" / "pbcseq.csv"},
            "pbcseq", "day", "futime"),
    "nafld": ("schemas/nafld.yaml", {"nafld1": SHARED / "nafld1.csv", "nafld2": SHARED / "nafld2.csv",
                                     "nafld3": SHARED / "nafld3.csv"},
              "nafld2", "days", None),
}
N_FOLDS = 5


def history_features(child: pd.DataFrame, key: str, time_col: str) -> pd.DataFrame:
    """One row per patient: count, first/last/mean/slope of numeric columns, time gaps."""
    df = child.sort_values([key, time_col], kind="stable").copy()
    t = pd.to_numeric(df[time_col], errors="coerce") / 365.25
    df["_t"] = t
    g = df.groupby(key, sort=True)
    feats = {"n_rows": g.size()}
    feats["t_first"] = g["_t"].first()
    feats["t_last"] = g["_t"].last()
    gap = df.groupby(key)["_t"].diff()
    df["_gap"] = gap
    feats["gap_mean"] = df.groupby(key)["_gap"].mean()
    feats["gap_min"] = df.groupby(key)["_gap"].min()
    feats["gap_max"] = df.groupby(key)["_gap"].max()
    numeric = [c for c in df.columns if c not in (key, time_col, "_t", "_gap")
               and pd.api.types.is_numeric_dtype(df[c])]
    other = [c for c in df.columns if c not in numeric and c not in (key, time_col, "_t", "_gap")]
    for col in other:  # categorical text columns: codes
        df[col] = df[col].astype("category").cat.codes.astype(float)
        numeric.append(col)
    tm = g["_t"].transform("mean")
    dt = df["_t"] - tm
    denom = (dt * dt).groupby(df[key]).sum()
    for col in numeric:
        x = pd.to_numeric(df[col], errors="coerce").astype(float)
        gx = x.groupby(df[key])
        feats[f"{col}_first"] = gx.first()
        feats[f"{col}_last"] = gx.last()
        feats[f"{col}_mean"] = gx.mean()
        xm = x - gx.transform("mean")
        slope = (dt * xm).groupby(df[key]).sum() / denom.replace(0, np.nan)
        feats[f"{col}_slope"] = slope
    return pd.DataFrame(feats)


def detection_auc(real: pd.DataFrame, synth: pd.DataFrame, seed: int = 0) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    n = min(len(real), len(synth))
    real = real.sample(n, random_state=seed) if len(real) > n else real
    synth = synth.sample(n, random_state=seed) if len(synth) > n else synth
    cols = sorted(set(real.columns) & set(synth.columns))
    x = pd.concat([real[cols], synth[cols]], ignore_index=True).astype(float)
    y = np.r_[np.zeros(len(real)), np.ones(len(synth))]
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    cv = StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv, scoring="roc_auc").mean())


def run(dataset: str, generators: list[str], epochs: int | None, seed: int) -> list[dict]:
    from synthdata.relational.evaluate import children_per_parent_tv
    from synthdata.relational.schema import MultiTableSchema
    from synthdata.relational.synthesizer import RelationalSynthesizer

    schema_path, files, child, time_col, end_col = DATASETS[dataset]
    ms = MultiTableSchema.load(ROOT / schema_path)
    tables = {t: pd.read_csv(p) for t, p in files.items()}
    fk = ms.parent_link(child)
    real_feats = history_features(tables[child], fk.column, time_col)
    rows = []
    for name in generators:
        params = {"epochs": epochs} if (epochs and name == "ar") else {}
        started = time.perf_counter()
        rs = RelationalSynthesizer(ms, generator=name, generator_params=params, seed=seed)
        rs.fit(tables)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        synth = rs.sample(len(tables[ms.order()[0]]), seed=seed + 1)
        sample_s = time.perf_counter() - started
        s = synth[child]
        feats = history_features(s, fk.column, time_col)
        auc = detection_auc(real_feats, feats, seed)
        tv = children_per_parent_tv(tables, synth, ms)
        back = s.groupby(fk.column)[time_col].diff() < 0
        row = {"generator": name, "detection_auc": auc,
               "children_per_parent_tv": tv.get(fk.label), "fit_s": fit_s, "sample_s": sample_s,
               "patients_time_backwards": int(s.loc[back, fk.column].nunique()),
               "synthetic_child_rows": len(s), "real_child_rows": len(tables[child])}
        if end_col is not None:
            row["rows_after_follow_up"] = int((s[time_col] > s[end_col]).sum())
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="pbc", choices=sorted(DATASETS))
    ap.add_argument("--generators", default="gmm,ar")
    ap.add_argument("--epochs", type=int, default=None, help="ar epochs (default: the model's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = run(args.dataset, args.generators.split(","), args.epochs, args.seed)
    suffix = "" if args.seed == 0 else f"_seed{args.seed}"
    out = ROOT / "benchmarks" / "results" / f"histories_{args.dataset}{suffix}.md"
    lines = [f"# Whole-patient detection on {args.dataset} (seed {args.seed})", "",
             "Produced by `benchmarks/bench_histories.py` (see its docstring for the features and "
             "classifier). Timings measured on a shared 2-core machine under load.", "",
             "| generator | detection AUC (5-fold) | children/parent TV | patients with time "
             "going back | rows after follow-up | synthetic / real child rows | fit s | sample s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['generator']} | {r['detection_auc']:.3f} | "
                     f"{r['children_per_parent_tv']:.3f} | {r['patients_time_backwards']} | "
                     f"{r.get('rows_after_follow_up', 'n/a')} | {r['synthetic_child_rows']} / "
                     f"{r['real_child_rows']} | {r['fit_s']:.1f} | {r['sample_s']:.2f} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
