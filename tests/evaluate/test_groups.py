"""Per-group fidelity, utility and fairness (synthdata.evaluate.groups)."""

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import ConfigError
from synthdata.evaluate.groups import group_report
from synthdata.schema.model import Schema


def _table(n: int, seed: int, minority_rate: float = 0.8, minority_share: float = 0.25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < minority_share, "B", "A")
    x = rng.normal(0, 1, n) + (group == "B") * 1.0
    z = rng.normal(0, 1, n)
    base = np.where(group == "B", np.log(minority_rate / (1 - minority_rate)), -1.4)
    y = (rng.random(n) < 1 / (1 + np.exp(-(base + 1.5 * z)))).astype(int)
    return pd.DataFrame({"group": group, "x": x, "z": z, "y": y})


@pytest.fixture(scope="module")
def data():
    train, holdout = _table(1000, 0), _table(600, 1)
    faithful = _table(1000, 2)               # an independent sample of the same process
    erased = _table(1000, 3, minority_rate=0.2, minority_share=0.05)  # minority shrunk, outcome shifted
    return train, holdout, faithful, erased


def _schema(train):
    return Schema.infer(train).with_overrides({"columns": [{"name": "y", "kind": "categorical"}]})


def test_a_faithful_copy_treats_each_group_as_the_real_data(data):
    train, holdout, faithful, _ = data
    rep = group_report(train, faithful, holdout=holdout, schema=_schema(train),
                       sensitive=["group"], target="y")
    m = rep["metrics"]
    assert m["group_share_difference"] < 0.05
    assert m["worst_group_shapes"] > 0.9
    assert 0.9 < m["tstr_worst_group_ratio"] < 1.1
    rows = {r["group"]: r for r in rep["columns"]["group"]["groups"]}
    assert abs(rows["B"]["outcome_real"] - rows["B"]["outcome_synthetic"]) < 0.08
    assert rows["B"]["detection_auc"] < 0.65


def test_a_generator_that_erases_a_minority_is_named(data):
    train, holdout, faithful, erased = data
    schema = _schema(train)
    good = group_report(train, faithful, holdout=holdout, schema=schema, sensitive=["group"],
                        target="y", detection=False)
    bad = group_report(train, erased, holdout=holdout, schema=schema, sensitive=["group"],
                       target="y", detection=False)
    assert bad["metrics"]["group_share_difference"] > 0.15
    rows = {r["group"]: r for r in bad["columns"]["group"]["groups"]}
    assert rows["B"]["outcome_real"] - rows["B"]["outcome_synthetic"] > 0.3
    assert bad["worst_group"]["group"] == "group = B"
    assert bad["metrics"]["worst_group_shapes"] < good["metrics"]["worst_group_shapes"]
    # the model trained on the distorted data is worse for the minority than for everyone
    assert bad["metrics"]["tstr_worst_group_ratio"] < good["metrics"]["tstr_worst_group_ratio"]


def test_fairness_of_the_tstr_model_is_compared_with_trtr(data):
    train, holdout, faithful, _ = data
    rep = group_report(train, faithful, holdout=holdout, schema=_schema(train),
                       sensitive=["group"], target="y", detection=False)
    fair = rep["columns"]["group"]["fairness"]
    for key in ("tstr_dp_difference", "trtr_dp_difference", "tstr_eo_difference",
                "trtr_eo_difference"):
        assert 0.0 <= fair[key] <= 1.0
    # the groups' outcome rates differ a lot: a model reproducing them is far from parity
    assert fair["trtr_dp_difference"] > 0.2
    assert abs(fair["tstr_dp_difference"] - fair["trtr_dp_difference"]) < 0.15


def test_small_groups_are_suppressed(data):
    train, holdout, faithful, _ = data
    train = train.copy()
    train.loc[:4, "group"] = "C"             # five rows: below the default minimum of 20
    rep = group_report(train, faithful, holdout=holdout, schema=Schema.infer(train),
                       sensitive=["group"], detection=False)
    rows = {r["group"]: r for r in rep["columns"]["group"]["groups"]}
    assert rows["C"]["n_train"] == "< 20"
    assert rows["C"]["share_real"] is None and rows["C"]["shapes"] is None
    rep5 = group_report(train, faithful, holdout=holdout, schema=Schema.infer(train),
                        sensitive=["group"], min_group_size=5, detection=False)
    assert {r["group"]: r for r in rep5["columns"]["group"]["groups"]}["C"]["n_train"] == 5


def test_numeric_sensitive_column_is_banded_at_quartiles(data):
    train, holdout, faithful, _ = data
    rep = group_report(train, faithful, holdout=holdout, schema=Schema.infer(train),
                       sensitive=["x"], detection=False)
    groups = rep["columns"]["x"]["groups"]
    assert len(groups) == 4
    shares = [g["share_real"] for g in groups]
    assert all(abs(s - 0.25) < 0.02 for s in shares)


