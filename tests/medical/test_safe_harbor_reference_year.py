"""Safe Harbor details: the ages-over-89 reference year is the data's own latest year, and a
date shift moves all dates of one patient by the same number of days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import ConfigError
from synthdata.medical.safe_harbor import DeidPolicy, deidentify, latest_year
from synthdata.schema.model import Schema


def _schema(*columns: dict) -> Schema:
    return Schema.from_dict({"name": "t", "columns": list(columns)})


DOB = {"name": "dob", "kind": "datetime", "datetime_format": "%Y-%m-%d", "pii": "quasi"}
ADMIT = {"name": "admit_date", "kind": "datetime", "datetime_format": "%Y-%m-%d", "pii": "quasi"}


def test_reference_year_is_the_latest_year_of_the_data():
    df = pd.DataFrame({"dob": ["1929-06-01", "1930-02-01", "1960-01-01"],
                       "admit_date": ["2015-03-01", "2019-11-30", "2018-01-01"]})
    schema = _schema(DOB, ADMIT)
    assert latest_year(df, schema) == 2019
    out, log = deidentify(df, schema)
    # 2019 - 1929 = 90: removed; 2019 - 1930 = 89: kept (with the run's year it would go too)
    assert out["dob"].tolist()[1:] == [1930, 1960] and pd.isna(out["dob"].iloc[0])
    note = next(a.note for a in log.actions if a.column == "dob")
    assert "over 89 in 2019 (the latest year among the table's own dates)" in note
    assert out["admit_date"].tolist() == [2015, 2019, 2018]


def test_explicit_reference_year_wins_and_no_dates_needs_one():
    df = pd.DataFrame({"dob": ["1929-06-01", "1930-02-01", "1960-01-01"]})
    out, _ = deidentify(df, _schema(DOB), policy=DeidPolicy(reference_year=2030))
    assert out["dob"].isna().tolist() == [True, True, False]
    with pytest.raises(ConfigError, match="no other date to take it from"):
        deidentify(df, _schema(DOB))


def test_date_shift_keeps_intervals_within_each_patient():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"P{i}" for i in range(30)], 4)
    admit = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, len(patients)), "D")
    discharge = admit + pd.to_timedelta(rng.integers(1, 30, len(patients)), "D")
    df = pd.DataFrame({"patient": patients, "admit_date": admit.strftime("%Y-%m-%d"),
                       "discharge_date": discharge.strftime("%Y-%m-%d")})
    schema = _schema({"name": "patient", "kind": "categorical"}, ADMIT,
                     {**ADMIT, "name": "discharge_date"})
    policy = DeidPolicy(dates="shift", patient_column="patient", seed=3)
    out, log = deidentify(df, schema, policy=policy)
    assert not log.safe_harbor
    before = df[["admit_date", "discharge_date"]].apply(pd.to_datetime)
    after = out[["admit_date", "discharge_date"]].apply(pd.to_datetime)
    shift = (after - before).apply(lambda s: s.dt.days)
    per_patient = shift.groupby(df["patient"]).nunique()
    assert (per_patient == 1).all().all()                         # one offset per patient
    assert (shift["admit_date"] == shift["discharge_date"]).all()  # the same in every column
    assert shift.groupby(df["patient"])["admit_date"].first().nunique() > 20  # not one global
    assert (shift["admit_date"] != 0).mean() > 0.9
    # every interval between two dates of one patient is kept, across rows and columns
    for _, rows in df.groupby("patient").groups.items():
        a, b = before.loc[rows].to_numpy().ravel(), after.loc[rows].to_numpy().ravel()
        assert (np.subtract.outer(a, a) == np.subtract.outer(b, b)).all()
