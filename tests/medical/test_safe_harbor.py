import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.errors import ConfigError, DataError
from synthdata.medical.safe_harbor import (
    RESTRICTED_ZIP3,
    DeidPolicy,
    IdentifierType,
    deidentify,
    guess_identifier_type,
)
from synthdata.schema import Column, ColumnKind, PiiRole, Schema


def _records() -> tuple[pd.DataFrame, Schema]:
    df = pd.DataFrame({
        "patient": ["a", "a", "b", "c"],
        "name": ["Ann Lee", "Ann Lee", "Bo Chan", None],
        "zip": ["02116", "02116-1234", "03601", None],
        "admit_date": ["2020-01-05", "2020-03-01", "2019-12-31", "2021-07-04"],
        "dob": ["1925-06-01", "1925-06-01", "1980-02-02", None],
        "age": [95, 95, 40, 89],
        "email": ["a@x.org", "a@x.org", None, "c@y.org"],
        "notes": ["called Ann at home", "x", "y", "z"],
        "bili": [1.0, 2.0, 3.0, 4.0],
    })
    schema = Schema(columns=(
        Column("patient", ColumnKind.ID, pii=PiiRole.DIRECT),
        Column("name", ColumnKind.CATEGORICAL, pii=PiiRole.DIRECT, nullable=True),
        Column("zip", ColumnKind.CATEGORICAL, pii=PiiRole.QUASI, nullable=True),
        Column("admit_date", ColumnKind.DATETIME, pii=PiiRole.QUASI, datetime_format="%Y-%m-%d"),
        Column("dob", ColumnKind.DATETIME, pii=PiiRole.QUASI, nullable=True),
        Column("age", ColumnKind.INTEGER, dtype="int64", pii=PiiRole.QUASI),
        Column("email", ColumnKind.CATEGORICAL, pii=PiiRole.DIRECT, nullable=True),
        Column("notes", ColumnKind.TEXT),
        Column("bili", ColumnKind.CONTINUOUS, dtype="float64"),
    ), name="visits")
    return df, schema


def test_safe_harbor_defaults():
    df, schema = _records()
    out, log = deidentify(df, schema, policy=DeidPolicy(reference_year=2024))
    assert set(out.columns) == {"zip", "admit_date", "dob", "age", "bili"}
    assert out["zip"].tolist() == ["021", "021", "000", None]          # 036 is restricted
    assert out["admit_date"].tolist() == [2020, 2020, 2019, 2021]
    assert out["dob"].isna().tolist() == [True, True, False, True]     # born 1925: over 89 in 2024
    assert out["age"].tolist() == [90, 90, 40, 89]
    assert out["bili"].equals(df["bili"])
    rules = {a.column: a.rule for a in log.actions}
    assert rules == {"patient": "drop", "name": "drop", "zip": "zip3", "admit_date": "year",
                     "dob": "birth_year", "age": "top_code_90", "email": "drop", "notes": "drop"}
    counts = {a.column: a.n_changed for a in log.actions}
    assert counts["age"] == 2 and counts["email"] == 3
    report = json.loads(log.to_json())
    assert report["method"] == "HIPAA Safe Harbor"
    assert sorted(report["dropped_columns"]) == ["email", "name", "notes", "patient"]
    new_schema = log.apply_to_schema(schema)
    assert new_schema.names == list(out.columns)
    assert new_schema["admit_date"].kind == ColumnKind.INTEGER


def test_pseudonyms_and_date_shift_keep_links_and_intervals():
    df, schema = _records()
    policy = DeidPolicy(identifiers="pseudonym", dates="shift", patient_column="patient",
                        safe_text=("notes",), reference_year=2024, seed=3,
                        types={"patient": "mrn"})
    out, log = deidentify(df, schema, policy=policy)
    assert out["patient"].iloc[0] == out["patient"].iloc[1] != out["patient"].iloc[2]
    assert out["patient"].str.match(r"^ID-\d{6}$").all()
    assert "notes" in out.columns
    before = pd.to_datetime(df["admit_date"])
    after = pd.to_datetime(out["admit_date"])
    assert (after - before).iloc[0] == (after - before).iloc[1]      # same patient, same shift
    assert (after.iloc[1] - after.iloc[0]) == (before.iloc[1] - before.iloc[0])
    assert not log.safe_harbor and "expert determination" in log.to_dict()["method"]
    again, _ = deidentify(df, schema, policy=policy)
    pd.testing.assert_frame_equal(out, again)                          # seeded