def test_default_sensitive_columns_come_from_the_schema(data):
    train, holdout, faithful, _ = data
    none = group_report(train, faithful, holdout=holdout, schema=Schema.infer(train), detection=False)
    assert none["metrics"]["worst_group_shapes"] is None and "no sensitive column" in none["notes"][0]
    schema = Schema.infer(train).with_overrides({"columns": [{"name": "group", "pii": "sensitive"}]})
    rep = group_report(train, faithful, holdout=holdout, schema=schema, detection=False)
    assert list(rep["columns"]) == ["group"]


def test_unknown_sensitive_column_is_a_config_error(data):
    train, holdout, faithful, _ = data
    with pytest.raises(ConfigError, match="evaluate.sensitive.*'race'"):
        group_report(train, faithful, holdout=holdout, schema=Schema.infer(train),
                     sensitive=["race"])


def test_per_group_detection_runs_on_the_largest_groups_only(data, monkeypatch):
    import synthdata.evaluate.groups as groups

    train, holdout, faithful, _ = data
    monkeypatch.setattr(groups, "MAX_DETECTION_GROUPS", 1)
    rep = group_report(train, faithful, holdout=holdout, schema=_schema(train),
                       sensitive=["group"], target="y")
    rows = {r["group"]: r for r in rep["columns"]["group"]["groups"]}
    assert rows["A"]["detection_auc"] is not None and rows["B"]["detection_auc"] is None
    assert "largest of 2 groups" in rep["notes"][0]


def _two_rules(n: int, seed: int, share_b: float) -> pd.DataFrame:
    """Group A's outcome follows z, group B's follows x: B needs rows of its own."""
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < share_b, "B", "A")
    x, z = rng.normal(0, 1, n), rng.normal(0, 1, n)
    logit = np.where(group == "B", 2.5 * x, 2.5 * z)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"group": group, "x": x, "z": z, "y": y})


def test_augmentation_effect_credits_good_rows_and_blames_bad_ones(data):
    from synthdata.evaluate.groups import augmentation_effect

    rng_train = _two_rules(800, 10, share_b=0.03)              # about 24 rows of group B
    holdout = _two_rules(1500, 11, share_b=0.3)
    schema = _schema(rng_train)
    good_rows = _two_rules(600, 12, share_b=1.0)               # more B rows of the same process
    bad_rows = good_rows.assign(y=1 - good_rows["y"])          # the outcome reversed
    good = augmentation_effect(rng_train, good_rows, holdout=holdout, schema=schema, by="group",
                               target="y")
    bad = augmentation_effect(rng_train, bad_rows, holdout=holdout, schema=schema, by="group",
                              target="y")
    assert good["worst_group"] == "B" and bad["worst_group"] == "B"
    assert good["worst_group_gain"] > 0.05 and good["helped"] is True
    assert bad["worst_group_gain"] < -0.1 and bad["helped"] is False
    rows = {r["group"]: r for r in good["groups"]}
    assert rows["B"]["auc_augmented"] - rows["B"]["auc_real"] == pytest.approx(
        good["worst_group_gain"])
    assert good["overall_change"] == pytest.approx(good["overall_augmented"]
                                                   - good["overall_real"])
    assert "worst group group = B" in good["note"]


def test_augmentation_effect_suppresses_small_groups_and_needs_a_target(data):
    from synthdata.evaluate.groups import augmentation_effect

    train, holdout, faithful, _ = data
    schema = _schema(train)
    small = augmentation_effect(train, faithful, holdout=holdout.head(100), schema=schema,
                                by="group", target="y", min_group_size=40)
    rows = {r["group"]: r for r in small["groups"]}
    assert rows["B"]["n_holdout"] == "< 40" and rows["B"]["auc_real"] is None
    assert small["worst_group"] == "A"
    none = augmentation_effect(train, faithful, holdout=holdout, schema=schema, by="group",
                               target=None)
    assert none["helped"] is None and "evaluate.target" in none["note"]


def test_the_worst_group_reaches_the_first_screen(data):
    from synthdata.evaluate import _html
    from synthdata.evaluate.score import summary

    train, holdout, _, erased = data
    rep = group_report(train, erased, holdout=holdout, schema=_schema(train),
                       sensitive=["group"], target="y", detection=False)
    worst = rep["worst_group"]
    assert worst["column"] == "group" and worst["value"] == "B"
    assert worst["gap"] == pytest.approx(worst["overall_shapes"] - worst["shapes"])
    assert worst["gap"] > 0.02                      # B is served worse than the rows overall
    report = {"metrics": {}, "sections": {"groups": rep}}
    first = summary(report)["worst_group"]
    assert first["not_private"] is False and first["text"].startswith("Worst group: group = B")
    html, _ = _html.first_screen(report)
    assert "Worst group: group = B" in html and "not private" not in html
    dp = {"metrics": {}, "sections": {"groups": rep, "privacy": {"private": True},
                                      "release": {"label": "not private (internal QA)"}}}
    html, _ = _html.first_screen(dp)
    assert summary(dp)["worst_group"]["not_private"] is True
    i = html.index("Worst group")
    assert "not private (internal QA)" in html[i:i + 400]
    assert summary({"metrics": {}, "sections": {}})["worst_group"] is None
