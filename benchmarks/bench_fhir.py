"""FHIR round trip on a generated 800-patient bundle: coherence before and after (issue 18).

    PYTHONPATH=. python benchmarks/bench_fhir.py [--patients 800] [--out benchmarks/results/fhir.md]

The bundle comes from ``tests/io/fhir_maker.py`` (generated, no real data). "before" is what a
user could do without :class:`~synthdata.medical.fhir.FhirSynthesizer`: the flat tables of
``read_fhir`` with a hand-written multi-table schema (patients -> encounters, observations and
conditions; the event -> encounter links ``enforce: false``, since a table has one parent),
fitted with the relational synthesizer (gmm). "after" is ``FhirSynthesizer`` (gmm). Both
synthetic sets are written as a collection bundle validated with the fhir.resources R4B
models, read back, and scored by :func:`synthdata.medical.fhir.coherence_checks`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthdata.io.fhir import read_fhir_summary, write_fhir_bundle  # noqa: E402
from synthdata.medical.fhir import FhirSynthesizer, coherence_checks  # noqa: E402
from synthdata.relational.schema import ForeignKey, MultiTableSchema  # noqa: E402
from synthdata.relational.synthesizer import RelationalSynthesizer  # noqa: E402
from synthdata.schema.model import Column, ColumnKind, Schema  # noqa: E402
from tests.io.fhir_maker import make_bundle  # noqa: E402

CHECKS = ("values_outside_code_range", "single_use_code_repeats", "observations_outside_encounter",
          "events_after_death", "dangling_references", "invented_codes")


def _dt(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="ISO8601").dt.tz_localize(None)


def baseline(tables: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    """The flat tables with a hand-written schema, relational gmm, written back as FHIR tables."""
    cat = lambda n: Column(n, ColumnKind.CATEGORICAL, dtype="object", nullable=True)
    key = lambda n: Column(n, ColumnKind.ID, dtype="object")
    dt = lambda n: Column(n, ColumnKind.DATETIME, dtype="datetime64[ns]", nullable=True)
    num = lambda n: Column(n, ColumnKind.CONTINUOUS, dtype="float64", nullable=True)
    spec = {
        "patients": (["patient_id"], ["gender"], ["birth_date", "deceased_date"], []),
        "encounters": (["encounter_id", "patient_id"], ["status", "class_code", "type_code"],
                       ["period_start", "period_end"], []),
        "observations": (["observation_id", "patient_id", "encounter_id"],
                         ["status", "code", "value_unit", "value_code"], ["effective"], ["value"]),
        "conditions": (["condition_id", "patient_id", "encounter_id"],
                       ["clinical_status", "verification_status", "code"], ["onset"], []),
    }
    data, schemas = {}, {}
    for t, (keys, cats, dates, nums) in spec.items():
        df = tables[t][keys + cats + dates + nums].copy()
        for c in dates:
            df[c] = _dt(df[c])
        data[t] = df
        schemas[t] = Schema(tuple([key(c) for c in keys] + [cat(c) for c in cats] +
                                  [dt(c) for c in dates] + [num(c) for c in nums]),
                            name=t, primary_key=keys[0])
    fks = [ForeignKey("encounters", "patient_id", "patients", "patient_id", order_by="period_start"),
           ForeignKey("observations", "patient_id", "patients", "patient_id", order_by="effective"),
           ForeignKey("conditions", "patient_id", "patients", "patient_id"),
           ForeignKey("observations", "encounter_id", "encounters", "encounter_id", enforce=False),
           ForeignKey("conditions", "encounter_id", "encounters", "encounter_id", enforce=False)]
    ms = MultiTableSchema(tables=schemas, primary_keys={t: s.primary_key for t, s in schemas.items()},
                          foreign_keys=fks, name="fhir_flat")
    synth = RelationalSynthesizer(ms, seed=seed).fit(data).sample(seed=seed)
    enc = synth["encounters"]  # the writer refuses an end before the start: use the start
    enc["period_end"] = enc[["period_start", "period_end"]].max(axis=1).where(enc["period_end"].notna())
    out = {}
    for t, df in synth.items():
        df = df.copy()
        for c in spec[t][2]:
            df[c] = pd.to_datetime(df[c]).dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(df[c].notna(), None)
        out[t] = df
    out["patients"]["birth_date"] = out["patients"]["birth_date"].str[:10]
    out["observations"]["value_code"] = out["observations"]["value_code"].where(
        out["observations"]["value"].isna(), None)  # one value[x] per observation
    for c in ("status", "clinical_status", "verification_status", "code"):  # required codes
        for t in ("encounters", "observations", "conditions"):
            if c in out[t]:
                out[t][c] = out[t][c].fillna(tables[t][c].mode().iloc[0])
    out["encounters"]["class_code"] = out["encounters"]["class_code"].fillna("AMB")
    cond = out["conditions"]
    cond.loc[cond["verification_status"] == "entered-in-error", "clinical_status"] = None
    return out


def value_ks(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """Kolmogorov-Smirnov distance between real and synthetic values, per LOINC code."""
    from scipy.stats import ks_2samp

    out = {}
    for code, group in real.dropna(subset=["value"]).groupby("code"):
        values = synth.loc[synth["code"] == code, "value"].dropna()
        if len(values):
            out[str(code)] = float(ks_2samp(group["value"], values).statistic)
    return out


def run(n_patients: int, seed: int) -> dict:
    results: dict = {"patients": n_patients, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.json"
        path.write_text(json.dumps(make_bundle(n_patients, seed)))
        t0 = time.perf_counter()
        tables, summary = read_fhir_summary(path)
        results["read_s"] = time.perf_counter() - t0
        results["read"] = summary.to_dict()
        results["real"] = coherence_checks(tables, tables)
        model = FhirSynthesizer(seed=seed)
        for label, fit in (("before", lambda: baseline(tables, seed)),
                           ("after", lambda: model.fit(tables).sample(seed=seed))):
            t0 = time.perf_counter()
            synth = fit()
            seconds = time.perf_counter() - t0
            out = write_fhir_bundle(synth, Path(tmp) / f"{label}.json")  # R4B-validated
            again, again_summary = read_fhir_summary(out)
            checks = coherence_checks(tables, again)
            checks["value_ks_by_code"] = value_ks(tables["observations"], again["observations"])
            checks["fit_sample_s"] = seconds
            checks["resources_written"] = again_summary.n_read
            checks["read_back_accounted"] = again_summary.n_accounted == again_summary.n_found
            results[label] = checks
        results["after"]["repairs"] = {k: int(v) for k, v in model.fixes_.items()}
        results["after"]["not_learned"] = dict(model.not_learned_)
    return results


def markdown(r: dict) -> str:
    lines = [f"# FHIR round trip, {r['patients']} generated patients (seed {r['seed']})", "",
             ("Generated by `tests/io/fhir_maker.py`; `PYTHONPATH=. python benchmarks/bench_fhir.py`. "
              "Timings measured on a shared 2-core machine under load."), "",
             (f"Read: {r['read']['n_resources_found']} resources, {r['read']['n_resources_read']} "
              f"read, {r['read']['n_accounted']} accounted for, {r['read_s']:.1f} s."), "",
             "| check (0 is the target) | real | before | after |", "|---|---:|---:|---:|"]
    for c in CHECKS:
        lines.append(f"| {c} | {r['real'][c]} | {r['before'][c]} | {r['after'][c]} |")
    lines.append(f"| resources written (R4B-valid, read back) | {r['read']['n_resources_read']} | "
                 f"{r['before']['resources_written']} | {r['after']['resources_written']} |")
    lines.append(f"| fit + sample s | | {r['before']['fit_sample_s']:.0f} | "
                 f"{r['after']['fit_sample_s']:.0f} |")
    lines += ["", "Repairs made by FhirSynthesizer.sample (counted, also in a run's report):", ""]
    lines += [f"- {k}: {v}" for k, v in r["after"]["repairs"].items()] or ["- none"]
    lines += ["", ("Value range per LOINC code (real / before / after) and the KS distance of "
                   "the synthetic values to the real ones of the same code (lower is better):"), "",
              "| code | real | before | after | KS before | KS after |", "|---|---|---|---|---:|---:|"]
    for code, rng in sorted(r["real"]["value_range_by_code"].items()):
        fmt = lambda x: "-" if x is None else f"{x[0]:.4g} – {x[1]:.4g}"
        before = r["before"]["value_range_by_code"].get(code, {}).get("synthetic")
        after = r["after"]["value_range_by_code"].get(code, {}).get("synthetic")
        ks = [r[k]["value_ks_by_code"].get(code) for k in ("before", "after")]
        ks_text = " | ".join("-" if x is None else f"{x:.3f}" for x in ks)
        lines.append(f"| {code} | {fmt(rng['real'])} | {fmt(before)} | {fmt(after)} | {ks_text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = run(args.patients, args.seed)
    text = markdown(results)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
