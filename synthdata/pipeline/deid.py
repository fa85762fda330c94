"""The pipeline's de-identification step: the ``deid:`` block, applied before fitting.

It runs on the loaded table(s) before the train/holdout split, so the generator, the
evaluation (train and holdout) and the shipped schema all see the de-identified columns.

First every column is scanned for identifiers (:func:`synthdata.medical.identifiers.scan_identifiers`,
names and a sample of values). A finding the schema leaves open (no ``pii: direct``/``quasi``
mark that de-identification acts on, no ``deid.types`` entry, not ``pii: none``) stops the run
with a :class:`~synthdata.errors.DataError` naming each column, its evidence and the ways out
(``deid.unmarked: error``, the default), or gets the Safe Harbor rule for its detected type
(``deid.unmarked: transform``). A column marked ``direct``/``quasi`` whose name gives no type
takes the detected one. The report's ``deidentification`` section lists every finding, what
was decided, and every rule applied per column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from synthdata.errors import DataError
from synthdata.medical.identifiers import scan_identifiers, unmarked_message, unresolved
from synthdata.medical.safe_harbor import (
    DeidLog,
    DeidPolicy,
    IdentifierType,
    deidentify,
    deidentify_tables,
    guess_identifier_type,
    identifier_plan,
    latest_year,
)
from synthdata.pipeline.config import DeidConfig
from synthdata.schema.model import ColumnKind, PiiRole, Schema

SECTION = "deidentification"
LEDGER_STEP = "deid"
LEDGER_REASON = ("Safe Harbor rules fixed by the pipeline, applied row by row before fitting: "
                 "each output row depends only on its own input row (and, for a date shift, on "
                 "its patient's random draw); no statistic of the table is released")


SCAN_STEP = "deid.scan"
SCAN_REASON = ("the identifier scan reads column names and a sample of values: it can stop the "
               "run, and its evidence (exact counts) is in the report's de-identification "
               "section (internal QA, do not publish)")


def record_scan(ledger: Any, section: dict[str, Any]) -> None:
    """Put the identifier scan on the ledger: not private; it shapes the release only when
    ``deid.unmarked: transform`` transformed columns because of what it found, which a ledger
    with a budget refuses (under DP, mark identifiers in the schema, a public document)."""
    if "identifier_scan" not in section:
        return
    detected = sorted(r["column"] if r.get("table") is None else f"{r['table']}.{r['column']}"
                      for r in section["identifier_scan"]
                      if r["decision"].startswith("transformed"))
    reason = SCAN_REASON
    if detected:
        reason += (f"; deid.unmarked: transform de-identified column(s) {detected} because of "
                   "what it found: mark them in the schema instead")
    ledger.record_not_private(SCAN_STEP, reason=reason, shapes_release=bool(detected))


def deid_policy(cfg: DeidConfig, *, seed: int, types: dict[str, str] | None = None,
                reference_year: int | None = None) -> tuple[DeidPolicy, list[str]]:
    """The :class:`DeidPolicy` a ``deid:`` block asks for, and notes on defaults filled in.

    ``reference_year`` is the data's latest year (used when ``cfg.reference_year`` is unset);
    with neither, birth years are checked against the run's year and a note says so.
    """
    notes = []
    year = cfg.reference_year
    if year is None and reference_year is not None:
        year = reference_year
        notes.append(f"deid.reference_year not set: birth years are checked against the latest "
                     f"year among the data's own dates, {year}")
    elif year is None:
        year = datetime.now(timezone.utc).year
        notes.append(f"deid.reference_year not set and the data has no dates besides birth "
                     f"dates: birth years are checked against the run's year, {year}")
    policy = DeidPolicy(types=dict(cfg.types if types is None else types),
                        identifiers=cfg.identifiers, dates=cfg.dates,
                        patient_column=cfg.patient_column, max_shift_days=cfg.max_shift_days,
                        reference_year=year, safe_text=tuple(cfg.safe_text), seed=seed)
    return policy, notes


def check_identifiers(df: pd.DataFrame, schema: Schema, cfg: DeidConfig, *, seed: int = 0,
                      table: str | None = None, where: str = "data"
                      ) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Scan one table; return the ``{column: type}`` entries to add to the policy and the report rows.

    Raises :class:`DataError` for findings the schema leaves open when ``cfg.unmarked`` is
    ``error`` or de-identification is off.
    """
    prefix = "" if table is None else f"{table}."
    own_types = {c[len(prefix):]: t for c, t in cfg.types.items() if c.startswith(prefix)} \
        if table is not None else dict(cfg.types)
    findings = scan_identifiers(df, schema, seed=seed, table=table)
    types: dict[str, str] = {}
    for f in findings:  # marked, but the name gives no type: the detected type
        col = schema[f.column] if f.column in schema else None
        if col is not None and col.pii in (PiiRole.DIRECT, PiiRole.QUASI) \
                and f.column not in own_types and guess_identifier_type(f.column) is None:
            types[f.column] = f.kind
    handled = identifier_plan(df, schema, DeidPolicy(types=own_types | types)) \
        if cfg.enabled else {}
    # with de-identification off, marked columns are left as the user asked, and text columns
    # are never synthesised (their output is empty)
    marked_off = {c.name for c in schema.columns
                  if c.pii in (PiiRole.DIRECT, PiiRole.QUASI) or c.kind == ColumnKind.TEXT}
    open_ = unresolved(findings, schema, handled=set(handled) | (set() if cfg.enabled
                                                                 else marked_off))
    if open_ and (cfg.unmarked == "error" or not cfg.enabled):
        message = unmarked_message(open_, where)
        if not cfg.enabled:
            message += " (de-identification is off: deid.enabled is false, so `transform` " \
                       "cannot apply; mark the columns)"
        raise DataError(message)
    open_names = {f.column for f in open_}
    for f in open_:
        types[f.column] = f.kind
    rows = []
    for f in findings:
        col = schema[f.column] if f.column in schema else None
        if f.column in open_names:
            decision = "transformed (deid.unmarked: transform)"
        elif col is not None and col.pii == PiiRole.NONE:
            decision = "kept (pii: none)"
        elif f.column in own_types:
            decision = "deid.types"
        elif col is not None and col.pii is not None:
            decision = f"marked pii: {col.pii.value}"
        else:
            decision = f"schema kind {col.kind.value}" if col is not None else "handled"
        rows.append(f.to_dict() | {"decision": decision})
    return {prefix + c: t for c, t in types.items()}, rows


