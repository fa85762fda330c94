"""Evaluation: fidelity and leakage metrics, the report, and the export gate."""

import sys
import types
from typing import Any

from synthdata.evaluate.evaluator import SECTIONS, evaluate
from synthdata.evaluate.gate import (
    DEFAULT_PRESET,
    GATE_PRESETS,
    GateConfig,
    GateResult,
    Rule,
    check_gate,
    gate_preset,
)
from synthdata.evaluate.metrics import KNOWN_METRICS, METRIC_INFO, MetricInfo
from synthdata.evaluate.report import REPORT_VERSION, Report

__all__ = ["DEFAULT_PRESET", "GATE_PRESETS", "KNOWN_METRICS", "METRIC_INFO", "REPORT_VERSION", "SECTIONS",
           "GateConfig", "GateResult", "MetricInfo", "Report", "Rule", "check_gate",
           "evaluate", "gate_preset"]


class _CallablePackage(types.ModuleType):
    """``synthdata.evaluate`` is both this package and the public function ``sd.evaluate``.

    Importing any submodule (``synthdata.evaluate.gate``) makes Python bind the package to
    the attribute ``synthdata.evaluate``, replacing the lazily exported function; calling the
    package calls the function, so ``sd.evaluate(train, synth, ...)`` works either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
