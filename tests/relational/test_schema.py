import pandas as pd
import pytest

from synthdata.errors import DataError, SchemaError
from synthdata.relational.schema import ForeignKey, MultiTableSchema
from synthdata.schema import Schema
from tests.conftest import ROOT, SHARED, requires_shared


def _toy() -> tuple[dict[str, pd.DataFrame], MultiTableSchema]:
    tables = {"patients": pd.DataFrame({"pid": [1, 2, 3], "age": [50, 60, 70]}),
              "visits": pd.DataFrame({"pid": [1, 1, 3], "day": [0, 10, 0], "bili": [1.0, 2.0, 3.0]})}
    ms = MultiTableSchema.infer(tables, primary_keys={"patients": "pid", "visits": ("pid", "day")},
                                foreign_keys=[("visits", "pid", "patients", "pid")], name="toy")
    return tables, ms


def test_valid_tables_pass_and_count(pbc_tables, pbc_schema):
    report = pbc_schema.validate(pbc_tables)
    assert report.is_ok and report.integrity == 1.0
    assert report.n_rows == {"pbc": 418, "pbcseq": 1945}
    counts = pbc_schema.children_per_parent(pbc_tables, pbc_schema.foreign_keys[0])
    assert len(counts) == 418 and int((counts == 0).sum()) == 106 and counts.sum() == 1945


def test_orphans_duplicates_and_missing_tables_are_named():
    tables, ms = _toy()
    bad = dict(tables, visits=pd.concat([tables["visits"],
                                         pd.DataFrame({"pid": [9, 1], "day": [0, 0], "bili": [1.0, 1.0]})]))
    with pytest.raises(DataError) as err:
        ms.validate(bad)
    text = str(err.value)
    assert "visits.pid -> patients.pid: 1 orphan row(s) in 'visits'" in text and "[9]" in text
    assert "table 'visits': 2 row(s) share a primary key pid/day" in text
    report = ms.check(bad)
    assert report.n_orphans == {"visits.pid": 1} and report.integrity == pytest.approx(1 - 1 / 5)
    with pytest.raises(DataError, match=r"table\(s\) \['visits'\] are missing"):
        ms.validate({"patients": tables["patients"]})
    dup_parent = dict(tables, patients=pd.concat([tables["patients"], tables["patients"].iloc[:1]]))
    with pytest.raises(DataError, match="table 'patients': 2 row\\(s\\) share a primary key pid"):
        ms.validate(dup_parent)


def test_schema_errors_are_clear():
    tables, ms = _toy()
    schemas = dict(ms.tables)
    with pytest.raises(SchemaError, match="table 'nope' is not declared"):
        MultiTableSchema(schemas, {"patients": "pid"}, [("nope", "pid", "patients", "pid")])
    with pytest.raises(SchemaError, match="must be the primary key of"):
        MultiTableSchema(schemas, {}, [("visits", "pid", "patients", "pid")])
    with pytest.raises(SchemaError, match="order_by column 'when'"):
        MultiTableSchema(schemas, {"patients": "pid"},
                         [ForeignKey("visits", "pid", "patients", "pid", order_by="when")])
    with pytest.raises(SchemaError, match="unknown key\\(s\\) \\['childs'\\]"):
        MultiTableSchema.from_dict({"tables": {"p": {"columns": [{"name": "a", "kind": "id"}]}},
                                    "foreign_keys": [{"childs": "x"}]})


def test_yaml_round_trip(tmp_path, pbc_schema):
    path = pbc_schema.save(tmp_path / "pbc.yaml")
    again = MultiTableSchema.load(path)
    assert again == pbc_schema
    assert again.primary_keys == {"pbc": ("id",), "pbcseq": ("id", "day")}
    fk = again.foreign_keys[0]
    assert fk.order_by == "day"
    assert [r.describe() for r in again.tables["pbcseq"].constraints] == ["0 <= day <= futime"]
    assert again.survival["pbc"].event_values == (2,)
    assert again.order() == ["pbc", "pbcseq"]
    assert isinstance(again.tables["pbc"], Schema) and again.tables["pbc"].primary_key == "id"


