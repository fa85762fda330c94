"""Pipeline runs over linked tables (patients → visits / labs / events).

The holdout is split by root entity (a patient and all their rows go to the same side);
the relational synthesizer generates parents, then children per parent; the report is the
root table's full evaluation plus, per table, fidelity metrics, children-per-parent
distances, referential integrity, Kaplan–Meier distances for declared survival
endpoints and the violations of every declared constraint (the gate needs 100% integrity and
0 violations on top of its rules). One ``<table>.csv`` (or ``.parquet``) per table is written when the gate passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.io.files import atomic_write_text, fingerprint, read_table, write_table
from synthdata.pipeline.config import PipelineConfig


def split_by_root(tables: dict[str, pd.DataFrame], ms: Any, holdout: float,
                  seed: int) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame] | None]:
    """Split every table by its root entity so a patient's rows stay together."""
    if holdout <= 0:
        return tables, None
    order = ms.order()
    root = order[0]
    pk = ms.primary_keys.get(root)
    if not pk:
        raise ConfigError(f"table {root!r} needs a primary key to split linked tables")
    keys = tables[root][pk[0]].to_numpy()
    rng = np.random.default_rng(seed)
    hold_keys = set(rng.permutation(keys)[: int(round(len(keys) * holdout))].tolist())
    train: dict[str, pd.DataFrame] = {}
    hold: dict[str, pd.DataFrame] = {}
    in_hold: dict[str, pd.Series] = {root: tables[root][pk[0]].isin(hold_keys)}
    for tname in order[1:]:
        fk = ms.parent_link(tname)
        parent = tables[fk.parent].loc[in_hold[fk.parent], fk.parent_column]
        in_hold[tname] = tables[tname][fk.column].isin(set(parent.tolist()))
    for tname in order:
        mask = in_hold[tname].to_numpy()
        train[tname] = tables[tname].loc[~mask].reset_index(drop=True)
        hold[tname] = tables[tname].loc[mask].reset_index(drop=True)
    return train, hold


