"""Positive and negative controls for every leakage attack, on small data (fast suite).

A copy of the training rows must score as a leak on each measure on its own (each
membership attack, linkability, inference, singling out); an independent sample from the
same population must score as no leak (attack AUC near 0.5, risk near 0). A metric that
returns a constant, or ignores the synthetic rows, fails one of the two.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from synthdata.evaluate import evaluate
from tests.conftest import module_scope_unless_mutating, three_way

LEAK = ("leakage", "risks")
ATTACKS = ("distance", "density", "classifier")
# AUC each attack reaches on a copy of 300 training rows (measured: distance 1.0, density
# 0.68, classifier 0.75; density and classifier are weaker by design: they compare against
# a reference set and a learned boundary, not exact matches), with a margin below
COPY_AUC = {"distance": 0.9, "density": 0.6, "classifier": 0.65}
RISKS = ("linkability_risk", "inference_risk", "singling_out_risk")


@pytest.fixture(scope=module_scope_unless_mutating)
def controls(flchain: pd.DataFrame) -> dict[str, dict[str, Any]]:
    train, holdout, other = three_way(flchain, 300, seed=1)
    out = {}
    for label, synth in (("copy", train.copy()), ("independent", other)):
        report = evaluate(train, synth, holdout=holdout, target="death", sections=LEAK, seed=0)
        out[label] = report.to_dict()
    return out


def _attacks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return report["leakage"]["mia"]["attacks"]


def test_every_membership_attack_runs(controls) -> None:
    for label in ("copy", "independent"):
        assert set(_attacks(controls[label])) == set(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS)
def test_membership_attack_flags_a_copy_of_train(controls, attack: str) -> None:
    result = _attacks(controls["copy"])[attack]
    assert result["auc"] > COPY_AUC[attack], (attack, result["auc"])
    independent = _attacks(controls["independent"])[attack]["auc"]
    assert result["auc"] > independent + 0.1, (attack, result["auc"], independent)
    if attack == "distance":
        assert result["tpr_at_1pct_fpr"] > 0.5, result["tpr_at_1pct_fpr"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_membership_attack_is_near_chance_on_an_independent_sample(controls, attack: str) -> None:
    auc = _attacks(controls["independent"])[attack]["auc"]
    assert 0.35 < auc < 0.65, (attack, auc)


def test_mia_auc_is_the_strongest_attack(controls) -> None:
    for label in ("copy", "independent"):
        report = controls[label]
        best = max(a["auc"] for a in _attacks(report).values())
        assert report["metrics"]["mia_auc"] == pytest.approx(best)


@pytest.mark.parametrize("risk", RISKS)
def test_risk_is_high_for_a_copy_of_train(controls, risk: str) -> None:
    assert controls["copy"]["metrics"][risk] > 0.5, (risk, controls["copy"]["metrics"][risk])


@pytest.mark.parametrize("risk", RISKS)
def test_risk_is_near_zero_for_an_independent_sample(controls, risk: str) -> None:
    value = controls["independent"]["metrics"][risk]
    assert value is not None and 0.0 <= value < 0.1, (risk, value)


def _dcr(report: dict[str, Any]) -> dict[str, Any]:
    return report["leakage"]["dcr"]


def test_nndr_is_zero_for_a_copy_and_below_one_for_real_rows(controls) -> None:
    """An exact copy sits at distance 0 from its training row (NNDR 0); a holdout row's
    nearest training row is closer than its second nearest (NNDR < 1)."""
    copy, fresh = _dcr(controls["copy"]), _dcr(controls["independent"])
    assert copy["nndr"] == 0.0 and copy["dcr_train_median"] == 0.0
    assert 0.0 < fresh["nndr"] < 1.0
    for res in (copy, fresh):
        hist = res["nndr_histogram"]
        assert len(hist["edges"]) == 21 and hist["edges"][0] == 0.0 and hist["edges"][-1] == 1.0
        # shares of rows per bin, synthetic and holdout side
        assert sum(hist["synth"]) == pytest.approx(1.0)
        assert sum(hist["holdout"]) == pytest.approx(1.0)
        assert 0.0 < hist["holdout_median"] < 1.0
    assert copy["nndr_histogram"]["synth"][0] == pytest.approx(1.0)


def test_distance_histogram_counts_every_query_on_both_sides(controls) -> None:
    for label in ("copy", "independent"):
        res = _dcr(controls[label])
        hist = res["histogram"]
        assert len(hist["edges"]) == 41
        assert sum(hist["train"]) == sum(hist["holdout"]) == res["n_synthetic_queries"]
