"""Evaluation: fidelity and leakage metrics, the report, and the export gate."""

from synthdata.evaluate.evaluator import SECTIONS, evaluate
from synthdata.evaluate.gate import (GATE_PRESETS, GateConfig, GateResult, Rule, check_gate,
                                     gate_preset)
from synthdata.evaluate.metrics import KNOWN_METRICS, METRIC_INFO, MetricInfo
from synthdata.evaluate.report import REPORT_VERSION, Report

__all__ = ["GATE_PRESETS", "KNOWN_METRICS", "METRIC_INFO", "REPORT_VERSION", "SECTIONS",
           "GateConfig", "GateResult", "MetricInfo", "Report", "Rule", "check_gate",
           "evaluate", "gate_preset"]
