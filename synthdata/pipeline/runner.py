"""The pipeline runner: what ``synthdata run PIPELINE.yaml`` executes."""

from __future__ import annotations

import json
import logging
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.io.files import (PRIVATE_DIR_MODE, atomic_write_text, fingerprint, private_dir,
                                read_table, write_table)
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.deid import (LEDGER_REASON, LEDGER_STEP, SECTION, deid_table,
                                     record_scan)
from synthdata.pipeline.rare import SECTION as RARE_SECTION
from synthdata.pipeline.rare import merge_rare_categories
from synthdata.schema.model import Schema, load_yaml

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def _no_progress(step: str, done: int, total: int) -> None:
    return None


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

    @property
    def gate_status(self) -> str:
        """``"passed"``, ``"failed"`` or ``"not_judged"``."""
        if not self.judged:
            return "not_judged"
        return "passed" if self.passed else "failed"


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)


def run_pipeline(config: str | Path | PipelineConfig | dict[str, Any], *,
                 output_dir: str | Path | None = None, progress: Progress = _no_progress,
                 data: pd.DataFrame | None = None) -> RunResult:
    """Run a pipeline end to end and write its run directory.

    Writes ``report.json``, ``report.html``, ``manifest.json`` and ``schema.yaml``; writes
    ``synthetic.csv`` (or ``.parquet``) only when the gate passes, or when the pipeline
    says ``gate: none`` (then the run is NOT JUDGED: ``result.judged`` is False). Without a
    ``gate:`` key the ``default`` preset judges. The run folder is private (0700, files
    0600). ``data`` replaces ``data.path`` (used by the service).

    Examples
    --------
    >>> result = run_pipeline("pipelines/flchain.yaml")     # doctest: +SKIP
    >>> result.run_dir                                        # doctest: +SKIP
    """
    cfg = _load_config(config)
    timer = _Timer()
    out_root = Path(output_dir) if output_dir is not None else cfg.output.dir
    tmp_dir = _make_tmp_dir(out_root, cfg)
    hold = None
    try:
        # per-dataset budget (privacy.budget): reserved before any data is read, charged
        # with the ledger's spent (ε, δ) once the run has succeeded
        from synthdata.pipeline.budget import reserve_budget

        hold = reserve_budget(cfg, data)
        result = _run(cfg, data, tmp_dir, timer, progress, budget=hold)
        if hold is not None:
            hold.commit()
        final = _final_dir(out_root, cfg)
        tmp_dir.rename(final)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if hold is not None:
            hold.abandon()
        raise
    result.run_dir = final
    if result.synthetic_path is not None:
        result.synthetic_path = final / result.synthetic_path.name
    return result


def _load_config(config: str | Path | PipelineConfig | dict[str, Any]) -> PipelineConfig:
    if isinstance(config, PipelineConfig):
        return config
    if isinstance(config, dict):
        return PipelineConfig.from_dict(config)
    return PipelineConfig.from_yaml(config)


def _make_tmp_dir(root: Path, cfg: PipelineConfig) -> Path:
    try:
        private_dir(root)  # a new output root is private; an existing one keeps its mode
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        tmp = root / f".run-{stamp}.tmp"
        tmp.mkdir(mode=PRIVATE_DIR_MODE)
        tmp.chmod(PRIVATE_DIR_MODE)  # the run folder holds rows derived from the real data
        probe = tmp / ".probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"output directory {root} is not writable ({err.strerror or err}); "
                          "choose another with --output-dir or output.dir") from err
    return tmp


def _final_dir(root: Path, cfg: PipelineConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name or cfg.data.stem).strip("._") or "run"
    base = f"run-{stamp}-{label}"
    final, i = root / base, 1
    while final.exists():
        i += 1
        final = root / f"{base}-{i}"
    return final


