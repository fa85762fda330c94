"""A small generated cohort whose histories obey within-patient rules (for tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthdata.relational.schema import MultiTableSchema

SCHEMA = {
    "version": 1, "name": "cohort",
    "tables": {
        "patients": {"primary_key": "pid", "columns": [
            {"name": "pid", "kind": "id", "dtype": "int64", "pii": "none"},
            {"name": "age", "kind": "continuous", "dtype": "float64"},
            {"name": "sex", "kind": "categorical", "dtype": "object"},
            {"name": "futime", "kind": "integer", "dtype": "int64", "min": 0},
            {"name": "death", "kind": "boolean", "dtype": "int64"},
        ]},
        "visits": {"primary_key": ["pid", "day"], "columns": [
            {"name": "pid", "kind": "id", "dtype": "int64"},
            {"name": "day", "kind": "integer", "dtype": "int64"},
            {"name": "age_at_visit", "kind": "continuous", "dtype": "float64"},
            {"name": "ever_diabetes", "kind": "boolean", "dtype": "int64"},
            {"name": "on_insulin", "kind": "boolean", "dtype": "int64"},
            {"name": "sbp", "kind": "continuous", "dtype": "float64"},
        ]},
    },
    "foreign_keys": [{"child": "visits", "column": "pid", "parent": "patients",
                      "parent_column": "pid", "order_by": "day"}],
}

RULES = [
    {"kind": "monotone", "column": "ever_diabetes"},
    {"kind": "conditional", "if": "ever_diabetes == 0", "then": "on_insulin == 0"},
]
LINK_RULES = [
    {"kind": "time_derived", "column": "visits.age_at_visit", "time": "visits.day",
     "baseline": "patients.age", "tolerance": 0.01},
    {"kind": "inequality", "low": "visits.day", "high": "patients.futime"},
]


def cohort(n: int = 300, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    age = np.round(rng.uniform(30, 80, n), 2)
    futime = rng.integers(400, 4000, n)
    death = (rng.random(n) < 0.3).astype(int)
    patients = pd.DataFrame({"pid": np.arange(1, n + 1), "age": age,
                             "sex": rng.choice(["f", "m"], n), "futime": futime, "death": death})
    rows = []
    for i in range(n):
        k = int(rng.integers(1, 8))
        days = np.sort(rng.choice(np.arange(0, futime[i] + 1), size=k, replace=False))
        onset = rng.integers(0, 2 * k)
        for j, d in enumerate(days):
            ever = int(j >= onset)
            rows.append({"pid": i + 1, "day": int(d),
                         "age_at_visit": round(age[i] + d / 365.25, 4),
                         "ever_diabetes": ever, "on_insulin": int(ever and rng.random() < 0.5),
                         "sbp": float(np.round(rng.normal(130 + 10 * ever, 12), 1))})
    return {"patients": patients, "visits": pd.DataFrame(rows)}


def schema(*, rules: bool = True) -> MultiTableSchema:
    data = {**SCHEMA, "tables": {k: dict(v) for k, v in SCHEMA["tables"].items()}}
    if rules:
        data["tables"]["visits"]["constraints"] = list(RULES)
        data["constraints"] = list(LINK_RULES)
    return MultiTableSchema.from_dict(data)