def run_multitable(cfg: PipelineConfig, run_dir: Path, timer: Any, progress: Any,
                   budget: Any = None) -> Any:
    from synthdata.constraints.report import DISCOVERY_OFF_UNDER_DP
    from synthdata.evaluate import evaluate
    from synthdata.evaluate.gate import check_gate
    from synthdata.evaluate.history import evaluate_histories
    from synthdata.medical.patients import parent_child_correlations, patient_table
    from synthdata.medical.survival import survival_metrics, survival_summary
    from synthdata.pipeline.budget import budget_section, dp_config
    from synthdata.pipeline.checks import check_run_columns
    from synthdata.pipeline.deid import (
        LEDGER_REASON,
        LEDGER_STEP,
        SECTION,
        deid_tables,
        record_scan,
    )
    from synthdata.pipeline.release import RunResult, build_manifest, gate_section, resolve_gate
    from synthdata.privacy.group import check_privacy_unit
    from synthdata.privacy.ledger import PrivacyLedger
    from synthdata.relational.evaluate import children_per_parent_tv
    from synthdata.relational.schema import MultiTableSchema
    from synthdata.relational.synthesizer import (
        AUTO,
        RelationalSynthesizer,
        check_patient_rows,
        patient_root,
    )

    privacy = dp_config(cfg)
    check_privacy_unit(privacy, linked=True)
    if privacy is not None:  # linked tables: the unit of privacy is the patient (a root row)
        privacy = privacy.model_copy(update={"unit": "patient"})
    assert cfg.data.tables is not None and cfg.data.schema_path is not None
    with timer.step("load"):
        tables = {name: read_table(path, encoding=cfg.data.encoding)
                  for name, path in cfg.data.tables.items()}
        fingerprints = ({name: fingerprint(path) for name, path in cfg.data.tables.items()}
                        if privacy is None else None)  # under DP no input hash is computed
        ms = MultiTableSchema.load(cfg.data.schema_path)
        unknown = sorted(set(tables) ^ set(ms.tables))
        if unknown:
            raise ConfigError(f"data.tables and the schema {cfg.data.schema_path} disagree on "
                              f"table(s) {unknown}")
        # a composite link is carried by one surrogate key column until the output is written
        tables = ms.pack_keys(tables)
        if privacy is not None:  # every row must belong to one patient (clear refusals first)
            patient_root(ms)
            check_patient_rows(ms, tables)
        ms.check_keys(tables)
        # declared rules the real data may break: on_real_violation drop|repair (counted)
        tables, real_violations = ms.apply_real_violation_policy(tables)
        ms.validate(tables)
    progress("load", 1, 1)
    with timer.step("deid"):  # per table by its schema; one date shift per patient, all tables
        tables, ms, deid_section = deid_tables(tables, ms, cfg.deid, seed=cfg.seed)
    rules = resolve_gate(cfg.gate)
    root = ms.order()[0]
    check_run_columns(cfg, ms.tables[root])  # the target is a root-table column
    train, hold = split_by_root(tables, ms, cfg.split.holdout, cfg.split.seed)
    n_noisy = None
    if privacy is None:
        ledger = PrivacyLedger.from_config(privacy, n_rows=len(train[root]))
    else:  # n is not public: one DP count of the patients sets δ and the default size
        from synthdata.privacy.count import dp_unit_count

        ledger, n_noisy = dp_unit_count(len(train[root]), privacy, what="training patients")
    if budget is not None:  # the per-dataset budget charges what this ledger spends
        budget.attach(ledger)
    if deid_section["enabled"]:
        ledger.record_public(LEDGER_STEP, reason=LEDGER_REASON)
    record_scan(ledger, deid_section)
    # no generator.kind in the config: the relational default (sequence generator for child
    # tables with a time column, gmm elsewhere; see RelationalSynthesizer)
    kind = cfg.generator.kind if "kind" in cfg.generator.model_fields_set else AUTO
    synth_model = RelationalSynthesizer(ms, generator=kind,
                                        generator_params=cfg.generator.params, seed=cfg.seed,
                                        privacy=privacy)
    with timer.step("fit"):
        synth_model.fit(train, ledger=ledger)
    if privacy is None:
        ledger.record_not_private("model.relational.fit", reason="per-table generators and "
                                  "parent contexts learned without privacy", shapes_release=True)
    with timer.step("sample"):
        synth = synth_model.sample(cfg.sample.rows or n_noisy or len(train[root]), seed=cfg.seed)
    progress("sample", 1, 1)
    _check_not_empty(synth, synth_model)

    with timer.step("evaluate"):
        sections = None if cfg.evaluate.full else ("fidelity_basic",)
        root_target = cfg.evaluate.target if cfg.evaluate.target in ms.tables[root] else None
        report = evaluate(train[root], synth[root], holdout=None if hold is None else hold[root],
                          schema=ms.tables[root], target=root_target, seed=cfg.seed,
                          progress=progress, sections=sections,
                          exclude=_local_names(cfg.evaluate.exclude, root, ms))
        per_table = {}
        for tname in ms.order()[1:]:
            sub = evaluate(train[tname], synth[tname], holdout=None if hold is None else hold[tname],
                           schema=ms.tables[tname], seed=cfg.seed, sections=("fidelity_basic",))
            per_table[tname] = {k: v for k, v in sub.metrics.items() if v is not None}
        integrity = ms.check(synth)
        relational: dict[str, Any] = {
            "referential_integrity": integrity.integrity,
            "children_per_parent_tv": children_per_parent_tv(train, synth, ms),
        }
        survival = {tname: survival_summary(
            train[tname], synth[tname], None if hold is None else hold[tname], time=spec.time,
            event=spec.event, event_values=spec.event_values, schema=ms.tables[tname],
            exclude=_key_columns(ms, tname), unit=spec.time_unit(ms.tables[tname]))
            for tname, spec in ms.survival.items()}
        km = {tname: s["km_max_distance"] for tname, s in survival.items()}
        relational["km_max_distance"] = km
        relational["repairs"] = dict(synth_model.fixes_)
        # one row per patient (root row + summaries of their linked rows), used twice
        train_patients, synth_patients = patient_table(train, ms), patient_table(synth, ms)
        relational["parent_child_correlations"] = parent_child_correlations(
            train_patients, synth_patients, ms)
        patients = (_patient_leakage(train_patients, synth_patients, hold, ms, cfg)
                    if cfg.evaluate.full else {})
        declared = [{"rule": rule, "violations": n} for rule, n in synth_model.violations_.items()]
        discovered = [{"rule": rule, "violations": n}
                      for rule, n in synth_model.discovered_violations_.items()]
        constraints = {"declared": declared,
                       "declared_violations": sum(d["violations"] for d in declared),
                       "real_violations": real_violations,
                       "discovered": discovered,
                       "discovered_violations": sum(d["violations"] for d in discovered),
                       "discovery": (DISCOVERY_OFF_UNDER_DP if privacy is not None else
                                     "within-patient rules that hold on every real patient "
                                     "are enforced too (listed under discovered)")}
        history = evaluate_histories(
            train, synth, ms, holdout=hold, target=cfg.evaluate.target,
            exclude=cfg.evaluate.exclude, discovered=synth_model.discovered_,
            discovered_links=synth_model.discovered_links_, seed=cfg.seed)
        report.notes.extend(history["warnings"])
    ledger.record_not_private("evaluate", reason="fidelity and leakage metrics read the real "
                              "train and holdout splits; publish them only as internal QA")
    if ledger.is_private:  # the privacy numbers are gate metrics too (e.g. epsilon <= 3)
        report.metrics["epsilon"], report.metrics["delta"] = ledger.spent()
    # linked-table numbers are gate metrics too (e.g. km_max_distance[pbc]: {max: 0.1})
    report.metrics["referential_integrity"] = integrity.integrity
    report.metrics["constraint_violations"] = constraints["declared_violations"]
    for label, tv in relational["children_per_parent_tv"].items():
        report.metrics[f"children_per_parent_tv[{label}]"] = tv
    for tname, summary in survival.items():  # km_max_distance, c_index_tstr, ... [table]
        report.metrics.update(survival_metrics(tname, summary))
    for key, value in patients.items():
        report.metrics[f"patient_{key}"] = value
    report.metrics["parent_child_correlation_difference"] = \
        relational["parent_child_correlations"]["mean_abs_difference"]
    # history-level numbers (e.g. history_detection_auc: {max: 0.75}); the synthetic rule
    # count reads the synthetic data and declared rules only under DP (no discovery)
    report.metrics.update(history["metrics"])
    verdict = check_gate(report.metrics, rules, validation_passed=None)
    if privacy is not None:  # only DP-safe rules decide; integrity/violations are synthetic-only
        from synthdata.pipeline.release import dp_gate

        verdict = dp_gate(verdict, ledger)
    sound = integrity.integrity == 1.0 and not constraints["declared_violations"]
    passed = verdict.passed and sound
    export = sound and (verdict.passed or not verdict.judged)  # not judged: `gate: none`
    report.add_section(SECTION, deid_section)
    report.add_section("tables", per_table)
    if survival:
        report.add_section("survival", survival)
    report.add_section("relational", relational)
    report.add_section("constraints", constraints)
    report.add_section("history", {"note": "whole-patient histories of every child table: "
                                   "synthdata.evaluate.history", **history["tables"],
                                   "warnings": history["warnings"]})
    if patients:
        report.add_section("patients", {"unit": "one patient (root row) with a summary of their "
                                        "linked rows: synthdata.medical.patients", **patients})
    # the structural checks are rules of every linked-table gate: listed with the others
    structural = [
        {"metric": "referential_integrity", "rule": "== 1", "operator": "==", "threshold": 1.0,
         "value": integrity.integrity, "passed": integrity.integrity == 1.0,
         "reason": f"{integrity.integrity:.4g} (required: 1)"},
        {"metric": "constraint_violations", "rule": "== 0", "operator": "==", "threshold": 0.0,
         "value": constraints["declared_violations"],
         "passed": not constraints["declared_violations"],
         "reason": f"{constraints['declared_violations']} declared constraint violation(s)"}]
    gate = gate_section(verdict, structural, passed, referential_integrity_required=1.0,
                        declared_constraint_violations_allowed=0)
    report.add_section("gate", gate)
    report.add_section("privacy", ledger.to_dict() | {"statement": ledger.plain_language()})
    report.add_section("budget", budget_section(budget, privacy))
    report.add_section("timings", dict(timer.timings))
    manifest = build_manifest(cfg, fingerprints, train[root], None if hold is None else hold[root],
                         synth[root], timer, ledger, verdict)
    manifest["rows"] = {t: {"train": len(train[t]), "synthetic": len(synth[t])} for t in synth}
    if verdict.judged:  # the structural checks count too
        manifest["gate"].update(passed=passed, status="passed" if passed else "failed")
    if privacy is not None:
        from synthdata.pipeline.release import dp_manifest, mark_not_private

        manifest = dp_manifest(manifest, n_noisy, cfg,
                                [f"{t}.{cfg.output.format}" for t in synth])
        manifest["rows"]["synthetic_per_table"] = {t: len(synth[t]) for t in synth}
        manifest["release"]["covered_by_epsilon"].remove("expectations.json")  # not written
        mark_not_private(report)
    report.add_section("manifest", manifest)
    written = None
    if export:
        for tname, frame in ms.unpack_keys(synth).items():
            path = write_table(frame, run_dir / f"{tname}.{cfg.output.format}", cfg.output.format,
                               neutralize=cfg.output.neutralize_formulas)
            written = written or path
    ms.save(run_dir / "schema.yaml")
    atomic_write_text(run_dir / "report.json", report.to_json())
    atomic_write_text(run_dir / "report.html", report.to_html())
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))
    metrics = dict(report.metrics)
    return RunResult(run_dir=run_dir, passed=passed, metrics=metrics, synthetic_path=written,
                     gate=list(verdict.results), timings=dict(timer.timings),
                     judged=verdict.judged)


