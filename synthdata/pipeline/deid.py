"""The pipeline's de-identification step: the ``deid:`` block, applied before fitting.

It runs on the loaded table(s) before the train/holdout split, so the generator, the
evaluation (train and holdout) and the shipped schema all see the de-identified columns.
The report's ``deidentification`` section lists every rule applied per column.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

from synthdata.medical.deid import (DeidLog, DeidPolicy, IdentifierType, deidentify,
                                    deidentify_tables, identifier_plan)
from synthdata.pipeline.config import DeidConfig
from synthdata.schema.model import Schema

SECTION = "deidentification"
LEDGER_STEP = "deid"
LEDGER_REASON = ("Safe Harbor rules fixed by the pipeline, applied row by row before fitting: "
                 "each output row depends only on its own input row (and, for a date shift, on "
                 "its patient's random draw); no statistic of the table is released")


def deid_policy(cfg: DeidConfig, *, seed: int) -> tuple[DeidPolicy, list[str]]:
    """The :class:`DeidPolicy` a ``deid:`` block asks for, and notes on defaults filled in."""
    notes = []
    year = cfg.reference_year
    if year is None:
        year = datetime.now(timezone.utc).year
        notes.append(f"deid.reference_year not set: birth years are checked against the run's "
                     f"year, {year}")
    policy = DeidPolicy(types=dict(cfg.types), identifiers=cfg.identifiers, dates=cfg.dates,
                        patient_column=cfg.patient_column, max_shift_days=cfg.max_shift_days,
                        reference_year=year, safe_text=tuple(cfg.safe_text), seed=seed)
    return policy, notes


def deid_table(df: pd.DataFrame, schema: Schema, cfg: DeidConfig, *, seed: int
               ) -> tuple[pd.DataFrame, Schema, dict[str, Any]]:
    """De-identify one table: the new frame, its schema and the report section."""
    policy, notes = deid_policy(cfg, seed=seed)
    if not cfg.enabled:
        left = identifier_plan(df, schema, DeidPolicy(types=dict(cfg.types)))
        return df, schema, _disabled(left)
    clean, log = deidentify(df, schema, policy=policy)
    new_schema = log.apply_to_schema(schema)
    new_schema.validate(clean, where="de-identified data")
    return clean, new_schema, _section({None: log}, cfg, policy, notes)


def deid_tables(tables: dict[str, pd.DataFrame], schema: Any, cfg: DeidConfig, *, seed: int
                ) -> tuple[dict[str, pd.DataFrame], Any, dict[str, Any]]:
    """De-identify linked tables (a ``MultiTableSchema``): new tables, schema and section."""
    policy, notes = deid_policy(cfg, seed=seed)
    if not cfg.enabled:
        left = {f"{t}.{c}": k for t in schema.tables
                for c, k in identifier_plan(tables[t], schema.tables[t]).items()}
        return tables, schema, _disabled(left)
    clean, new_schema, logs = deidentify_tables(tables, schema, policy=policy)
    for tname, frame in clean.items():
        new_schema.tables[tname].validate(frame, where=f"de-identified table {tname!r}")
    return clean, new_schema, _section(logs, cfg, policy, notes)


def _section(logs: dict[str | None, DeidLog], cfg: DeidConfig, policy: DeidPolicy,
             notes: list[str]) -> dict[str, Any]:
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
        "unmarked_suspects": {name(t, c): why for t, log in logs.items()
                              for c, why in log.unmarked_suspects.items()},
        "notes": notes if has_birth else [],
    }


def _disabled(left: dict[str, Any]) -> dict[str, Any]:
    note = ("de-identification is off (deid.enabled: false): the generator saw the columns as "
            "loaded")
    if left:
        note += (f"; columns the schema marks as identifiers were left as they are: "
                 f"{sorted(left)}")
    return {"enabled": False, "note": note,
            "identifiers_left": {c: getattr(k, "value", k) for c, k in left.items()}}
