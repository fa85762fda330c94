"""The relational default for child tables (issue 17): gmm vs the sequence generator.

    PYTHONPATH=. python benchmarks/history_default.py [--only pbc|nafld] [--patients 3000]

For each dataset the relational synthesizer is fitted on a 70% patient split (seed 0) with
``generator="gmm"`` (the parent-cluster baseline, the default before) and
``generator="auto"`` (the default now: the sequence generator ``ar`` for child tables with a
numeric time column, gmm for the root), and both samples (as many patients as the training
split) are scored on the same yardsticks:

- whole-patient detection AUC per child table
  (:func:`synthdata.evaluate.history.evaluate_histories`, real side = the 30% holdout; the
  product's ``history_detection_auc``), and the synthetic rows breaking a within-patient rule;
- single-table fidelity of every table (``shapes``, ``column_distance_mean``,
  ``pair_trends`` of :func:`synthdata.evaluate.evaluate`, section ``fidelity_basic``);
- the Kaplan-Meier distance of the survival endpoint, and the children-per-parent TV
  (visits per patient) of every link;
- process CPU seconds of fit + sample (the machine is shared: wall time is noted too).

nafld: a random subset of ``--patients`` patients (default 3,000, as
``history_nafld_subset.py``) from the shared dataset folder beside the checkout
(``../shared/datasets``). Writes ``benchmarks/results/history_default_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def measure(tables: dict[str, pd.DataFrame], schema_path: Path, target: str,
            exclude: list[str], generators: list[str], seed: int = 0) -> dict:
    from synthdata.evaluate import evaluate
    from synthdata.evaluate.history import evaluate_histories
    from synthdata.medical.survival import survival_summary
    from synthdata.pipeline.multitable import split_by_root
    from synthdata.relational.evaluate import children_per_parent_tv
    from synthdata.relational.schema import MultiTableSchema
    from synthdata.relational.synthesizer import RelationalSynthesizer

    ms = MultiTableSchema.load(schema_path)
    clean, _ = ms.apply_real_violation_policy(tables)
    train, hold = split_by_root(clean, ms, 0.3, seed)
    out: dict = {"n_train_patients": len(train[ms.order()[0]]),
                 "load_average_at_start": os.getloadavg()}
    for name in generators:
        wall, cpu = time.perf_counter(), time.process_time()
        model = RelationalSynthesizer(ms, generator=name, seed=seed).fit(train)
        fit_cpu = time.process_time() - cpu
        synth = model.sample(seed=seed)
        res: dict = {"kinds": {t: model.table_generator(t) for t in ms.tables},
                     "fit_cpu_s": round(fit_cpu, 1),
                     "fit_sample_cpu_s": round(time.process_time() - cpu, 1),
                     "fit_sample_wall_s": round(time.perf_counter() - wall, 1),
                     "violations": model.violations_, "repairs": dict(model.fixes_)}
        res["single_table_fidelity"] = {
            t: {k: evaluate(train[t], synth[t], holdout=hold[t], schema=ms.tables[t], seed=seed,
                            sections=("fidelity_basic",)).metrics.get(k)
                for k in ("shapes", "column_distance_mean", "pair_trends")}
            for t in ms.order()}
        res["km_max_distance"] = {t: survival_summary(
            train[t], synth[t], hold[t], time=s.time, event=s.event,
            event_values=s.event_values, schema=ms.tables[t])["km_max_distance"]
            for t, s in ms.survival.items()}
        res["children_per_parent_tv"] = children_per_parent_tv(train, synth, ms)
        cpu = time.process_time()
        hist = evaluate_histories(train, synth, ms, holdout=hold, target=target, exclude=exclude,
                                  discovered=model.discovered_,
                                  discovered_links=model.discovered_links_, seed=seed)
        res["history_eval_cpu_s"] = round(time.process_time() - cpu, 1)
        res["history_metrics"] = hist["metrics"]
        res["detection_top_features"] = {
            t: s["detection"].get("top_features", [])[:5] for t, s in hist["tables"].items()}
        res["child_rows"] = {t: [len(synth[t]), len(train[t])] for t in ms.tables}
        out[name] = res
        print(name, json.dumps(res, default=str), flush=True)
    out["load_average_at_end"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--only", choices=("pbc", "nafld"), default=None)
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--generators", default="gmm,auto")
    args = parser.parse_args()
    gens = args.generators.split(",")
    results_dir = ROOT / "benchmarks" / "results"
    if args.only in (None, "pbc"):
        pbc = {"pbc": pd.read_csv(ROOT / "data" / "pbc.csv"),
               "pbcseq": pd.read_csv(ROOT / "data" / "pbcseq.csv")}
        res = measure(pbc, ROOT / "schemas" / "pbc.yaml", "status",
                      ["time", "pbcseq.futime", "pbcseq.status"], gens)
        _merge(results_dir / "history_default_pbc.json", res)
    if args.only in (None, "nafld"):
        t = {k: pd.read_csv(args.datasets / f"{k}.csv") for k in ("nafld1", "nafld2", "nafld3")}
        ids = set(np.random.default_rng(0).choice(t["nafld1"]["id"], args.patients,
                                                  replace=False).tolist())
        t = {k: v[v["id"].isin(ids)] for k, v in t.items()}
        res = measure(t, ROOT / "schemas" / "nafld.yaml", "status", ["futime"], gens)
        res["patients"] = args.patients
        _merge(results_dir / f"history_default_nafld{args.patients}.json", res)


def _merge(path: Path, res: dict) -> None:
    """Write ``res`` into the JSON at ``path``, keeping other generators' earlier results."""
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **res}, indent=1, default=str))


if __name__ == "__main__":
    main()
