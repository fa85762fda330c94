"""What a run releases, shared by the one-table and the linked-table runs.

The run's result, the gate spec check, the manifest, and the DP release path: the gate
under DP, the DP manifest (no exact counts, no input hash) and the "not private" labels on
the report's internal QA sections.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from synthdata.pipeline.config import PipelineConfig, public_config


@dataclass
class RunResult:
    """What a pipeline run produced.

    ``passed``: the gate judged the data and every rule held. ``judged`` is False only for
    an explicit ``gate: none``: then ``passed`` is False, the data is exported anyway (the
    user said so) and ``gate_status`` is ``"not_judged"``. ``synthetic_path`` is set exactly
    when data was exported.
    """

    run_dir: Path
    passed: bool
    metrics: dict[str, Any]
    synthetic_path: Path | None
    gate: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    judged: bool = True
    notes: list[str] = field(default_factory=list)  # lines for the CLI (e.g. the FHIR read summary)

    @property
    def gate_status(self) -> str:
        """``"passed"``, ``"failed"`` or ``"not_judged"``."""
        if not self.judged:
            return "not_judged"
        return "passed" if self.passed else "failed"


def gate_section(verdict: Any, structural: list[dict[str, Any]], passed: bool,
                 **extra: Any) -> dict[str, Any]:
    """The report's ``gate`` section when a run's own structural checks (referential
    integrity, coherence, ...) count beside the gate's rules: one list of rows, the counts
    and status over all of them (``passed`` is the verdict of both)."""
    rows = list(verdict.results) + structural
    return {**verdict.to_dict(), "results": rows, "n_rules": len(rows),
            "n_failed": sum(not r["passed"] and r.get("decides", True) for r in rows),
            "passed": passed if verdict.judged else None,
            "status": ("not_judged" if not verdict.judged else
                       "passed" if passed else "failed"), **extra}


def resolve_gate(spec: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """Check the pipeline's gate before any work; return the spec ``check_gate`` takes.

    No ``gate:`` means the ``default`` preset; ``gate: none`` means NOT JUDGED (exported
    without a verdict); a string names a preset; a mapping holds rules. An unknown preset
    or metric is a ``ConfigError`` here, before fitting.
    """
    from synthdata.evaluate.gate import resolve_gate as parse

    parse(spec, where="gate")
    return spec


# -- the DP release path: only declared facts and DP releases leave the run ------------------
NOT_PRIVATE_LABEL = "not private (internal QA, do not publish)"
# Files of a DP run folder: release artefacts covered by the run's (ε, δ), and internal QA.
DP_RELEASE_FILES = ("schema.yaml", "expectations.json", "manifest.json")  # + the synthetic data
DP_QA_FILES = ("report.json", "report.html")
# report.json keys and sections that hold only DP releases or public facts
DP_SAFE_SECTIONS = ("privacy", "manifest", "release", "validation")  # validation: synthetic
# table against the declared schema only


def dp_gate(verdict: Any, ledger: Any) -> Any:
    """Under DP only DP-safe rules decide; the others are kept as advisory (not private)."""
    from synthdata.evaluate.gate import dp_verdict

    verdict = dp_verdict(verdict)
    ledger.record_public("gate", reason="under privacy the export decision reads only DP-safe "
                         "rules (ε, δ, the synthetic data against the declared schema and "
                         "constraints); rules on real-data metrics are advisory")
    ledger.record_public("manifest", reason="a DP run's manifest holds no input hash and no "
                         "exact count; only the config, versions, ledger totals and the noisy n")
    ledger.record_not_private("report", reason="report.json/report.html sections that read the "
                              "real data are marked " + NOT_PRIVATE_LABEL)
    return verdict


def dp_manifest(manifest: dict[str, Any], n_noisy: int | None, cfg: PipelineConfig,
                 synthetic_files: list[str] | None = None) -> dict[str, Any]:
    """The manifest of a DP run: public facts and DP releases only."""
    out = dict(manifest)
    out["input"] = input_entry(cfg) if cfg.data.tables is None else \
        {"tables": sorted(cfg.data.tables)}
    out["rows"] = {"training_units_noisy": n_noisy,
                   "synthetic": cfg.sample.rows or n_noisy,
                   "note": "n is not public: the training count is a DP release (ledger step "
                           "data.count); exact train/holdout counts are not shipped"}
    out.pop("timings_s", None)  # run time grows with n: internal QA (report.json) only
    out["release"] = {
        "covered_by_epsilon": [*(synthetic_files or [f"synthetic.{cfg.output.format}"]),
                               *DP_RELEASE_FILES],
        "internal_qa_not_private": list(DP_QA_FILES),
        "note": "files under covered_by_epsilon hold only declared public facts and DP "
                "releases; report.json/report.html are for the data custodian: their sections "
                "marked '" + NOT_PRIVATE_LABEL + "' read the real data",
    }
    return out


def mark_not_private(report: Any) -> None:
    """Label every report part that reads the real data (a DP run's internal QA)."""
    marked = []
    for name, payload in list(report.sections.items()):
        if name in DP_SAFE_SECTIONS or not isinstance(payload, dict):
            continue
        report.sections[name] = {"privacy_label": NOT_PRIVATE_LABEL, **payload}
        marked.append(name)
    report.add_section("release", {
        "label": NOT_PRIVATE_LABEL,
        "not_private": ["metrics", "summary", "columns", "pairs", "detection", "utility",
                        "coverage", "leakage", "risks", "meta", *marked],
        "dp_safe": [*DP_SAFE_SECTIONS],
        "note": "this report is internal QA for the data custodian: everything listed under "
                "not_private reads the real train/holdout rows (fidelity, leakage, "
                "de-identification counts, row counts, timings) and is outside the DP "
                "guarantee; the release artefacts are listed in manifest.json",
    })


def input_entry(cfg: PipelineConfig) -> dict[str, Any]:
    """The manifest's ``input``: the file, or the SQL source with its password masked."""
    if cfg.data.sql is not None:
        from synthdata.io.sql import safe_url

        return {"sql": safe_url(cfg.data.sql), "query": cfg.data.query, "table": cfg.data.table}
    return {"path": str(cfg.data.path)}


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("synthdata", "numpy", "pandas", "scikit-learn", "scipy", "torch", "opacus",
                "great-expectations"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(cfg: PipelineConfig, input_fp: str | dict[str, str], train: pd.DataFrame,
                   holdout: pd.DataFrame | None, synth: pd.DataFrame, timer: Any, ledger: Any,
                   verdict: Any, n_synthetic: int | None = None) -> dict[str, Any]:
    return {
        "manifest_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": ({**input_entry(cfg), "sha256": input_fp} if isinstance(input_fp, str)
                  else {"tables": input_fp}),
        "config": public_config(cfg),
        "seed": cfg.seed,
        "rows": {"train": len(train), "holdout": 0 if holdout is None else len(holdout),
                 "synthetic": len(synth) if n_synthetic is None else n_synthetic},
        "versions": package_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "timings_s": dict(timer.timings),
        "privacy": {"epsilon_delta": list(ledger.spent()) if ledger.epsilon is not None else None},
        "gate": {"status": verdict.status, "passed": verdict.passed if verdict.judged else None,
                 "preset": verdict.preset,
                 **({} if verdict.judged else {"note": "NOT JUDGED: the pipeline says gate: "
                                               "none; exported without a verdict"})},
    }