def _run(cfg: PipelineConfig, data: pd.DataFrame | None, run_dir: Path, timer: _Timer,
         progress: Progress, budget: Any = None) -> RunResult:
    import synthdata as sd
    from synthdata.evaluate import evaluate
    from synthdata.evaluate.gate import check_gate
    from synthdata.pipeline.budget import budget_section
    from synthdata.privacy.group import check_privacy_unit
    from synthdata.privacy.ledger import PrivacyLedger

    if cfg.data.tables is not None:
        from synthdata.pipeline.multitable import run_multitable

        return run_multitable(cfg, run_dir, timer, progress, budget=budget)
    privacy = _dp_config(cfg)
    check_privacy_unit(privacy, linked=False)   # before any data is read
    with timer.step("load"):
        if data is None:
            df = read_table(cfg.data.path, encoding=cfg.data.encoding, fmt=cfg.data.format)
        else:
            df = data
        # under DP the input's hash would identify the table: never computed, never shipped
        input_fp = None if privacy is not None else (
            fingerprint(cfg.data.path) if data is None else _frame_fingerprint(df))
        df = _drop_columns(df, cfg.data.drop)
        schema = _schema_for(df, cfg) if privacy is None else _declared_schema_for(df, cfg)
        schema.validate(df, where=str(cfg.data.path))
        # declared rules the real rows may break: on_real_violation drop|repair (counted)
        from synthdata.constraints.enforce import apply_real_policy

        df, real_violations = apply_real_policy(df, schema, table=str(cfg.data.path))
    progress("load", 1, 1)
    with timer.step("deid"):  # before the split: train, holdout and schema are de-identified
        df, schema, deid_section = deid_table(df, schema, cfg.deid, seed=cfg.seed,
                                              where=str(cfg.data.path) if data is None else "data")
        df, schema, rare_section = merge_rare_categories(df, schema, cfg.deid.rare_categories,
                                                         private=cfg.privacy is not None)

    rules = resolve_gate(cfg.gate)
    train, holdout = split_frame(df, cfg.split.holdout, cfg.split.seed)
    n_noisy = None
    if privacy is None:
        ledger = PrivacyLedger.from_config(privacy, n_rows=len(train))
    else:  # n is not public: one DP count first; the noisy n sets δ, rates and sizes
        from synthdata.privacy.count import dp_unit_count

        ledger, n_noisy = dp_unit_count(len(train), privacy, what="training rows")
        ledger.record_public("schema", reason="declared in the schema file; nothing inferred "
                             "from the rows")
    if budget is not None:  # the per-dataset budget charges what this ledger spends
        budget.attach(ledger)
    if deid_section["enabled"]:
        ledger.record_public(LEDGER_STEP, reason=LEDGER_REASON)
    record_scan(ledger, deid_section)
    gen = sd.make_generator(cfg.generator.kind, schema, seed=cfg.seed, privacy=privacy,
                            **cfg.generator.params)
    with timer.step("fit"):
        gen.fit(train, ledger=ledger, progress=progress)
    n_rows = cfg.sample.rows or (len(train) if n_noisy is None else n_noisy)
    with timer.step("sample"):
        synth = gen.sample(n_rows, conditions=cfg.sample.conditions or None, seed=cfg.seed)
    progress("sample", 1, 1)

    with timer.step("evaluate"):
        sections = None if cfg.evaluate.full else ("fidelity_basic",)
        report = evaluate(train, synth, holdout=holdout, schema=schema,
                          target=cfg.evaluate.target, seed=cfg.seed, progress=progress,
                          sections=sections, exclude=cfg.evaluate.exclude)
    report.add_section(SECTION, deid_section)
    report.add_section(RARE_SECTION, rare_section)
    if rare_section["columns"]:
        ledger.record_not_private("deid.rare_categories", reason="which categories were merged "
                                  "depends on exact counts of the real rows; the report's "
                                  "rare_categories section is internal QA")
    ledger.record_not_private("evaluate", reason="fidelity and leakage metrics read the real "
                              "train and holdout splits; publish them only as internal QA")
    with timer.step("constraints"):
        # Violations of declared rules (0 by enforcement) and of proposed ones. Under
        # privacy: no discovery, since found rules are a property of the private data;
        # declared constraints are public and free.
        from synthdata.constraints.report import constraints_section, synthetic_violations

        section = constraints_section(train, synth, schema, discover=privacy is None)
        section["real_violations"] = real_violations
    report.add_section("constraints", section)
    ledger.record_not_private("constraints.report", reason="violation counts of proposed rules "
                              "compare the synthetic data with the real training split")
    report.metrics["constraint_violations"] = section["declared_violations"]
    if privacy is not None:  # DP-safe: the synthetic table against the declared rules alone
        report.metrics["constraint_violations"] = synthetic_violations(synth, schema)

    # Under DP the shipped suite may state only public facts: inferred bounds and category
    # lists are properties of the private table (and DP outputs may lawfully exceed them).
    suite_schema = _public_only(schema) if privacy is not None else schema
    validation_passed, suite_json = _validate(synth, suite_schema, timer, report)
    if ledger.is_private:  # the privacy numbers are gate metrics too (e.g. epsilon <= 3)
        report.metrics["epsilon"], report.metrics["delta"] = ledger.spent()
    verdict = check_gate(report.metrics, rules, validation_passed=validation_passed)

    if privacy is None:
        ledger.record_not_private("manifest", reason="the manifest holds the input's SHA-256 "
                                  "and exact train/holdout row counts; they are not "
                                  "differentially private")
        ledger.record_not_private("gate", reason="the export decision reads the non-private "
                                  "evaluation metrics (it reveals one bit: passed or not)")
    else:
        verdict = _dp_gate(verdict, ledger)
    report.add_section("gate", verdict.to_dict())
    report.add_section("privacy", ledger.to_dict() | {"statement": ledger.plain_language()})
    report.add_section("budget", budget_section(budget, privacy))
    report.add_section("timings", dict(timer.timings))
    manifest = _manifest(cfg, input_fp, train, holdout, synth, timer, ledger, verdict)
    if privacy is not None:
        manifest = _dp_manifest(manifest, n_noisy, cfg)
        _mark_not_private(report)
    report.add_section("manifest", manifest)

    synth_path = None
    if verdict.passed or not verdict.judged:  # not judged: exported because `gate: none`
        synth_path = write_table(synth, run_dir / f"synthetic.{cfg.output.format}",
                                 cfg.output.format, neutralize=cfg.output.neutralize_formulas)
    schema.save(run_dir / "schema.yaml")
    if suite_json is not None:
        atomic_write_text(run_dir / "expectations.json", suite_json)
    atomic_write_text(run_dir / "report.json", report.to_json())
    atomic_write_text(run_dir / "report.html", report.to_html())
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return RunResult(run_dir=run_dir, passed=verdict.passed, metrics=dict(report.metrics),
                     synthetic_path=synth_path, gate=list(verdict.results),
                     timings=dict(timer.timings), judged=verdict.judged)


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
_DP_SAFE_SECTIONS = ("privacy", "manifest", "release", "validation")  # validation: synthetic
# table against the declared schema only


