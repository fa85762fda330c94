"""History-level evaluation: per-patient features, whole-patient detection, per-patient TSTR,
per-code distributions and rule counts."""

import numpy as np
import pandas as pd
import pytest

from synthdata.evaluate.history import evaluate_histories, history_features
from synthdata.pipeline.multitable import split_by_root
from synthdata.relational.schema import MultiTableSchema
from synthdata.schema.model import Column, ColumnKind, Schema
from tests.medical.history_data import cohort, schema


def test_features_count_gaps_and_slopes():
    visits = pd.DataFrame({"pid": [1, 1, 1, 2], "day": [0, 10, 30, 5],
                           "x": [1.0, 2.0, 4.0, 7.0]})
    sch = Schema(columns=(Column("pid", ColumnKind.ID, dtype="int64"),
                          Column("day", ColumnKind.INTEGER, dtype="int64"),
                          Column("x", ColumnKind.CONTINUOUS, dtype="float64")), name="visits")
    f = history_features(visits, sch, key="pid", order="day", parent_keys=[1, 2, 3])
    assert f["n_rows"].tolist() == [3, 1, 0]
    assert f.loc[0, "gap_mean"] == 15 and f.loc[0, "t_span"] == 30
    assert f.loc[0, "x:first"] == 1 and f.loc[0, "x:last"] == 4
    assert f.loc[0, "x:slope"] == pytest.approx(0.1)       # least squares over (0,1),(10,2),(30,4)
    assert np.isnan(f.loc[1, "x:slope"]) and np.isnan(f.loc[2, "x:first"])
    first2 = history_features(visits, sch, key="pid", order="day", parent_keys=[1, 2], first_k=2)
    assert first2["n_rows"].tolist() == [2, 1] and first2.loc[0, "x:last"] == 2


@pytest.fixture(scope="module")
def split():
    tables = cohort(500, seed=1)
    ms = schema()
    train, hold = split_by_root(tables, ms, 0.4, 0)
    return ms, train, hold


def _broken(tables):
    """Histories with believable rows but an incoherent order: days shuffled per patient."""
    visits = tables["visits"].copy()
    rng = np.random.default_rng(0)
    visits["age_at_visit"] = visits["age_at_visit"] + rng.normal(0, 3, len(visits))
    visits["ever_diabetes"] = rng.permutation(visits["ever_diabetes"].to_numpy())
    return {**tables, "visits": visits}


def test_detection_tells_broken_histories_from_real_ones(split):
    ms, train, hold = split
    same = evaluate_histories(train, hold, ms, holdout=None, seed=0)
    broken = evaluate_histories(train, _broken(train), ms, holdout=hold, seed=0)
    assert same["metrics"]["history_detection_auc"] < 0.7
    assert broken["metrics"]["history_detection_auc"] > 0.9
    assert broken["metrics"]["history_detection_auc[visits]"] == \
        broken["metrics"]["history_detection_auc"]
    top = broken["tables"]["visits"]["detection"]["top_features"][0]["feature"]
    assert top.startswith(("age_at_visit", "ever_diabetes"))
    # rule counts: real data obeys every rule, the broken copy does not
    assert broken["metrics"]["history_rule_violations_real"] == 0
    assert broken["metrics"]["history_rule_violations"] > 0
    rules = {r["rule"]: r for r in broken["tables"]["visits"]["rules"]}
    assert rules["ever_diabetes non-decreasing over day per pid"]["synthetic_patients"] > 0
    assert rules["ever_diabetes non-decreasing over day per pid"]["real_rows"] == 0


def test_tstr_warns_about_a_leak_column_until_it_is_excluded(split):
    ms, train, hold = split
    leak = MultiTableSchema.from_dict(ms.to_dict())   # same schema; 'futime' leaks 'death'
    def with_leak(tables):
        p = tables["patients"].copy()
        p["futime"] = np.where(p["death"] == 1, 100, 5000)
        return {**tables, "patients": p}
    out = evaluate_histories(with_leak(train), with_leak(train), leak, holdout=with_leak(hold),
                             target="death", seed=0)
    assert out["metrics"]["history_trtr_auc[visits]"] >= 0.99
    assert out["warnings"] and "evaluate.exclude" in out["warnings"][0]
    clean = evaluate_histories(with_leak(train), with_leak(train), leak,
                               holdout=with_leak(hold), target="death", exclude=["futime"],
                               seed=0)
    assert clean["warnings"] == []
    assert clean["tables"]["visits"]["tstr"]["excluded"] == ["futime"]
    assert clean["metrics"]["history_trtr_auc[visits]"] < 0.9


def test_marginals_pairs_and_per_code_distributions():
    rng = np.random.default_rng(0)
    n = 120
    patients = pd.DataFrame({"pid": np.arange(1, n + 1), "age": rng.uniform(30, 80, n)})
    rows = []
    for pid in range(1, n + 1):
        for day in sorted(rng.choice(400, 6, replace=False)):
            test = rng.choice(["chol", "sbp"])
            rows.append({"pid": pid, "day": int(day), "test": test,
                         "value": rng.normal(200 if test == "chol" else 130, 10)})
    labs = pd.DataFrame(rows)
    ms = MultiTableSchema.from_dict({
        "tables": {"patients": {"primary_key": "pid", "columns": [
            {"name": "pid", "kind": "id", "dtype": "int64"},
            {"name": "age", "kind": "continuous", "dtype": "float64"}]},
            "labs": {"columns": [
                {"name": "pid", "kind": "id", "dtype": "int64"},
                {"name": "day", "kind": "integer", "dtype": "int64"},
                {"name": "test", "kind": "categorical", "dtype": "object"},
                {"name": "value", "kind": "continuous", "dtype": "float64"}]}},
        "foreign_keys": [{"child": "labs", "column": "pid", "parent": "patients",
                          "parent_column": "pid", "order_by": "day"}]})
    swapped = labs.assign(test=labs["test"].map({"chol": "sbp", "sbp": "chol"}))
    out = evaluate_histories({"patients": patients, "labs": labs},
                             {"patients": patients, "labs": swapped}, ms, seed=0)
    section = out["tables"]["labs"]
    assert section["code_column"] == "test"
    assert section["per_code"]["chol"]["value"]["ks"] > 0.9     # values under the wrong code
    assert section["marginals"]["value"]["ks"] < 0.1            # yet the marginal looks right
    assert section["pairs"][0]["x"] == "day" and len(section["pairs"][0]["real"]) <= 300
    assert out["metrics"]["history_detection_auc"] > 0.9


def test_a_feature_missing_on_every_synthetic_patient_does_not_break_tstr(split):
    ms, train, hold = split
    synth = {**train, "visits": train["visits"].assign(sbp=np.nan)}   # no value anywhere
    out = evaluate_histories(train, synth, ms, holdout=hold, target="death", seed=0)
    assert out["metrics"]["history_tstr_auc[visits]"] is not None
    assert out["metrics"]["history_detection_auc"] > 0.9
