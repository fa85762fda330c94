"""Pipeline runs on FHIR input: ``data: {fhir: folder-or-bundle}``, no schema to write.

The FHIR resources are read (:func:`~synthdata.io.fhir.read_fhir_summary`: every resource is
read, a duplicate, or skipped with its reason; dangling references are counted), split by
patient, and fitted with :class:`~synthdata.medical.fhir.FhirSynthesizer` (the shipped mapping
patients -> encounters -> observations, conditions, medication requests, procedures,
immunizations, allergies, diagnostic reports). The evaluation and the gate work on one row per
patient (:func:`patient_summary`: gender, birth year, death, resources per type, mean value of
the common observation codes), so the usual metrics and presets apply; the coherence checks
(:func:`~synthdata.medical.fhir.coherence_checks`: values within their code's range, events
inside their encounter and before death, no dangling reference, no invented code) are rules of
every FHIR gate, like referential integrity for linked tables. When the gate passes, the
synthetic records are written as a transaction Bundle (``synthetic_bundle.json``) and as NDJSON
per resource type (``ndjson/``), every resource validated with the fhir.resources R4B models.

Report sections: ``fhir_read`` (the read summary), ``fhir`` (coherence checks, repairs, rows
not learned). Differential privacy is refused (the FHIR mapping reads per-code statistics).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError
from synthdata.io.files import atomic_write_text, fingerprint
from synthdata.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

COHERENCE_RULES = ("values_outside_code_range", "single_use_code_repeats",
                   "observations_outside_encounter", "events_after_death",
                   "dangling_references", "invented_codes")
MAX_SUMMARY_CODES = 8       # mean value columns in the patient summary
MIN_CODE_PATIENT_SHARE = 0.2


def split_patients(tables: dict[str, pd.DataFrame], holdout: float, seed: int
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame] | None]:
    """Every table split by ``patient_id`` (a patient's resources stay on one side)."""
    if holdout <= 0:
        return tables, None
    ids = tables["patients"]["patient_id"].to_numpy()
    rng = np.random.default_rng(seed)
    hold_ids = set(rng.permutation(ids)[: round(len(ids) * holdout)].tolist())
    train, hold = {}, {}
    for name, df in tables.items():
        mask = df["patient_id"].isin(hold_ids).to_numpy()
        train[name] = df.loc[~mask].reset_index(drop=True)
        hold[name] = df.loc[mask].reset_index(drop=True)
    return train, hold


def summary_codes(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Observation codes with numeric values in at least 20% of the patients (at most 8)."""
    obs = tables.get("observations")
    if obs is None or not len(obs):
        return []
    numeric = obs.dropna(subset=["value", "code"])
    share = numeric.groupby("code")["patient_id"].nunique() / max(len(tables["patients"]), 1)
    share = share[share >= MIN_CODE_PATIENT_SHARE].sort_values(ascending=False, kind="stable")
    return [str(c) for c in share.index[:MAX_SUMMARY_CODES]]


def patient_summary(tables: dict[str, pd.DataFrame], codes: list[str],
                    counted: list[str]) -> pd.DataFrame:
    """One row per patient: gender, birth year, deceased, age at death, number of resources
    in each of the ``counted`` tables, mean value of each of ``codes`` (the unit of evaluation
    of a FHIR run)."""
    pats = tables["patients"]
    birth = pd.to_datetime(pats["birth_date"], utc=True, format="ISO8601", errors="coerce")
    death = pd.to_datetime(pats["deceased_date"], utc=True, format="ISO8601", errors="coerce")
    out = pd.DataFrame({"gender": pats["gender"].astype(object).to_numpy(),
                        "birth_year": birth.dt.year.astype("float64").to_numpy(),
                        "deceased": death.notna().astype("int64").to_numpy(),
                        "age_at_death": ((death - birth).dt.days / 365.25).to_numpy()})
    ids = pats["patient_id"].astype(str).to_numpy()
    for name in counted:
        df = tables[name]
        counts = df["patient_id"].astype(str).value_counts()
        out[f"n_{name}"] = counts.reindex(ids, fill_value=0).to_numpy().astype("int64")
    obs = tables.get("observations")
    for code in codes:
        col = f"mean_{code}"
        if obs is None or not len(obs):
            out[col] = np.nan
            continue
        sel = obs[obs["code"].astype(str) == code]
        means = pd.to_numeric(sel["value"], errors="coerce").groupby(sel["patient_id"].astype(str)).mean()
        out[col] = means.reindex(ids).to_numpy(dtype=float)
    return out


def run_fhir(cfg: PipelineConfig, run_dir: Path, timer: Any, progress: Any,
             budget: Any = None) -> Any:
    from synthdata.evaluate import evaluate
    from synthdata.evaluate.gate import check_gate
    from synthdata.io.fhir import read_fhir_summary, write_fhir_bundle, write_fhir_ndjson
    from synthdata.medical.fhir import FhirSynthesizer, coherence_checks
    from synthdata.pipeline.budget import dp_config
    from synthdata.pipeline.release import RunResult, build_manifest, gate_section, resolve_gate
    from synthdata.privacy.ledger import PrivacyLedger
    from synthdata.schema.model import Schema

    if dp_config(cfg) is not None or budget is not None:
        raise ConfigError("data.fhir runs without differential privacy (the FHIR mapping reads "
                          "per-code value statistics from the records); remove the privacy "
                          "block, or read the resources with synthdata.io.fhir.read_fhir and "
                          "run linked tables with a declared schema")
    assert cfg.data.fhir is not None
    rules = resolve_gate(cfg.gate)
    with timer.step("load"):
        tables, read = read_fhir_summary(cfg.data.fhir)
        source = Path(cfg.data.fhir)
        files = sorted(source.rglob("*")) if source.is_dir() else [source]
        fingerprints = {str(f.relative_to(source) if source.is_dir() else f.name): fingerprint(f)
                        for f in files if f.is_file() and f.suffix.lower() in (".json", ".ndjson")}
    for line in read.lines():
        log.info("FHIR read: %s", line)
    progress("load", 1, 1)
    train, hold = split_patients(tables, cfg.split.holdout, cfg.split.seed)
    ledger = PrivacyLedger.from_config(None, n_rows=len(train["patients"]))
    model = FhirSynthesizer(generator=cfg.generator.kind, generator_params=cfg.generator.params,
                            seed=cfg.seed)
    with timer.step("fit"):
        model.fit(train, ledger=ledger)
    ledger.record_not_private("model.fhir.fit", reason="per-table generators, per-code value "
                              "statistics and code attributes learned without privacy",
                              shapes_release=True)
    with timer.step("sample"):
        synth = model.sample(cfg.sample.rows or len(train["patients"]), seed=cfg.seed)
    progress("sample", 1, 1)
    with timer.step("evaluate"):
        codes = summary_codes(train)
        counted = [t for t in synth if t != "patients"]  # the tables synthesised
        train_s = patient_summary(train, codes, counted)
        synth_s = patient_summary(synth, codes, counted)
        hold_s = None if hold is None else patient_summary(hold, codes, counted)
        schema = Schema.infer(train_s, name="patients (one row per patient)")
        sections = None if cfg.evaluate.full else ("fidelity_basic",)
        report = evaluate(train_s, synth_s, holdout=hold_s, schema=schema,
                          target=cfg.evaluate.target, seed=cfg.seed, progress=progress,
                          sections=sections)
        checks = coherence_checks(train, synth)
    ledger.record_not_private("evaluate", reason="fidelity and leakage metrics read the real "
                              "train and holdout splits; publish them only as internal QA")
    for name in COHERENCE_RULES:
        report.metrics[name] = checks[name]
    verdict = check_gate({k: v for k, v in report.metrics.items() if k not in COHERENCE_RULES},
                         rules, validation_passed=None)
    structural = [{"metric": name, "rule": "== 0", "operator": "==", "threshold": 0.0,
                   "value": checks[name], "passed": checks[name] == 0,
                   "reason": f"{checks[name]} (required: 0)"} for name in COHERENCE_RULES]
    coherent = all(row["passed"] for row in structural)
    passed = verdict.passed and coherent
    export = coherent and (verdict.passed or not verdict.judged)
    report.add_section("fhir_read", read.to_dict())
    report.add_section("fhir", {
        "mapping": "patients -> encounters -> observations, conditions, medication_requests, "
                   "procedures, immunizations, allergies, diagnostic_reports (synthdata.medical.fhir)",
        "coherence": checks, "repairs": dict(model.fixes_), "not_learned": dict(model.not_learned_),
        "evaluation_unit": "one row per patient: " + ", ".join(train_s.columns),
        "deid": "names, identifiers, addresses, phone and e-mail are not learned; synthetic "
                "patients carry gender, birth date and death date only"})
    gate = gate_section(verdict, structural, passed)
    gate_rows = gate["results"]
    report.add_section("gate", gate)
    report.add_section("privacy", ledger.to_dict() | {"statement": ledger.plain_language()})
    report.add_section("timings", dict(timer.timings))
    manifest = build_manifest(cfg, fingerprints, train_s, hold_s, synth_s, timer, ledger, verdict)
    manifest["rows"] = {t: {"train": len(train[t]), "synthetic": len(synth.get(t, ()))}
                        for t in train}
    manifest["fhir_read"] = {k: v for k, v in read.to_dict().items() if k.startswith("n_")}
    if verdict.judged:  # the coherence rules count too
        manifest["gate"].update(passed=passed, status="passed" if passed else "failed")
    report.add_section("manifest", manifest)
    written = None
    if export:
        written = write_fhir_bundle(synth, run_dir / "synthetic_bundle.json",
                                    bundle_type="transaction")
        write_fhir_ndjson(synth, run_dir / "ndjson")
    model.relational_.schema.save(run_dir / "schema.yaml")
    atomic_write_text(run_dir / "report.json", report.to_json())
    atomic_write_text(run_dir / "report.html", report.to_html())
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return RunResult(run_dir=run_dir, passed=passed, metrics=dict(report.metrics),
                     synthetic_path=written, gate=gate_rows, timings=dict(timer.timings),
                     judged=verdict.judged, notes=read.lines())