def deid_table(df: pd.DataFrame, schema: Schema, cfg: DeidConfig, *, seed: int,
               where: str = "data") -> tuple[pd.DataFrame, Schema, dict[str, Any]]:
    """Check for identifiers and de-identify one table: the new frame, its schema and the section.

    ``where`` names the data in the error raised for unmarked identifiers (a file path).
    """
    added, rows = check_identifiers(df, schema, cfg, seed=seed, where=where)
    types = dict(cfg.types) | added
    if not cfg.enabled:
        left = identifier_plan(df, schema, DeidPolicy(types=dict(cfg.types)))
        return df, schema, _disabled(left) | {"identifier_scan": rows}
    plan_year = latest_year(df, schema, _typed_plan(df, schema, types))
    policy, notes = deid_policy(cfg, seed=seed, types=types, reference_year=plan_year)
    clean, log = deidentify(df, schema, policy=policy)
    log.actions = [_detected(a, added) for a in log.actions]
    new_schema = log.apply_to_schema(schema)
    new_schema.validate(clean, where="de-identified data")
    return clean, new_schema, _section({None: log}, cfg, policy, notes, rows)


def deid_tables(tables: dict[str, pd.DataFrame], schema: Any, cfg: DeidConfig, *, seed: int
                ) -> tuple[dict[str, pd.DataFrame], Any, dict[str, Any]]:
    """De-identify linked tables (a ``MultiTableSchema``): new tables, schema and section."""
    added: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for tname in schema.order():
        more, found = check_identifiers(tables[tname], schema.tables[tname], cfg, seed=seed,
                                        table=tname, where=f"table {tname!r}")
        added |= more
        rows += found
    if not cfg.enabled:
        left = {f"{t}.{c}": k for t in schema.tables
                for c, k in identifier_plan(tables[t], schema.tables[t]).items()}
        return tables, schema, _disabled(left) | {"identifier_scan": rows}
    types = dict(cfg.types) | added
    years = []
    for tname in schema.order():
        own = {c.split(".", 1)[1]: t for c, t in types.items() if c.startswith(f"{tname}.")}
        year = latest_year(tables[tname], schema.tables[tname],
                           _typed_plan(tables[tname], schema.tables[tname], own))
        if year is not None:
            years.append(year)
    policy, notes = deid_policy(cfg, seed=seed, types=types,
                                reference_year=max(years) if years else None)
    clean, new_schema, logs = deidentify_tables(tables, schema, policy=policy)
    for tname, log in logs.items():
        log.actions = [_detected(a, added, f"{tname}.") for a in log.actions]
    for tname, frame in clean.items():
        new_schema.tables[tname].validate(frame, where=f"de-identified table {tname!r}")
    return clean, new_schema, _section(logs, cfg, policy, notes, rows)


def _typed_plan(df: pd.DataFrame, schema: Schema, types: dict[str, str]
                ) -> dict[str, tuple[IdentifierType, str]]:
    return {c: (k, "") for c, k in identifier_plan(df, schema, DeidPolicy(types=types)).items()}


def _detected(action: Any, added: dict[str, str], prefix: str = "") -> Any:
    if prefix + action.column not in added or action.source != "policy":
        return action
    note = "found by the identifier scan" + (f"; {action.note}" if action.note else "")
    return replace(action, source="detected", note=note)


def _section(logs: Mapping[Any, DeidLog], cfg: DeidConfig, policy: DeidPolicy,
             notes: list[str], scan: list[dict[str, Any]]) -> dict[str, Any]:
    def name(table: str | None, column: str) -> str:
        return column if table is None else f"{table}.{column}"

    actions = [log.to_dict()["actions"] for log in logs.values()]
    has_birth = any(a["identifier_type"] == IdentifierType.BIRTH_DATE.value
                    for group in actions for a in group)
    safe_harbor = all(log.safe_harbor for log in logs.values())
    return {
        "enabled": True,
        "method": DeidLog(safe_harbor=safe_harbor).to_dict()["method"],
        "safe_harbor": safe_harbor,
        "policy": {"dates": policy.dates, "identifiers": policy.identifiers,
                   "patient_column": cfg.patient_column, "max_shift_days": policy.max_shift_days,
                   "reference_year": policy.reference_year, "safe_text": list(policy.safe_text),
                   "types": dict(cfg.types)},
        "actions": [a for group in actions for a in group],
        "dropped_columns": [name(t, c) for t, log in logs.items() for c in log.dropped_columns],
        "notes": notes if has_birth else [],
        "unmarked": cfg.unmarked,
        "identifier_scan": scan,
    }


def _disabled(left: dict[str, Any]) -> dict[str, Any]:
    note = ("de-identification is off (deid.enabled: false): the generator saw the columns as "
            "loaded")
    if left:
        note += (f"; columns the schema marks as identifiers were left as they are: "
                 f"{sorted(left)}")
    return {"enabled": False, "note": note,
            "identifiers_left": {c: getattr(k, "value", k) for c, k in left.items()}}