PATIENT_LEAKAGE = ("exact_copies", "exact_copy_share", "exact_copy_excess", "dcr_share",
                   "dcr_median_ratio", "nndr", "mia_auc", "mia_tpr_at_1pct_fpr",
                   "singling_out_risk", "linkability_risk", "inference_risk")


def _patient_leakage(train: pd.DataFrame, synth: pd.DataFrame,
                     hold: dict[str, pd.DataFrame] | None, ms: Any, cfg: PipelineConfig
                     ) -> dict[str, Any]:
    """Leakage with one record per patient: ``train``/``synth`` are patient tables
    (:func:`~synthdata.medical.patients.patient_table`), ``hold`` the linked holdout tables."""
    from synthdata.evaluate import evaluate
    from synthdata.medical.patients import patient_schema, patient_table

    if hold is None:
        return {}
    sub = evaluate(train, synth, holdout=patient_table(hold, ms), schema=patient_schema(ms),
                   seed=cfg.seed, sections=("leakage", "risks"))
    return {k: v for k, v in sub.metrics.items()
            if v is not None and k.split("_ci_")[0] in PATIENT_LEAKAGE}


def _local_names(names: Any, table: str, ms: Any) -> list[str]:
    """``column`` and ``table.column`` entries of ``names`` that belong to ``table``."""
    out = []
    for name in names:
        head, dot, rest = str(name).partition(".")
        if dot and head in ms.tables:
            if head == table:
                out.append(rest)
        else:
            out.append(str(name))
    return out


def _key_columns(ms: Any, table: str) -> set[str]:
    """Primary-key and link columns of ``table`` (never survival covariates)."""
    keys = set(ms.primary_keys.get(table, ()))
    keys |= {fk.column for fk in ms.foreign_keys if fk.child == table}
    keys |= {fk.parent_column for fk in ms.foreign_keys if fk.parent == table}
    return keys


def _check_not_empty(synth: dict[str, Any], model: Any) -> None:
    """An empty synthetic table ends the run with one actionable error."""
    empty = [t for t, df in synth.items() if len(df) == 0]
    if not empty:
        return
    fixes = "; ".join(f"{k}: {v}" for k, v in getattr(model, "fixes_", {}).items())
    raise DataError(
        f"the synthetic table(s) {', '.join(empty)} came out empty, so nothing can be "
        "evaluated or released" + (f" (repairs while sampling: {fixes})" if fixes else "")
        + ". Under privacy this means the noise swamped the child counts or the time "
        "bounds: raise epsilon, lower privacy.max_rows_per_unit, or use more patients")

