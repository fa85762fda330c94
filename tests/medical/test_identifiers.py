"""The identifier scan (synthdata.medical.identifiers): every recogniser on a Faker table, no
false positives on the shipped data, evidence without values, and the `pii: none` escape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.medical.identifiers import (
    Finding,
    scan_column,
    scan_identifiers,
    unmarked_message,
    unresolved,
)
from synthdata.relational.schema import MultiTableSchema
from synthdata.schema.model import Schema
from tests.conftest import DATA, ROOT
from tests.medical.identifier_table import CLEAN, EXPECTED, identifier_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return identifier_table()


@pytest.fixture(scope="module")
def findings(table: pd.DataFrame) -> dict[str, Finding]:
    return {f.column: f for f in scan_identifiers(table)}


@pytest.mark.parametrize("column", sorted(EXPECTED))
def test_every_recogniser_finds_its_column(findings, column):
    assert column in findings, f"{column} not detected"
    assert findings[column].kind == EXPECTED[column]
    assert 0.5 <= findings[column].confidence <= 1.0


@pytest.mark.parametrize("column", CLEAN)
def test_clinical_columns_are_not_flagged(findings, column):
    assert column not in findings


def test_evidence_counts_and_never_quotes_values(table, findings):
    assert "sampled values are valid US social security numbers" in findings["ssn"].evidence
    assert findings["contact"].evidence.startswith("120/120 sampled values are e-mail")
    assert "14 of 120 values are over 89" in findings["age"].evidence
    assert "personal names" in findings["full_name"].evidence
    text = " ".join(f.evidence for f in findings.values())
    for column in EXPECTED:
        for value in table[column].astype(str).head(30):
            if len(value) > 3:
                assert value not in text, column


def test_recognisers_use_values_not_only_names(table):
    """Renamed to neutral names, the value recognisers still find the identifiers."""
    renamed = table.rename(columns={c: f"col{i}" for i, c in enumerate(table.columns)})
    kinds = {f.column: f.kind for f in scan_identifiers(renamed)}
    by_old = {table.columns[int(c[3:])]: k for c, k in kinds.items()}
    for column in ("full_name", "contact", "tel", "ssn", "nhs_no", "iban", "card", "ref",
                   "dob", "admitted", "note", "homepage", "ip", "first_name", "surname"):
        assert column in by_old, column
    assert "zip" in by_old            # five-digit text with leading zeros
    assert "age" not in by_old        # an age needs its name: 95 is just a number


def test_names_alone_flag_identifier_columns_with_many_values():
    n = 40
    df = pd.DataFrame({"home_phone": [f"ext {i}" for i in range(n)],
                       "phone_service": ["yes", "no"] * (n // 2),
                       "device_protection": ["yes", "no"] * (n // 2)})
    kinds = {f.column: f.kind for f in scan_identifiers(df)}
    assert kinds == {"home_phone": "phone"}


def test_numbers_named_zip_and_datetimes():
    df = pd.DataFrame({"zip": [2116, 94110, 10001, 60614] * 10,
                       "visit": pd.date_range("2020-01-01", periods=40, freq="D"),
                       "lab": np.arange(40) * 1.5})
    kinds = {f.column: f.kind for f in scan_identifiers(df)}
    assert kinds == {"zip": "zip", "visit": "date"}


def test_shipped_data_has_no_open_findings():
    """flchain (its age > 89 is a true finding, marked quasi in the schema) and pbc (keys
    reviewed `pii: none`): nothing left open."""
    flchain = pd.read_csv(DATA / "flchain.csv")
    schema = Schema.infer(flchain).with_overrides(
        __import__("synthdata.schema.model", fromlist=["load_yaml"]).load_yaml(
            ROOT / "schemas" / "flchain.yaml"))
    found = scan_identifiers(flchain, schema)
    assert [f.column for f in found] == ["age"]
    handled = [c.name for c in schema.columns if c.pii is not None and c.pii.value == "quasi"]
    assert unresolved(found, schema, handled=handled) == []
    ms = MultiTableSchema.load(ROOT / "schemas" / "pbc.yaml")
    for name in ("pbc", "pbcseq"):
        df = pd.read_csv(DATA / f"{name}.csv")
        found = scan_identifiers(df, ms.tables[name])
        assert unresolved(found, ms.tables[name], handled=["age"]) == []


def test_unresolved_respects_pii_none_and_the_message_names_the_ways_out(table, findings):
    schema = Schema.from_dict({"name": "t", "columns": [
        {"name": "contact", "kind": "id", "pii": "none"},
        {"name": "tel", "kind": "id", "pii": "direct"},
        {"name": "ssn", "kind": "id", "pii": "sensitive"}]})
    sub = [findings["contact"], findings["tel"], findings["ssn"]]
    left = unresolved(sub, schema, handled=["tel"])
    assert [f.column for f in left] == ["ssn"]   # sensitive does not de-identify
    message = unmarked_message(left, "clinic.csv")
    assert message.startswith("clinic.csv: 1 column(s) look like identifiers")
    assert "'ssn' looks like ssn" in message
    for way in ("pii: direct", "pii: quasi", "pii: none", "deid.unmarked: transform"):
        assert way in message


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=30, max_size=60),
       st.sampled_from(["bili", "chol", "weight", "value", "kappa", "futime"]))
def test_measurements_are_never_identifiers(values, name):
    assert scan_column(pd.Series(values, name=name)) is None
    assert scan_column(pd.Series(np.round(values).astype(int), name=name)) is None