def _declared_schema_for(df: pd.DataFrame, cfg: PipelineConfig) -> Schema:
    """The schema of a DP run: declared only (ConfigError lists every missing field)."""
    from synthdata.schema.public import declared_schema

    where = str(cfg.data.schema_path) if cfg.data.schema_path is not None else "data.schema"
    overrides = load_yaml(cfg.data.schema_path) if cfg.data.schema_path is not None else None
    return declared_schema(overrides, list(df.columns), name=cfg.data.table or cfg.data.stem,
                           drop=cfg.data.drop, where=where)


def _dp_gate(verdict: Any, ledger: Any) -> Any:
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


def _dp_manifest(manifest: dict[str, Any], n_noisy: int | None, cfg: PipelineConfig,
                 synthetic_files: list[str] | None = None) -> dict[str, Any]:
    """The manifest of a DP run: public facts and DP releases only."""
    out = dict(manifest)
    out["input"] = {"path": str(cfg.data.path)} if cfg.data.tables is None else \
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


def _mark_not_private(report: Any) -> None:
    """Label every report part that reads the real data (a DP run's internal QA)."""
    marked = []
    for name, payload in list(report.sections.items()):
        if name in _DP_SAFE_SECTIONS or not isinstance(payload, dict):
            continue
        report.sections[name] = {"privacy_label": NOT_PRIVATE_LABEL, **payload}
        marked.append(name)
    report.add_section("release", {
        "label": NOT_PRIVATE_LABEL,
        "not_private": ["metrics", "columns", "pairs", "meta", *marked],
        "dp_safe": [*_DP_SAFE_SECTIONS],
        "note": "this report is internal QA for the data custodian: everything listed under "
                "not_private reads the real train/holdout rows (fidelity, leakage, "
                "de-identification counts, row counts, timings) and is outside the DP "
                "guarantee; the release artefacts are listed in manifest.json",
    })


def _public_only(schema: Schema) -> Schema:
    """The schema without bounds and categories that are not declared public."""
    import dataclasses

    cols = [c if c.public else dataclasses.replace(c, min=None, max=None, categories=None)
            for c in schema.columns]
    return schema.replace_columns(cols)