@requires_shared()
def test_nafld_schema_matches_the_shared_data():
    ms = MultiTableSchema.load(ROOT / "schemas" / "nafld.yaml")
    assert ms.order() == ["nafld1", "nafld2", "nafld3"]
    assert [fk.child for fk in ms.children_of("nafld1")] == ["nafld2", "nafld3"]
    nafld1 = pd.read_csv(SHARED / "nafld1.csv")
    nafld3 = pd.read_csv(SHARED / "nafld3.csv")
    small = {"nafld1": nafld1, "nafld2": pd.read_csv(SHARED / "nafld2.csv", nrows=2000), "nafld3": nafld3}
    # 13 nafld3 events are dated after futime: the schema drops them (on_real_violation)
    small, dropped = ms.apply_real_violation_policy(small)
    assert dropped == [{"rule": "nafld3.days <= nafld1.futime", "table": "nafld3",
                        "policy": "drop", "rows": 13}]
    report = ms.validate(small)
    assert report.is_ok
    assert any("nafld1.case.id -> nafld1.id" in w for w in report.warnings)  # not enforced


def _linked(rule: dict | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    tables = {"subjects": pd.DataFrame({"id": [1, 2, 3], "futime": [100, 50, 10]}),
              "labs": pd.DataFrame({"id": [1, 1, 2, 3], "days": [-5, 90, 50, 3],
                                    "value": [1.0, 2.0, 3.0, 4.0]})}
    ms = MultiTableSchema.infer(tables, primary_keys={"subjects": "id"},
                                foreign_keys=[("labs", "id", "subjects", "id")])
    d = ms.to_dict()
    d["constraints"] = [rule or {"kind": "inequality", "low": "labs.days", "high": "subjects.futime"}]
    return tables, d


def test_rules_across_a_link_are_parsed_checked_and_counted(tmp_path):
    tables, d = _linked()
    ms = MultiTableSchema.from_dict(d)
    assert ms.link_rule_table(ms.constraints[0]) == "labs"
    assert ms.validate(tables).is_ok
    assert ms.constraint_violations(tables) == {"labs.days <= subjects.futime": 0}
    again = MultiTableSchema.load(ms.save(tmp_path / "s.yaml"))
    assert again.constraints == ms.constraints
    broken = dict(tables, labs=tables["labs"].assign(days=[-5, 90, 51, 11]))
    assert ms.constraint_violations(broken) == {"labs.days <= subjects.futime": 2}
    with pytest.raises(DataError, match=r"'labs.days <= subjects.futime' on 2 row\(s\)"):
        ms.validate(broken)
    rng = MultiTableSchema.from_dict(_linked({"kind": "range", "column": "labs.days", "low": -10,
                                              "high": "subjects.futime"})[1])
    assert rng.constraint_violations(broken) == {"-10 <= labs.days <= subjects.futime": 2}


@pytest.mark.parametrize("rule, message", [
    ({"kind": "inequality", "low": "days", "high": "subjects.futime"}, "table.column"),
    ({"kind": "inequality", "low": "labs.day", "high": "subjects.futime"}, "no column 'day'"),
    ({"kind": "inequality", "low": "nope.days", "high": "subjects.futime"}, "table.column"),
    ({"kind": "unique", "columns": ["labs.days"]}, "only inequality, range and within-patient"),
])
def test_bad_rules_across_a_link_are_named(rule, message):
    with pytest.raises(SchemaError, match=message):
        MultiTableSchema.from_dict(_linked(rule)[1])


def test_old_time_bounds_point_to_constraints():
    _, d = _linked()
    d["foreign_keys"][0]["max_column"] = "futime"
    with pytest.raises(SchemaError, match="replaced by constraints"):
        MultiTableSchema.from_dict(d)
