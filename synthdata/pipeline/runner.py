"""The pipeline runner: what ``synthdata run PIPELINE.yaml`` executes."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata._progress import ProgressOption, progress_reporter
from synthdata.errors import ConfigError, DataError
from synthdata.io.files import (
    PRIVATE_DIR_MODE,
    atomic_write_text,
    fingerprint,
    frame_fingerprint,
    private_dir,
    read_table,
    write_table,
)
from synthdata.pipeline.budget import dp_config
from synthdata.pipeline.checks import check_run_columns, preflight
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.deid import LEDGER_REASON, LEDGER_STEP, SECTION, deid_table, record_scan
from synthdata.pipeline.rare import SECTION as RARE_SECTION
from synthdata.pipeline.rare import merge_rare_categories
from synthdata.pipeline.release import (
    RunResult,
    build_manifest,
    dp_gate,
    dp_manifest,
    mark_not_private,
    resolve_gate,
)
from synthdata.schema.model import Schema, load_yaml
from synthdata.types import Progress

log = logging.getLogger(__name__)



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
                 output_dir: str | Path | None = None, progress: ProgressOption = None,
                 data: pd.DataFrame | None = None) -> RunResult:
    """Run a pipeline end to end and write its run directory.

    Writes ``report.json``, ``report.html``, ``manifest.json`` and ``schema.yaml``; writes
    ``synthetic.csv`` (or ``.parquet``) only when the gate passes, or when the pipeline
    says ``gate: none`` (then the run is NOT JUDGED: ``result.judged`` is False). Without a
    ``gate:`` key the ``default`` preset judges. The run folder is private (0700, files
    0600). ``data`` (a pandas or polars DataFrame) replaces the configured source (used by
    the service and notebooks). ``data.sql`` reads a table or query from a database.

    Everything that can be checked without the data (gate rules and metric names, the
    generator and its parameter names, the privacy block, linked tables without
    conditions) is checked before a file is read or a folder made; the target column and
    the sample conditions are checked against the schema before fitting. ``progress``
    takes what ``fit`` takes (None: silent; True: a bar or plain lines; a callable).

    Examples
    --------
    >>> result = run_pipeline("pipelines/flchain.yaml")     # doctest: +SKIP
    >>> result.run_dir                                        # doctest: +SKIP
    """
    cfg = _load_config(config)
    preflight(cfg)
    if not callable(progress):
        with progress_reporter(progress) as callback:
            return run_pipeline(cfg, output_dir=output_dir, progress=callback, data=data)
    if data is not None:  # a polars DataFrame becomes pandas once, before anything reads it
        from synthdata.io.sql import as_pandas

        data = as_pandas(data, where="data")
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
    from synthdata.evaluate import evaluate
    from synthdata.evaluate.gate import check_gate
    from synthdata.models.registry import make_generator
    from synthdata.pipeline.budget import budget_section
    from synthdata.privacy.group import check_privacy_unit
    from synthdata.privacy.ledger import PrivacyLedger

    if cfg.data.tables is not None:
        from synthdata.pipeline.multitable import run_multitable

        return run_multitable(cfg, run_dir, timer, progress, budget=budget)
    if cfg.data.fhir is not None:
        from synthdata.pipeline.fhir import run_fhir

        return run_fhir(cfg, run_dir, timer, progress, budget=budget)
    privacy = dp_config(cfg)
    check_privacy_unit(privacy, linked=False)   # before any data is read
    with timer.step("load"):
        df = load_frame(cfg, data)
        df = _drop_columns(df, cfg.data.drop)
        schema = _schema_for(df, cfg) if privacy is None else _declared_schema_for(df, cfg)
        schema.validate(df, where=_where(cfg, data))
        # under DP the input's hash would identify the table: never computed, never shipped
        input_fp = None if privacy is not None else (
            fingerprint(cfg.data.path) if data is None and cfg.data.path is not None
            else frame_fingerprint(df))
        # declared rules the real rows may break: on_real_violation drop|repair (counted)
        from synthdata.constraints.enforce import apply_real_policy

        df, real_violations = apply_real_policy(df, schema, table=_where(cfg, data))
    progress("load", 1, 1)
    before_deid = schema
    with timer.step("deid"):  # before the split: train, holdout and schema are de-identified
        df, schema, deid_section = deid_table(df, schema, cfg.deid, seed=cfg.seed,
                                              where=_where(cfg, data))
        df, schema, rare_section = merge_rare_categories(df, schema, cfg.deid.rare_categories,
                                                         private=cfg.privacy is not None)

    rules = resolve_gate(cfg.gate)
    check_run_columns(cfg, schema, before_deid)  # target and conditions, before any fitting
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
    gen = make_generator(cfg.generator.kind, schema, seed=cfg.seed, privacy=privacy,
                            **cfg.generator.params)
    with timer.step("fit"):
        gen.fit(train, ledger=ledger, progress=progress)
    n_rows = cfg.sample.rows or (len(train) if n_noisy is None else n_noisy)
    augmented = None
    with timer.step("sample"):  # the first chunk: all rows when they fit in one
        if cfg.sample.augment is not None:  # extra rows for the smaller groups, all at once
            from synthdata.pipeline.augment import augment_rows

            synth, augmented = augment_rows(gen, train, cfg, schema, n_noisy=n_noisy,
                                            ledger=ledger)
            n_rows = len(synth)
        else:
            synth = gen.sample(min(n_rows, cfg.sample.chunk_rows),
                               conditions=cfg.sample.conditions or None, seed=cfg.seed)
    progress("sample", 1, 1)

    with timer.step("evaluate"):
        sections = None if cfg.evaluate.full else ("fidelity_basic",)
        report = evaluate(train, synth, holdout=holdout, schema=schema,
                          target=cfg.evaluate.target, seed=cfg.seed, progress=progress,
                          sections=sections, exclude=cfg.evaluate.exclude)
        if cfg.evaluate.full or cfg.evaluate.sensitive:
            _add_groups(report, train, synth, holdout, schema, cfg, ledger)
        if augmented is not None:
            from synthdata.pipeline.augment import add_effect

            add_effect(report, augmented, train, synth, holdout, schema, cfg, ledger)
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
    partial = None
    if n_rows > len(synth):  # more rows than one chunk: streamed to disk before the gate
        partial, later = _stream_rows(gen, synth, n_rows, cfg, schema, run_dir, timer, progress)
        report.metrics["constraint_violations"] += later
        report.add_section("sample", {
            "rows": n_rows, "chunk_rows": cfg.sample.chunk_rows, "evaluated_rows": len(synth),
            "rule": "the evaluation, validation and the gate's metrics read the first chunk "
                    f"({len(synth)} rows); declared constraints are enforced in every chunk "
                    "and constraint_violations counts every row written; formulas are "
                    "neutralised in every chunk"})

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
        verdict = dp_gate(verdict, ledger)
    report.add_section("gate", verdict.to_dict())
    report.add_section("privacy", ledger.to_dict() | {"statement": ledger.plain_language()})
    report.add_section("budget", budget_section(budget, privacy))
    report.add_section("timings", dict(timer.timings))
    manifest = build_manifest(cfg, input_fp, train, holdout, synth, timer, ledger, verdict,
                         n_synthetic=n_rows)
    if privacy is not None:
        manifest = dp_manifest(manifest, n_noisy, cfg)
        manifest["rows"]["synthetic"] = n_rows  # a DP release (augment: planned from DP facts)
        mark_not_private(report)
    report.add_section("manifest", manifest)

    synth_path = None
    if verdict.passed or not verdict.judged:  # not judged: exported because `gate: none`
        target = run_dir / f"synthetic.{cfg.output.format}"
        if partial is not None:
            synth_path = partial.replace(target)
        else:
            synth_path = write_table(synth, target, cfg.output.format,
                                     neutralize=cfg.output.neutralize_formulas)
    elif partial is not None:
        partial.unlink()  # refused: the streamed rows never leave the run's temporary folder
    schema.save(run_dir / "schema.yaml")
    if suite_json is not None:
        atomic_write_text(run_dir / "expectations.json", suite_json)
    atomic_write_text(run_dir / "report.json", report.to_json())
    atomic_write_text(run_dir / "report.html", report.to_html())
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return RunResult(run_dir=run_dir, passed=verdict.passed, metrics=dict(report.metrics),
                     synthetic_path=synth_path, gate=list(verdict.results),
                     timings=dict(timer.timings), judged=verdict.judged)


def _stream_rows(gen: Any, first: pd.DataFrame, n_rows: int, cfg: PipelineConfig,
                 schema: Schema, run_dir: Path, timer: _Timer,
                 progress: Progress) -> tuple[Path, int]:
    """Sample and write all ``n_rows`` chunk by chunk into a hidden file of the run folder.

    Returns the file (renamed to ``synthetic.*`` only if the gate lets it out) and the
    declared-constraint violations in the chunks after the first (DP-safe: synthetic rows
    against declared rules only).
    """
    from synthdata.constraints.report import synthetic_violations
    from synthdata.io.files import write_table_chunks
    from synthdata.pipeline.stream import sample_chunks

    later = [0]
    done = [0]

    def chunks() -> Iterator[pd.DataFrame]:
        for index, chunk in enumerate(sample_chunks(
                gen, n_rows, cfg.sample.chunk_rows, seed=cfg.seed,
                conditions=cfg.sample.conditions or None, first=first)):
            if index > 0 and schema.constraints:
                later[0] += synthetic_violations(chunk, schema)
            done[0] += len(chunk)
            progress("export", done[0], n_rows)
            yield chunk

    partial = run_dir / f".synthetic.{cfg.output.format}.partial"
    with timer.step("sample_stream"):
        write_table_chunks(chunks(), partial, cfg.output.format,
                           neutralize=cfg.output.neutralize_formulas)
    return partial, later[0]


def _declared_schema_for(df: pd.DataFrame, cfg: PipelineConfig) -> Schema:
    """The schema of a DP run: declared only (ConfigError lists every missing field)."""
    from synthdata.schema.public import declared_schema

    where = str(cfg.data.schema_path) if cfg.data.schema_path is not None else "data.schema"
    overrides = load_yaml(cfg.data.schema_path) if cfg.data.schema_path is not None else None
    return declared_schema(overrides, list(df.columns), name=cfg.data.table or cfg.data.stem,
                           drop=cfg.data.drop, where=where)


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


def load_frame(cfg: PipelineConfig, data: Any = None) -> pd.DataFrame:
    """The real table of a one-table pipeline: ``data`` (pandas or polars) when given, else
    the file at ``data.path`` or the SQL source (``data.sql``)."""
    from synthdata.io.files import normalize_cells

    if data is not None:
        from synthdata.io.sql import as_pandas
        from synthdata.schema.infer import check_frame

        df = as_pandas(data, where="data")
        names = list(df.columns)
        if len(set(names)) != len(names):
            check_frame(df, where="data")  # names the repeated columns
        return normalize_cells(df)
    if cfg.data.sql is not None:
        from synthdata.io.sql import read_sql

        return read_sql(cfg.data.sql, query=cfg.data.query,
                        table=cfg.data.table if cfg.data.query is None else None)
    return read_table(cfg.data.path, encoding=cfg.data.encoding, fmt=cfg.data.format)


def _where(cfg: PipelineConfig, data: Any) -> str:
    return "data" if data is not None else cfg.data.source


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
        columns = overrides.get("columns") if isinstance(overrides, dict) else None
        if isinstance(columns, list) and cfg.data.drop:  # shape errors: with_overrides names them
            overrides = dict(overrides)
            overrides["columns"] = [c for c in columns if not isinstance(c, dict)
                                    or c.get("name") not in cfg.data.drop]
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


def _add_groups(report: Any, train: pd.DataFrame, synth: pd.DataFrame,
                holdout: pd.DataFrame | None, schema: Any, cfg: Any, ledger: Any) -> None:
    """Per-group fidelity, utility and fairness (issue 23), when there are sensitive columns."""
    from synthdata.evaluate.groups import group_report, sensitive_columns

    if not sensitive_columns(schema, cfg.evaluate.sensitive):
        return
    section = group_report(train, synth, holdout=holdout, schema=schema,
                           sensitive=cfg.evaluate.sensitive, target=cfg.evaluate.target,
                           min_group_size=cfg.evaluate.min_group_size, seed=cfg.seed,
                           detection=cfg.evaluate.full, exclude=cfg.evaluate.exclude)
    report.metrics.update(section["metrics"])
    report.add_section("groups", section)
    ledger.record_not_private("evaluate.groups", reason="per-group shares, fidelity and "
                              "fairness read the real train and holdout splits")

