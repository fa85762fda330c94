"""Survival endpoint in the report: KM steps, synthetic-time checks, Cox concordance TSTR/TRTR."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from synthdata.medical.survival import (
    concordance_tstr,
    kaplan_meier,
    km_steps,
    survival_metrics,
    survival_summary,
)
from synthdata.pipeline.multitable import split_by_root

ENDPOINT = {"time": "time", "event": "status", "event_values": [2]}


@pytest.fixture(scope="module")
def pbc_split(pbc_tables, pbc_schema):
    train, hold = split_by_root(pbc_tables, pbc_schema, 0.3, seed=0)
    covariates = [c for c in pbc_tables["pbc"].columns if c not in ("id", "time", "status")]
    return train["pbc"], hold["pbc"], covariates


def test_concordance_on_pbc(pbc_split, pbc_schema):
    train, hold, covariates = pbc_split
    schema = pbc_schema.tables["pbc"]
    real = concordance_tstr(train, train, hold, covariates=covariates, schema=schema, **ENDPOINT)
    # the Mayo PBC covariates rank survival well (published C around 0.8)
    assert 0.75 <= real["c_index_trtr"] <= 0.9
    assert real["c_index_tstr"] == real["c_index_trtr"] and real["ratio"] == 1.0
    # "synthetic" rows whose covariates no longer go with their times: no better than chance
    rng = np.random.default_rng(0)
    broken = train.copy()
    broken[covariates] = broken[covariates].iloc[rng.permutation(len(train))].to_numpy()
    bad = concordance_tstr(train, broken, hold, covariates=covariates, schema=schema, **ENDPOINT)
    assert bad["c_index_tstr"] < 0.65 and bad["ratio"] < 0.82
    assert bad["covariates"] == covariates and bad["n_holdout"] == len(hold)


def test_concordance_is_skipped_with_a_reason(pbc_split, monkeypatch):
    train, hold, covariates = pbc_split
    none = concordance_tstr(train, train, None, covariates=covariates, **ENDPOINT)
    assert "no holdout" in none["skipped"]
    censored = hold.assign(status=0)
    assert "no event" in concordance_tstr(train, train, censored, covariates=covariates,
                                          **ENDPOINT)["skipped"]
    monkeypatch.setitem(sys.modules, "sksurv", None)        # scikit-survival not installed
    missing = concordance_tstr(train, train, hold, covariates=covariates, **ENDPOINT)
    assert "synthdata[survival]" in missing["skipped"]


def test_summary_checks_synthetic_times(pbc_split, pbc_schema):
    train, hold, _ = pbc_split
    end = train["time"].max()
    synth = train.copy()
    synth.loc[:4, "time"] = -3              # before the start of follow-up
    synth.loc[5:7, "time"] = end + 100      # after the end of follow-up
    summary = survival_summary(train, synth, hold, schema=pbc_schema.tables["pbc"],
                               exclude=("id",), **ENDPOINT)
    check = summary["check"]
    assert (check["n_negative"], check["n_after_end"], check["end_of_follow_up"]) == (5, 3, end)
    assert "id" not in summary["concordance"]["covariates"]
    metrics = survival_metrics("pbc", summary)
    assert metrics["survival_time_violations[pbc]"] == 8
    assert set(metrics) == {"km_max_distance[pbc]", "survival_time_violations[pbc]",
                            "c_index_tstr[pbc]", "c_index_trtr[pbc]",
                            "survival_concordance_ratio[pbc]"}
    same = survival_summary(train, train, hold, **ENDPOINT)
    assert same["km_max_distance"] == 0 and same["check"]["ok"]


def test_km_steps_start_at_one_and_are_thinned():
    rng = np.random.default_rng(1)
    t = rng.exponential(100, 3000).round(3)
    km = kaplan_meier(t, np.ones_like(t, dtype=bool))
    steps = km_steps(km, end=float(t.max()) + 1, max_points=200)
    assert steps["times"][0] == 0 and steps["survival"][0] == 1
    assert len(steps["times"]) <= 202
    assert np.all(np.diff(steps["times"]) > 0) and np.all(np.diff(steps["survival"]) <= 0)
    assert steps["survival"][-1] == pytest.approx(km.survival[-1])
    df = pd.DataFrame({"t": t, "e": 1})
    assert km_steps(kaplan_meier(df["t"], df["e"]))["times"][-1] == t.max()


def test_gates_may_use_the_survival_metrics():
    from synthdata.evaluate.gate import GateConfig, check_gate

    gate = GateConfig.parse({"survival_concordance_ratio[pbc]": {"min": 0.9},
                             "survival_time_violations[pbc]": {"max": 0}})
    verdict = check_gate({"survival_concordance_ratio[pbc]": None,
                          "survival_time_violations[pbc]": 0}, gate)
    assert [r["passed"] for r in verdict.results] == [False, True]
    assert "survival extra" in verdict.results[0]["reason"]
