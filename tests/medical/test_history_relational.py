"""Within-patient rules in linked tables: defaults from the link, real-data policies, and
0 violations in relational output."""

import copy

import numpy as np
import pytest

from synthdata.errors import DataError, SchemaError
from synthdata.relational.schema import MultiTableSchema
from synthdata.relational.synthesizer import RelationalSynthesizer
from tests.medical.history_data import LINK_RULES, RULES, SCHEMA, cohort, schema

FAST = {"n_components": 4, "max_iter": 30}


def test_by_and_order_default_to_the_link():
    ms = schema()
    rule = ms.tables["visits"].constraints[0]
    assert (rule.by, rule.order) == ("pid", "day")
    link_rule = ms.constraints[0]
    assert link_rule.describe() == "visits.age_at_visit = patients.age + (visits.day - 0) / 365.25"
    again = MultiTableSchema.from_dict(ms.to_dict())
    assert again.tables["visits"].constraints == ms.tables["visits"].constraints


def test_a_grouped_rule_on_a_root_table_needs_by():
    data = copy.deepcopy(SCHEMA)
    data["tables"]["patients"]["constraints"] = [{"kind": "monotone", "column": "age"}]
    with pytest.raises(SchemaError, match="table 'patients'.*needs 'by'"):
        MultiTableSchema.from_dict(data)


def test_relational_output_breaks_no_declared_rule_and_counts_repairs():
    tables = cohort(250)
    without = RelationalSynthesizer(schema(rules=False), generator="gmm", generator_params=FAST, seed=0,
                                    discover_rules=False).fit(tables).sample()
    broken = schema().constraint_violations(without)
    assert sum(broken.values()) > 0                    # the rules matter for this data
    model = RelationalSynthesizer(schema(), generator="gmm", generator_params=FAST, seed=0,
                                  discover_rules=False).fit(tables)
    out = model.sample()
    assert set(model.violations_) == set(broken)
    assert all(n == 0 for n in model.violations_.values())
    assert any("(repaired)" in k for k in model.fixes_)
    visits = out["visits"].sort_values(["pid", "day"])
    assert (visits.groupby("pid")["ever_diabetes"].diff().fillna(0) >= 0).all()
    age = out["patients"].set_index("pid")["age"].reindex(visits["pid"]).to_numpy()
    assert np.allclose(visits["age_at_visit"], age + visits["day"] / 365.25, atol=0.011)


def test_discovered_rules_hold_in_the_output_without_privacy():
    tables = cohort(250)
    model = RelationalSynthesizer(schema(rules=False), generator="gmm", generator_params=FAST, seed=0).fit(tables)
    model.sample()
    found = {r.describe() for r in model.discovered_["visits"]}
    assert "ever_diabetes non-decreasing over day per pid" in found
    assert model.discovered_violations_ and not any(model.discovered_violations_.values())


def test_real_violations_drop_repair_or_error():
    tables = cohort(120)
    visits = tables["visits"].copy()
    visits.loc[0, "ever_diabetes"] = 1                  # patient 1: flag on, then off
    visits.loc[1, "ever_diabetes"] = 0
    broken = {**tables, "visits": visits}
    ms = schema()
    with pytest.raises(DataError, match="ever_diabetes non-decreasing over day per pid"):
        ms.validate(broken)
    for policy, rows in (("drop", 1), ("repair", 1)):
        data = ms.to_dict()
        data["tables"]["visits"]["constraints"][0]["on_real_violation"] = policy
        ms2 = MultiTableSchema.from_dict(data)
        fixed, report = ms2.apply_real_violation_policy(broken)
        entry = next(e for e in report if e["rule"].startswith("ever_diabetes"))
        assert entry == {"rule": "ever_diabetes non-decreasing over day per pid",
                         "table": "visits", "policy": policy, "rows": rows}
        ms2.validate(fixed)
        assert len(fixed["visits"]) == len(visits) - (1 if policy == "drop" else 0)


def test_dropping_a_parent_row_drops_its_children():
    tables = cohort(60)
    data = copy.deepcopy(SCHEMA)
    data["tables"]["patients"]["constraints"] = [
        {"kind": "range", "column": "age", "high": 70, "on_real_violation": "drop"}]
    ms = MultiTableSchema.from_dict(data)
    fixed, report = ms.apply_real_violation_policy(tables)
    old = set(tables["patients"].loc[tables["patients"]["age"] > 70, "pid"])
    assert old and not old & set(fixed["patients"]["pid"]) and not old & set(fixed["visits"]["pid"])
    assert report[0]["rows"] == len(old)
    assert report[-1]["rule"] == "rows dropped with their parent row in 'patients'"
    ms.validate(fixed)


def test_under_patient_privacy_no_rule_is_discovered():
    from synthdata.privacy.config import DPConfig

    data = copy.deepcopy(SCHEMA)
    data["tables"]["patients"]["columns"][2].update(categories=["f", "m"], public=True)
    data["tables"]["patients"]["columns"][4].update(categories=[0, 1], public=True)
    for col in data["tables"]["visits"]["columns"][3:5]:
        col.update(categories=[0, 1], public=True)
    data["tables"]["visits"]["constraints"] = list(RULES[:1])
    ms = MultiTableSchema.from_dict(data)
    model = RelationalSynthesizer(ms, generator="gmm", generator_params=FAST, seed=0,
                                  privacy=DPConfig(epsilon=3.0)).fit(cohort(150))
    out = model.sample()
    assert model.discovered_ == {} and model.discovered_links_ == []
    assert model.violations_ == {"visits: ever_diabetes non-decreasing over day per pid": 0}
    assert set(out) == {"patients", "visits"}


def test_a_rule_across_tables_names_its_tables():
    data = copy.deepcopy(SCHEMA)
    data["constraints"] = [{"kind": "time_derived", "column": "visits.age_at_visit",
                            "time": "visits.nope", "baseline": "patients.age"}]
    with pytest.raises(SchemaError, match="table 'visits' has no column 'nope'"):
        MultiTableSchema.from_dict(data)
    assert LINK_RULES  # the shipped example rules load (see schema())
    schema()