def _validate(synth: pd.DataFrame, schema: Schema, timer: _Timer,
              report: Any) -> tuple[bool | None, str | None]:
    """Validate the synthetic table with the great-expectations suite when available."""
    try:
        from synthdata.validate import validate_frame
    except ImportError:  # the validate package is optional
        return None, None
    with timer.step("validate"):
        try:
            result = validate_frame(synth, schema)
        except ConfigError as err:  # great-expectations not installed
            log.info("validation skipped: %s", err)
            report.add_section("validation", {"skipped": str(err)})
            return None, None
    report.add_section("validation", {"passed": result.passed, "results": result.results})
    return result.passed, result.suite_json


def _dp_config(cfg: PipelineConfig) -> Any:
    if cfg.privacy is None:
        return None
    from pydantic import ValidationError

    from synthdata.pipeline.budget import split_privacy
    from synthdata.pipeline.config import format_validation_error
    from synthdata.privacy.config import DPConfig

    try:
        return DPConfig(**split_privacy(cfg.privacy)[0])  # privacy.budget: pipeline/budget.py
    except ValidationError as err:
        raise ConfigError("privacy: " + format_validation_error(err)) from None
    except TypeError as err:
        raise ConfigError(f"privacy: {err}") from None


def _drop_columns(df: pd.DataFrame, drop: tuple[str, ...]) -> pd.DataFrame:
    missing = [c for c in drop if c not in df.columns]
    if missing:
        raise ConfigError(f"data.drop names column(s) {missing} that the data does not have; "
                          f"columns are {list(df.columns)}")
    return df.drop(columns=list(drop)) if drop else df


def _schema_for(df: pd.DataFrame, cfg: PipelineConfig) -> Schema:
    name = cfg.data.table or cfg.data.stem
    schema = Schema.infer(df, name=name)
    if cfg.data.schema_path is not None:
        overrides = load_yaml(cfg.data.schema_path)
        if not isinstance(overrides, dict):
            raise ConfigError(f"{cfg.data.schema_path}: a schema must be a YAML mapping")
        columns = overrides.get("columns") or []
        overrides = dict(overrides)
        overrides["columns"] = [c for c in columns if c.get("name") not in cfg.data.drop]
        schema = schema.with_overrides(overrides, where=str(cfg.data.schema_path))
    return schema


def split_frame(df: pd.DataFrame, holdout: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Seeded random train/holdout split (holdout ``None`` when the share is 0)."""
    n = len(df)
    if holdout <= 0:
        return df.reset_index(drop=True), None
    n_hold = int(round(n * holdout))
    if n_hold < 1 or n - n_hold < 2:
        raise DataError(f"the table has {n} row(s): too few to split {holdout:.0%} off as a "
                        "holdout; set split.holdout: 0 or provide more rows")
    perm = np.random.default_rng(seed).permutation(n)
    hold_idx, train_idx = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    return df.iloc[train_idx].reset_index(drop=True), df.iloc[hold_idx].reset_index(drop=True)


def _frame_fingerprint(df: pd.DataFrame) -> str:
    import hashlib

    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("synthdata", "numpy", "pandas", "scikit-learn", "scipy", "torch", "opacus",
                "great-expectations"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _manifest(cfg: PipelineConfig, input_fp: str | dict[str, str], train: pd.DataFrame,
              holdout: pd.DataFrame | None, synth: pd.DataFrame, timer: _Timer, ledger: Any,
              verdict: Any) -> dict[str, Any]:
    return {
        "manifest_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": ({"path": str(cfg.data.path), "sha256": input_fp} if isinstance(input_fp, str)
                  else {"tables": input_fp}),
        "config": json.loads(cfg.model_dump_json(by_alias=True)),
        "seed": cfg.seed,
        "rows": {"train": len(train), "holdout": 0 if holdout is None else len(holdout),
                 "synthetic": len(synth)},
        "versions": package_versions(),
        "platform": {"machine": platform.machine(), "system": platform.system()},
        "timings_s": dict(timer.timings),
        "privacy": {"epsilon_delta": list(ledger.spent()) if ledger.epsilon is not None else None},
        "gate": {"status": verdict.status, "passed": verdict.passed if verdict.judged else None,
                 "preset": verdict.preset,
                 **({} if verdict.judged else {"note": "NOT JUDGED: the pipeline says gate: "
                                               "none; exported without a verdict"})},
    }
