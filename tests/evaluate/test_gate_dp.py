"""Under DP only DP-safe gate rules decide; rules on real-data metrics are advisory."""

from __future__ import annotations

from synthdata.evaluate.gate import (
    ADVISORY_LABEL,
    DP_SAFE_METRICS,
    check_gate,
    dp_verdict,
    is_dp_safe,
)
from synthdata.evaluate.metrics import KNOWN_METRICS


def test_real_data_metrics_are_advisory_and_dp_safe_rules_decide():
    metrics = {"epsilon": 2.5, "mia_auc": 0.99, "constraint_violations": 0}
    gate = {"epsilon": {"max": 3}, "mia_auc": {"max": 0.6},
            "constraint_violations": {"max": 0}, "validation": "pass"}
    plain = check_gate(metrics, gate, validation_passed=True)
    assert not plain.passed
    dp = dp_verdict(plain)
    assert dp.passed
    by = {r["metric"]: r for r in dp.results}
    assert by["mia_auc"]["decides"] is False and by["mia_auc"]["advisory"] == ADVISORY_LABEL
    assert by["mia_auc"]["passed"] is False  # still computed and shown
    assert all(by[m]["decides"] for m in ("epsilon", "constraint_violations", "validation"))
    failing = dp_verdict(check_gate(metrics | {"epsilon": 3.5}, gate, validation_passed=True))
    assert not failing.passed
    assert not dp_verdict(check_gate(metrics, gate, validation_passed=False)).passed


def test_only_privacy_and_synthetic_only_checks_are_dp_safe():
    assert DP_SAFE_METRICS == {"epsilon", "delta", "constraint_violations", "validation",
                               "history_rule_violations"}
    for name in ("mia_auc", "detection_auc", "exact_copies", "dcr_share", "shapes",
                 "singling_out_risk", "history_detection_auc", "history_rule_violations_real"):
        assert name in KNOWN_METRICS and not is_dp_safe(name)