def test_unmarked_suspects_are_reported_not_changed():
    df = pd.DataFrame({"age": [95, 30], "zip_code": ["12345", "54321"]})
    out, log = deidentify(df, Schema.infer(df), policy=DeidPolicy())
    assert out.equals(df)
    assert set(log.unmarked_suspects) == {"age", "zip_code"}


def test_policy_errors():
    df, schema = _records()
    with pytest.raises(ConfigError, match="patient_column"):
        DeidPolicy(dates="shift").validate()
    with pytest.raises(ConfigError, match="policy.types\\['x'\\] is 'zipcode'"):
        DeidPolicy(types={"x": "zipcode"}).validate()
    with pytest.raises(ConfigError, match="not have"):
        deidentify(df, schema, policy=DeidPolicy(types={"nope": "zip"}, reference_year=2024))
    with pytest.raises(ConfigError, match="reference_year"):  # a birth date and no other date
        deidentify(df[["dob", "bili"]], schema.replace_columns([schema["dob"], schema["bili"]]),
                   policy=DeidPolicy())
    _, log = deidentify(df, schema, policy=DeidPolicy())      # else the data's latest year
    assert "over 89 in 2021" in next(a.note for a in log.actions if a.column == "dob")
    with pytest.raises(DataError, match="not US ZIP codes"):
        deidentify(pd.DataFrame({"z": ["ABC"]}), Schema.infer(pd.DataFrame({"z": ["ABC"]})),
                   policy=DeidPolicy(types={"z": "zip"}))


def test_name_heuristics():
    assert guess_identifier_type("postal_code") == IdentifierType.ZIP
    assert guess_identifier_type("birth_date") == IdentifierType.BIRTH_DATE
    assert guess_identifier_type("visit_date") == IdentifierType.DATE
    assert guess_identifier_type("age") == IdentifierType.AGE
    assert guess_identifier_type("home_phone") == IdentifierType.PHONE
    assert guess_identifier_type("family_name") == IdentifierType.NAME
    assert guess_identifier_type("bili") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 99999), min_size=1, max_size=30))
def test_zip3_rule(zips):
    df = pd.DataFrame({"z": [f"{z:05d}" for z in zips]})
    out, _ = deidentify(df, Schema.infer(df), policy=DeidPolicy(types={"z": "zip"}))
    for z, got in zip(zips, out["z"], strict=True):
        prefix = f"{z:05d}"[:3]
        assert got == ("000" if prefix in RESTRICTED_ZIP3 else prefix)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 120), st.none()), min_size=1, max_size=30))
def test_age_top_coding(ages):
    df = pd.DataFrame({"age": pd.array(ages, dtype="Int64")})
    out, log = deidentify(df, Schema.infer(df), policy=DeidPolicy(types={"age": "age"}))
    got = out["age"]
    assert (got.dropna() <= 90).all()
    kept = df["age"].notna() & (df["age"] <= 89)
    assert got[kept].equals(df["age"][kept])
    assert got.isna().equals(df["age"].isna())
    assert log.actions[0].n_changed == int((df["age"] > 89).sum())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3000)), min_size=1, max_size=25),
       st.integers(0, 2**31 - 1))
def test_date_shift_keeps_within_patient_intervals(rows, seed):
    base = pd.Timestamp("2000-01-01")
    df = pd.DataFrame({"pid": [p for p, _ in rows],
                       "d": [(base + pd.Timedelta(days=k)).strftime("%Y-%m-%d") for _, k in rows]})
    policy = DeidPolicy(types={"d": "date"}, dates="shift", patient_column="pid", max_shift_days=100,
                        seed=seed)
    out, _ = deidentify(df, Schema.infer(df), policy=policy)
    delta = (pd.to_datetime(out["d"]) - pd.to_datetime(df["d"])).dt.days
    assert delta.groupby(df["pid"]).nunique().max() == 1
    assert delta.abs().max() <= 100


def test_numeric_zips_get_leading_zeros_back():
    df = pd.DataFrame({"zip": [2116, 10001, np.nan]})
    out, _ = deidentify(df, Schema.infer(df), policy=DeidPolicy(types={"zip": "zip"}))
    assert out["zip"].tolist() == ["021", "100", None]
