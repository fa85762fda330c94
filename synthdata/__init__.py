"""synthdata: synthetic tables with fidelity and privacy reports, exported only through a gate.

The public API (everything else is internal)::

    import synthdata as sd
    schema = sd.Schema.infer(df)
    gen = sd.make_generator("gmm", schema, seed=0).fit(df)
    synth = gen.sample(10_000)
    report = sd.evaluate(train, synth, holdout=holdout, schema=schema)
    verdict = sd.check_gate(report, "default")       # synthetic data made elsewhere
    result = sd.run_pipeline("pipelines/flchain.yaml")

Heavy modules (torch, opacus, great-expectations, FastAPI) load only when used.
"""

from __future__ import annotations

import importlib
from typing import Any

from synthdata._version import __version__
from synthdata.errors import (
    ConfigError,
    DataError,
    GateFailed,
    NotFittedError,
    PrivacyBudgetError,
    SchemaError,
    SynthDataError,
)
from synthdata.schema import Column, ColumnKind, PiiRole, Schema

_LAZY = {
    "make_generator": "synthdata.models.registry",
    "available_generators": "synthdata.models.registry",
    "register": "synthdata.models.registry",
    "load_generator": "synthdata.models.base",
    "TableTransformer": "synthdata.transform.table",
    "evaluate": "synthdata.evaluate",
    "Report": "synthdata.evaluate",
    "check_gate": "synthdata.evaluate.gate",
    "run_pipeline": "synthdata.pipeline.runner",
    "augment": "synthdata.augmentation",
    "PipelineConfig": "synthdata.pipeline.config",
    "DPConfig": "synthdata.privacy.config",
    "PrivacyLedger": "synthdata.privacy.ledger",
    "Inequality": "synthdata.constraints",
    "Range": "synthdata.constraints",
    "Positive": "synthdata.constraints",
    "Negative": "synthdata.constraints",
    "FixedCombinations": "synthdata.constraints",
    "Derived": "synthdata.constraints",
    "OneHot": "synthdata.constraints",
    "Unique": "synthdata.constraints",
}

__all__ = [
    "Column", "ColumnKind", "ConfigError", "DataError", "GateFailed", "NotFittedError",
    "PiiRole", "PrivacyBudgetError", "Schema", "SchemaError", "SynthDataError", "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'synthdata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
