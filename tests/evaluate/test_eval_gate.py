"""Gate: rules, missing metrics, presets and error messages."""

from __future__ import annotations

import pytest

from synthdata.errors import ConfigError
from synthdata.evaluate import GATE_PRESETS, KNOWN_METRICS, GateConfig, check_gate, gate_preset


def test_rules_pass_and_fail_with_reasons() -> None:
    metrics = {"mia_auc": 0.7, "shapes": 0.9, "exact_copies": 0}
    result = check_gate(metrics, {"mia_auc": {"max": 0.55}, "shapes": {"min": 0.8},
                                  "exact_copies": {"equals": 0}})
    assert not result.passed
    by = {r["metric"]: r for r in result.results}
    assert not by["mia_auc"]["passed"] and by["mia_auc"]["reason"] == "0.7 is not <= 0.55"
    assert by["shapes"]["passed"] and by["exact_copies"]["passed"]
    assert set(by["mia_auc"]) == {"metric", "rule", "value", "passed", "reason"}
    assert result.failures == ["mia_auc: 0.7 is not <= 0.55"]


def test_missing_metric_fails_and_says_what_to_give() -> None:
    result = check_gate({"utility_ratio": None}, {"utility_ratio": {"min": 0.8},
                                                   "mia_auc": {"max": 0.6}})
    assert not result.passed
    reasons = [r["reason"] for r in result.results]
    assert reasons[0].startswith("metric utility_ratio was not computed; give")
    assert "target" in reasons[0] and "holdout" in reasons[1]


def test_validation_rule() -> None:
    assert check_gate({}, {"validation": "pass"}, validation_passed=True).passed
    failed = check_gate({}, {"validation": "pass"}, validation_passed=False)
    assert not failed.passed and "suite failed" in failed.results[0]["reason"]
    assert not check_gate({}, {"validation": "pass"}, validation_passed=None).passed
    assert check_gate({}, {}, validation_passed=False).passed


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown metric.*'mia_aucc'") as info:
        check_gate({}, {"mia_aucc": {"max": 0.5}})
    assert "detection_auc" in str(info.value)


def test_bad_rules_are_config_errors_with_a_path() -> None:
    with pytest.raises(ConfigError, match="mia_auc"):
        GateConfig.parse({"mia_auc": {"max": 0.5, "min": 0.1}})
    with pytest.raises(ConfigError, match="mia_auc"):
        GateConfig.parse({"mia_auc": {"below": 0.5}})
    with pytest.raises(ConfigError, match="validation"):
        GateConfig.parse({"validation": "maybe"})


def test_presets_parse_and_use_known_metrics() -> None:
    for name, spec in GATE_PRESETS.items():
        gate = gate_preset(name)
        assert gate.validation == "pass"
        assert set(gate.rules) <= set(KNOWN_METRICS)
        assert set(spec) - {"validation"} == set(gate.rules)
    with pytest.raises(ConfigError, match="share_outside"):
        gate_preset("nope")


def test_result_is_frozen_and_serialisable() -> None:
    result = check_gate({"mia_auc": 0.5}, GATE_PRESETS["share_outside"], True)
    data = result.to_dict()
    assert data["passed"] is False and len(data["results"]) == len(GATE_PRESETS["share_outside"])
    with pytest.raises(AttributeError):
        result.passed = True  # type: ignore[misc]


def test_linked_table_metrics_can_be_gated() -> None:
    gate = GateConfig.parse({"km_max_distance[pbc]": {"max": 0.1}, "patient_mia_auc": {"max": 0.6},
                             "referential_integrity": {"min": 1}})
    verdict = check_gate({"km_max_distance[pbc]": 0.12, "patient_mia_auc": 0.55,
                          "referential_integrity": 1.0}, gate)
    assert not verdict.passed and verdict.failures == ["km_max_distance[pbc]: 0.12 is not <= 0.1"]
    missing = check_gate({}, gate).results[0]
    assert "not computed; give a survival endpoint" in missing["reason"]
    for bad in ("km_distance[pbc]", "patient_shapes", "km_max_distance[pbc"):
        with pytest.raises(ConfigError, match="unknown metric"):
            GateConfig.parse({bad: {"max": 1}})
