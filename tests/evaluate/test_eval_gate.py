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
    assert set(by["mia_auc"]) == {"metric", "rule", "operator", "threshold", "value", "passed",
                                  "reason"}
    assert (by["mia_auc"]["operator"], by["mia_auc"]["threshold"]) == ("<=", 0.55)
    assert (by["shapes"]["operator"], by["exact_copies"]["operator"]) == (">=", "==")
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
        assert gate.validation == ("ignore" if name == "default" else "pass")
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


def test_no_gate_means_the_default_preset_and_none_means_not_judged() -> None:
    from synthdata.evaluate.gate import DEFAULT_PRESET, resolve_gate

    gate, preset = resolve_gate(None)
    assert preset == DEFAULT_PRESET and gate == gate_preset(DEFAULT_PRESET)
    assert resolve_gate("none") == (None, None) and resolve_gate(" None ") == (None, None)
    verdict = check_gate({"exact_copy_excess": 0.0}, "none")
    assert (verdict.judged, verdict.passed, verdict.status) == (False, False, "not_judged")
    data = verdict.to_dict()
    assert data["status"] == "not_judged" and data["passed"] is None and data["results"] == []
    # the default applies when no gate is named: a copy's numbers fail it
    copy = {"exact_copy_excess": 1.0, "dcr_share": 1.0, "mia_auc": 0.95,
            "rare_value_replay_excess": 0.8}
    verdict = check_gate(copy)
    assert verdict.status == "failed" and verdict.preset == DEFAULT_PRESET
    assert {"exact_copy_excess", "dcr_share", "mia_auc"} <= {
        f.split(":")[0] for f in verdict.failures}


def test_an_empty_gate_is_refused_not_passed() -> None:
    with pytest.raises(ConfigError, match="no rule.*'none'.*NOT JUDGED"):
        check_gate({}, {})
    with pytest.raises(ConfigError, match="unknown gate preset 'strict'.*NOT JUDGED"):
        check_gate({}, "strict")


def test_check_gate_takes_a_report_and_its_validation(tmp_path) -> None:
    import synthdata as sd
    from synthdata.evaluate.report import Report

    report = Report(metrics={"mia_auc": 0.5}, meta={})
    report.add_section("validation", {"passed": False})
    verdict = sd.check_gate(report, {"mia_auc": {"max": 0.6}, "validation": "pass"})
    assert not verdict.passed and verdict.failures == [
        "validation: the great-expectations suite failed"]
    assert sd.check_gate(report, {"mia_auc": {"max": 0.6}}).passed
