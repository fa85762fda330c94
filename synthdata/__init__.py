"""synthdata: synthetic tables with fidelity and privacy reports, exported only through a gate.

The public API (everything else is internal)::

    import synthdata as sd
    schema = sd.Schema.infer(df)
    gen = sd.make_generator("gmm", schema, seed=0).fit(df)
    synth = gen.sample(10_000)
    report = sd.evaluate(train, synth, holdout=holdout, schema=schema)
    verdict = sd.check_gate(report, "default")       # synthetic data made elsewhere
    result = sd.run_pipeline("pipelines/flchain.yaml")

Generators: ``sd.GMMGenerator``, ``sd.VAEGenerator``, ``sd.CTGANGenerator``,
``sd.DDPMGenerator``, ``sd.MarginalGenerator``
(``make_generator("gmm" | "vae" | "ctgan" | "ddpm" | "aim", ...)``).

Heavy modules (torch, opacus, great-expectations, FastAPI) load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    # (`import x as x`: an explicit re-export, so strict type checkers accept sd.make_generator)
    from synthdata.augmentation import augment as augment
    from synthdata.constraints import Derived as Derived
    from synthdata.constraints import FixedCombinations as FixedCombinations
    from synthdata.constraints import Inequality as Inequality
    from synthdata.constraints import Negative as Negative
    from synthdata.constraints import OneHot as OneHot
    from synthdata.constraints import Positive as Positive
    from synthdata.constraints import Range as Range
    from synthdata.constraints import Unique as Unique
    from synthdata.evaluate import Report as Report
    from synthdata.evaluate import evaluate as evaluate
    from synthdata.evaluate.gate import check_gate as check_gate
    from synthdata.models.base import BaseGenerator as BaseGenerator
    from synthdata.models.base import load_generator as load_generator
    from synthdata.models.ctgan import CTGANGenerator as CTGANGenerator
    from synthdata.models.diffusion import DDPMGenerator as DDPMGenerator
    from synthdata.models.gmm import GMMGenerator as GMMGenerator
    from synthdata.models.marginal import MarginalGenerator as MarginalGenerator
    from synthdata.models.registry import available_generators as available_generators
    from synthdata.models.registry import make_generator as make_generator
    from synthdata.models.registry import register as register
    from synthdata.models.sequence import SequenceGenerator as SequenceGenerator
    from synthdata.models.vae import VAEGenerator as VAEGenerator
    from synthdata.pipeline.config import PipelineConfig as PipelineConfig
    from synthdata.pipeline.runner import run_pipeline as run_pipeline
    from synthdata.privacy.config import DPConfig as DPConfig
    from synthdata.privacy.ledger import PrivacyLedger as PrivacyLedger
    from synthdata.transform.table import TableTransformer as TableTransformer

_LAZY = {
    "make_generator": "synthdata.models.registry",
    "available_generators": "synthdata.models.registry",
    "register": "synthdata.models.registry",
    "load_generator": "synthdata.models.base",
    # the generator classes: sd.VAEGenerator imports torch when first touched, not before
    "BaseGenerator": "synthdata.models.base",
    "GMMGenerator": "synthdata.models.gmm",
    "MarginalGenerator": "synthdata.models.marginal",
    "VAEGenerator": "synthdata.models.vae",
    "CTGANGenerator": "synthdata.models.ctgan",
    "DDPMGenerator": "synthdata.models.diffusion",
    "SequenceGenerator": "synthdata.models.sequence",
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
