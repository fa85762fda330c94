"""Discovery of within-patient rules on linked tables."""


from synthdata.constraints.discover import discover_history
from tests.medical.history_data import cohort, schema


def test_rules_that_hold_on_every_patient_are_proposed():
    tables = cohort(200)
    own, across = discover_history(tables, schema(rules=False))
    found = {r.describe() for r in own["visits"]}
    assert "ever_diabetes non-decreasing over day per pid" in found
    assert "age_at_visit = first age_at_visit + (day - first day) / 365.25" in found
    assert not any("sbp" in r or "on_insulin" in r for r in found)   # noise is no rule
    assert [r.describe() for r in across] == ["visits.day <= patients.futime"]


def test_one_patient_breaking_a_rule_stops_its_proposal():
    tables = cohort(200)
    visits = tables["visits"].copy()
    patient = visits.groupby("pid").size().idxmax()
    rows = visits.index[visits["pid"] == patient]
    visits.loc[rows, "ever_diabetes"] = [1] + [0] * (len(rows) - 1)  # switches back off
    visits.loc[rows[-1], "day"] = int(tables["patients"].set_index("pid").loc[patient, "futime"]) + 1
    own, across = discover_history({**tables, "visits": visits}, schema(rules=False))
    assert not any("ever_diabetes" in r.describe() for r in own["visits"])
    assert across == []


def test_too_few_rows_propose_nothing():
    tables = cohort(3)
    own, across = discover_history(tables, schema(rules=False))
    assert own.get("visits", []) == [] and across == []
