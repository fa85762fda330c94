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


def test_a_child_table_of_twice_min_expected_rows_is_enough() -> None:
    """Two patients with five visits each whose total dose never goes down: with
    ``min_expected=5`` the 10 rows are enough to propose the rule, 9 rows are not."""
    import pandas as pd

    from synthdata.relational.schema import MultiTableSchema

    ms = MultiTableSchema.from_dict({
        "version": 1, "name": "doses",
        "tables": {
            "patients": {"primary_key": "pid", "columns": [
                {"name": "pid", "kind": "id", "dtype": "int64"}]},
            "visits": {"columns": [
                {"name": "pid", "kind": "id", "dtype": "int64"},
                {"name": "day", "kind": "integer", "dtype": "int64"},
                {"name": "total_dose", "kind": "continuous", "dtype": "float64"}]}},
        "foreign_keys": [{"child": "visits", "column": "pid", "parent": "patients",
                          "parent_column": "pid", "order_by": "day"}]})
    visits = pd.DataFrame({"pid": [1] * 5 + [2] * 5, "day": [0, 7, 14, 21, 28] * 2,
                           "total_dose": [1.0, 2.5, 4.0, 4.5, 6.0, 0.5, 1.0, 3.0, 3.5, 8.0]})
    tables = {"patients": pd.DataFrame({"pid": [1, 2]}), "visits": visits}
    own, _ = discover_history(tables, ms, min_expected=5)
    assert [r.describe() for r in own["visits"]] == ["total_dose non-decreasing over day per pid"]
    own, across = discover_history({**tables, "visits": visits.iloc[:9]}, ms, min_expected=5)
    assert own == {} and across == []
