"""Baseline of patient-history quality for linked tables (issue 17), on pbc/pbcseq and nafld.

For each dataset the relational synthesizer (gmm per table, today's default) is fitted on a
70% patient split twice:

* ``before``: the schema without the new within-patient rules and without rule discovery
  (what the product did before issue 17);
* ``after``: the schema as shipped (declared rules, ``on_real_violation``) plus the rules
  discovered on the real patients.

Both samples are scored on the same yardsticks: whole-patient detection AUC per child table
(:func:`synthdata.evaluate.history.evaluate_histories`, real side = the 30% holdout),
single-table fidelity (``shapes``/``column_distance_mean`` of every table), the Kaplan-Meier
distance of the survival endpoint, and the rows breaking every rule of the ``after`` set
(declared + discovered) in the real and synthetic data. Optionally (``--e2e``) the nafld
pipeline (pipelines/nafld_medical.yaml) runs once end to end, with its wall time and peak
memory (ru_maxrss of this process, which runs nothing else then).

Run from the repository root::

    python benchmarks/history_baseline.py [--only pbc|nafld]   # -> results/history_baseline.json
    python benchmarks/history_baseline.py --e2e                # -> results/history_nafld_e2e.json

The nafld data is read from the shared dataset folder beside the checkout
(``../shared/datasets``, as pipelines/nafld_medical.yaml does); pass ``--datasets DIR``.
Timings are wall-clock on whatever machine runs it (note the load in the results).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def _strip_rules(ms):
    """The schema without the within-patient kinds and without on_real_violation rules."""
    from synthdata.constraints.kinds import HistoryRule
    from synthdata.relational.schema import MultiTableSchema

    tables = {t: dataclasses.replace(s, constraints=tuple(
        r for r in s.constraints if not isinstance(r, HistoryRule)
        and r.on_real_violation == "error")) for t, s in ms.tables.items()}
    rules = [r for r in ms.constraints if not isinstance(r, HistoryRule)
             and r.on_real_violation == "error"]
    return MultiTableSchema(tables=tables, primary_keys=ms.primary_keys,
                            foreign_keys=ms.foreign_keys, survival=ms.survival, name=ms.name,
                            constraints=rules)


def measure(name: str, tables: dict[str, pd.DataFrame], schema_path: Path, target: str,
            exclude: list[str], seed: int = 0) -> dict:
    from synthdata.evaluate import evaluate
    from synthdata.evaluate.history import evaluate_histories
    from synthdata.medical.survival import survival_summary
    from synthdata.pipeline.multitable import split_by_root
    from synthdata.relational.schema import MultiTableSchema
    from synthdata.relational.synthesizer import RelationalSynthesizer

    ms = MultiTableSchema.load(schema_path)
    clean, real_fixes = ms.apply_real_violation_policy(tables)
    train, hold = split_by_root(clean, ms, 0.3, seed)
    out: dict = {"dataset": name, "real_violation_policy": real_fixes,
                 "n_train_patients": len(train[ms.order()[0]])}
    after_model = None
    for variant in ("before", "after"):
        vms = _strip_rules(ms) if variant == "before" else ms
        start = time.perf_counter()
        model = RelationalSynthesizer(vms, seed=seed, discover_rules=variant == "after")
        model.fit(train)  # the same patients for both (real rows dropped by a policy too)
        synth = model.sample(seed=seed)
        fit_sample_s = time.perf_counter() - start
        if variant == "after":
            after_model = model
        res = {"fit_sample_seconds": round(fit_sample_s, 1), "repairs": dict(model.fixes_)}
        fidelity = {}
        for tname in ms.order():
            rep = evaluate(train[tname], synth[tname], holdout=hold[tname],
                           schema=ms.tables[tname], seed=seed, sections=("fidelity_basic",))
            fidelity[tname] = {k: rep.metrics.get(k) for k in ("shapes", "column_distance_mean",
                                                               "pair_trends")}
        res["single_table_fidelity"] = fidelity
        res["km_max_distance"] = {t: survival_summary(
            train[t], synth[t], hold[t], time=s.time, event=s.event,
            event_values=s.event_values, schema=ms.tables[t])["km_max_distance"]
            for t, s in ms.survival.items()}
        res["synth"] = synth
        out[variant] = res
    assert after_model is not None
    for variant in ("before", "after"):
        synth = out[variant].pop("synth")
        hist = evaluate_histories(train, synth, ms, holdout=hold, target=target, exclude=exclude,
                                  discovered=after_model.discovered_,
                                  discovered_links=after_model.discovered_links_, seed=seed)
        out[variant]["history_metrics"] = hist["metrics"]
        out[variant]["rules"] = {t: s["rules"] for t, s in hist["tables"].items()}
        out[variant]["detection_top_features"] = {
            t: s["detection"].get("top_features", [])[:5] for t, s in hist["tables"].items()}
    out["discovered_rules"] = {t: [r.describe() for r in rules]
                               for t, rules in after_model.discovered_.items()}
    out["discovered_link_rules"] = [r.describe() for r in after_model.discovered_links_]
    return out


def end_to_end(datasets: Path, out_dir: Path) -> dict:
    """Run pipelines/nafld_medical.yaml once; wall time and peak RSS of this process."""
    import yaml

    from synthdata.pipeline.runner import run_pipeline

    cfg = yaml.safe_load((ROOT / "pipelines" / "nafld_medical.yaml").read_text())
    cfg["data"]["tables"] = {t: str(datasets / f"{t}.csv") for t in cfg["data"]["tables"]}
    cfg["data"]["schema"] = str(ROOT / "schemas" / "nafld.yaml")
    cfg["output"] = {"dir": str(out_dir)}
    start = time.perf_counter()
    result = run_pipeline(cfg)
    wall = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"wall_seconds": round(wall, 1), "peak_rss_gb": round(peak_gb, 2),
            "passed": result.passed, "timings": result.timings,
            "metrics": {k: v for k, v in result.metrics.items()
                        if k.startswith(("history_", "km_", "constraint", "referential",
                                         "children_per", "detection_auc", "shapes"))},
            "load_average_at_end": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "history_baseline.json")
    parser.add_argument("--e2e", action="store_true",
                        help="only run the nafld pipeline once (time, peak memory)")
    parser.add_argument("--only", choices=("pbc", "nafld", "cohort"), default=None)
    args = parser.parse_args()
    results: dict = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count()}
    if args.e2e:  # alone in a fresh process, so the peak memory is the pipeline's
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            results["nafld_end_to_end"] = end_to_end(args.datasets, Path(tmp))
        out = args.out.with_name("history_nafld_e2e.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        print(json.dumps(results, indent=2, default=str))
        return
    if args.only in (None, "pbc"):
        pbc = {"pbc": pd.read_csv(ROOT / "data" / "pbc.csv"),
               "pbcseq": pd.read_csv(ROOT / "data" / "pbcseq.csv")}
        results["pbc"] = measure("pbc", pbc, ROOT / "schemas" / "pbc.yaml", "status",
                                 ["time", "pbcseq.futime", "pbcseq.status"])
    if args.only in (None, "cohort"):
        # a generated cohort whose histories obey clinical rules (ages that advance with the
        # visit day, an "ever" flag, treatment only after diagnosis, no visit after
        # follow-up): what the rules change where real data has such structure
        import sys
        import tempfile

        sys.path.insert(0, str(ROOT))
        from tests.medical.history_data import cohort, schema

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cohort.yaml"
            schema().save(path)
            results["cohort"] = measure("cohort", cohort(1000), path, "death", ["futime"])
    if args.only in (None, "nafld"):
        if not (args.datasets / "nafld1.csv").exists():
            raise SystemExit(f"nafld data not found under {args.datasets}; pass --datasets DIR")
        nafld = {t: pd.read_csv(args.datasets / f"{t}.csv") for t in ("nafld1", "nafld2", "nafld3")}
        results["nafld"] = measure("nafld", nafld, ROOT / "schemas" / "nafld.yaml", "status",
                                   ["futime"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
