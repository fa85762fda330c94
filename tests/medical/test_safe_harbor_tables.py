"""De-identification of linked tables: one date shift per patient in every table, keys kept linked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import ConfigError
from synthdata.medical.safe_harbor import DeidPolicy, deidentify_tables
from synthdata.relational.schema import ForeignKey, MultiTableSchema
from synthdata.schema import Column, ColumnKind, PiiRole, Schema

DAY = "%Y-%m-%d"


def _hospital(seed: int = 0) -> tuple[dict[str, pd.DataFrame], MultiTableSchema]:
    """patients (MRN key) -> visits (visit key) -> labs, dates in all three tables."""
    rng = np.random.default_rng(seed)
    n = 40
    mrn = [f"MRN{100000 + 7 * i}" for i in range(n)]
    enrol = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D")
    patients = pd.DataFrame({"mrn": mrn, "name": [f"P{i}" for i in range(n)],
                             "enrol_date": enrol.strftime(DAY),
                             "zip": rng.choice(["02116", "10001"], n)})
    per = rng.integers(1, 5, n)
    owner = np.repeat(np.arange(n), per)
    gap = rng.integers(0, 900, len(owner))
    visits = pd.DataFrame({
        "visit_id": np.arange(1, len(owner) + 1), "mrn": np.array(mrn)[owner],
        "visit_date": (enrol[owner] + pd.to_timedelta(gap, unit="D")).strftime(DAY),
        "notes": [f"patient {m} reported pain" for m in np.array(mrn)[owner]]})
    lab_owner = np.repeat(np.arange(len(visits)), 2)
    labs = pd.DataFrame({
        "visit_id": visits["visit_id"].to_numpy()[lab_owner],
        "lab_date": (pd.to_datetime(visits["visit_date"]).to_numpy()[lab_owner]
                     + pd.to_timedelta(rng.integers(0, 3, len(lab_owner)), unit="D")),
        "value": rng.normal(5, 1, len(lab_owner)).round(2)})
    labs["lab_date"] = pd.to_datetime(labs["lab_date"]).dt.strftime(DAY)
    ms = MultiTableSchema(
        tables={
            "patients": Schema((Column("mrn", ColumnKind.ID, pii=PiiRole.DIRECT),
                                Column("name", ColumnKind.ID, pii=PiiRole.DIRECT),
                                Column("enrol_date", ColumnKind.DATETIME, datetime_format=DAY,
                                       pii=PiiRole.QUASI),
                                Column("zip", ColumnKind.CATEGORICAL, pii=PiiRole.QUASI)),
                               name="patients", primary_key="mrn"),
            "visits": Schema((Column("visit_id", ColumnKind.ID, dtype="int64"),
                              Column("mrn", ColumnKind.ID, pii=PiiRole.DIRECT),
                              Column("visit_date", ColumnKind.DATETIME, datetime_format=DAY,
                                     pii=PiiRole.QUASI),
                              Column("notes", ColumnKind.TEXT)),
                             name="visits", primary_key="visit_id"),
            "labs": Schema((Column("visit_id", ColumnKind.ID, dtype="int64"),
                            Column("lab_date", ColumnKind.DATETIME, datetime_format=DAY,
                                   pii=PiiRole.QUASI),
                            Column("value", ColumnKind.CONTINUOUS, dtype="float64")),
                           name="labs")},
        primary_keys={"patients": "mrn", "visits": "visit_id"},
        foreign_keys=[ForeignKey("visits", "mrn", "patients", "mrn", order_by="visit_date"),
                      ForeignKey("labs", "visit_id", "visits", "visit_id", order_by="lab_date")],
        name="hospital")
    tables = {"patients": patients, "visits": visits, "labs": labs}
    ms.validate(tables)
    return tables, ms


def _shift(before: pd.Series, after: pd.Series) -> pd.Series:
    return (pd.to_datetime(after) - pd.to_datetime(before)).dt.days


def test_one_date_shift_per_patient_across_linked_tables():
    tables, ms = _hospital()
    out, new_ms, logs = deidentify_tables(tables, ms, policy=DeidPolicy(dates="shift", seed=5))
    # each row's shift, labelled with the real patient its links lead to
    patient_shift = pd.Series(_shift(tables["patients"]["enrol_date"],
                                     out["patients"]["enrol_date"]).to_numpy(),
                              index=tables["patients"]["mrn"])
    visit_owner = tables["visits"]["mrn"]
    visit_shift = _shift(tables["visits"]["visit_date"], out["visits"]["visit_date"])
    assert (visit_shift.to_numpy() == patient_shift[visit_owner].to_numpy()).all()
    lab_owner = tables["labs"]["visit_id"].map(dict(zip(tables["visits"]["visit_id"],
                                                        visit_owner, strict=True)))
    lab_shift = _shift(tables["labs"]["lab_date"], out["labs"]["lab_date"])
    assert (lab_shift.to_numpy() == patient_shift[lab_owner].to_numpy()).all()
    assert patient_shift.nunique() > 10 and patient_shift.abs().max() <= 365
    # so every interval within a patient is kept, across tables
    assert logs["visits"].actions[-1].rule == "drop" and "notes" not in out["visits"]
    assert not logs["patients"].safe_harbor      # a shift is expert determination
    assert {a.table for log in logs.values() for a in log.actions} == set(tables)


def test_identifying_keys_get_shared_codes_and_links_hold():
    tables, ms = _hospital()
    out, new_ms, logs = deidentify_tables(tables, ms, policy=DeidPolicy())
    assert out["patients"]["mrn"].str.match(r"^ID-\d{6}$").all()
    assert not set(out["patients"]["mrn"]) & set(tables["patients"]["mrn"])
    assert new_ms.check(out).is_ok                                  # every visit has its patient
    # the same patient keeps their visits
    before = tables["visits"].groupby("mrn").size().sort_values().to_numpy()
    after = out["visits"].groupby("mrn").size().sort_values().to_numpy()
    assert (before == after).all()
    rules = {(a.table, a.column): a.rule for log in logs.values() for a in log.actions}
    assert rules[("patients", "mrn")] == rules[("visits", "mrn")] == "pseudonym"
    assert rules[("patients", "name")] == "drop" and rules[("patients", "zip")] == "zip3"
    assert rules[("labs", "lab_date")] == "year"
    assert out["labs"]["lab_date"].between(2015, 2023).all()
    assert new_ms.tables["labs"]["lab_date"].kind == ColumnKind.INTEGER
    assert "name" not in new_ms.tables["patients"] and "notes" not in new_ms.tables["visits"]


def test_linked_policy_names_columns_with_their_table():
    tables, ms = _hospital()
    policy = DeidPolicy(safe_text=("visits.notes",), types={"labs.value": "other_id"})
    out, new_ms, logs = deidentify_tables(tables, ms, policy=policy)
    assert "notes" in out["visits"] and "value" not in out["labs"]
    with pytest.raises(ConfigError, match="table.column"):
        deidentify_tables(tables, ms, policy=DeidPolicy(safe_text=("notes",)))
    with pytest.raises(ConfigError, match="root table's key"):
        deidentify_tables(tables, ms, policy=DeidPolicy(dates="shift", patient_column="name"))
