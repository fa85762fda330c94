import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import ConfigError, DataError
from synthdata.io.fhir import (
    FOREIGN_KEYS,
    TABLES,
    build_bundle,
    read_fhir,
    read_fhir_summary,
    write_fhir_bundle,
)
from tests.conftest import SHARED

pytest.importorskip("fhir.resources")
EXAMPLES = SHARED / "fhir_r4_examples"
requires_examples = pytest.mark.skipif(not EXAMPLES.is_dir(),
                                       reason="../shared/datasets/fhir_r4_examples is not available")


def _bundle() -> dict:
    """A hand-made transaction bundle: urn:uuid references, periods, three value[x] kinds."""
    p1, p2, e1 = "urn:uuid:11111111-1111-4111-8111-111111111111", \
        "urn:uuid:22222222-2222-4222-8222-222222222222", "urn:uuid:33333333-3333-4333-8333-333333333333"
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": p1, "resource": {
            "resourceType": "Patient", "gender": "female", "birthDate": "1950-02-03",
            "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
            "telecom": [{"system": "email", "value": "jd@example.org"}],
            "address": [{"postalCode": "02116", "state": "MA", "city": "Boston"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": p2, "resource": {"resourceType": "Patient", "id": "p2", "gender": "unknown",
                                     "deceasedDateTime": "2020-05-01T10:00:00Z"}},
        {"fullUrl": e1, "resource": {
            "resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": p1},
            "period": {"start": "2021-01-01T09:00:00+01:00", "end": "2021-01-01T10:00:00+01:00"}}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                      "subject": {"reference": p1}, "encounter": {"reference": e1},
                      "effectiveDateTime": "2021-01-01",
                      "valueQuantity": {"value": 5.4, "unit": "mmol/L"}}},
        {"resource": {"resourceType": "Observation", "id": "o2", "status": "amended",
                      "code": {"text": "smoking"}, "subject": {"reference": "Patient/p2"},
                      "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                           "code": "8517006"}]}}},
        {"resource": {"resourceType": "Observation", "id": "o3", "status": "final",
                      "code": {"text": "note"}, "subject": {"reference": "Patient/p2"},
                      "effectivePeriod": {"start": "2019", "end": "2020-02"},
                      "valueString": "ok"}},
        {"resource": {"resourceType": "Condition", "id": "c1",
                      "clinicalStatus": {"coding": [{"code": "resolved"}]},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                                           "display": "Diabetes"}]},
                      "subject": {"reference": p1}, "onsetDateTime": "2010-06",
                      "abatementDateTime": "2015"}},
        {"resource": {"resourceType": "Practitioner", "id": "dr"}},  # skipped
    ]}


def _write(tmp_path: Path, data: dict, name: str = "b.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_read_hand_made_bundle_links_tables(tmp_path):
    tables = read_fhir(_write(tmp_path, _bundle()))
    assert set(tables) == set(TABLES)
    pats, enc, obs, cond = (tables[t] for t in ("patients", "encounters", "observations", "conditions"))
    assert pats["patient_id"].tolist() == ["11111111-1111-4111-8111-111111111111", "p2"]
    assert pats.loc[0, "given_name"] == "Jane Q" and pats.loc[0, "postal_code"] == "02116"
    assert bool(pats.loc[1, "deceased"]) and pats.loc[1, "deceased_date"] == "2020-05-01T10:00:00Z"
    assert enc.loc[0, "patient_id"] == pats.loc[0, "patient_id"]
    assert obs["encounter_id"].iloc[0] == enc.loc[0, "encounter_id"]
    assert obs["value"].iloc[0] == 5.4 and obs["value_code"].iloc[1] == "8517006"
    assert obs["effective_end"].iloc[2] == "2020-02"
    assert cond.loc[0, "clinical_status"] == "resolved" and cond.loc[0, "onset"] == "2010-06"
    for child, col, parent, pk in FOREIGN_KEYS:  # every reference resolves
        linked = tables[child][col].dropna()
        assert linked.isin(tables[parent][pk]).all(), (child, col)


@pytest.mark.parametrize("bundle_type", ["collection", "transaction"])
def test_round_trip_hand_made(tmp_path, bundle_type):
    tables = read_fhir(_write(tmp_path, _bundle()))
    out = write_fhir_bundle(tables, tmp_path / "out.json", bundle_type=bundle_type,
                            base_url="https://fhir.test/r4" if bundle_type == "collection" else None)
    written = json.loads(out.read_text())
    assert written["type"] == bundle_type
    if bundle_type == "transaction":
        assert all(e["request"]["method"] == "PUT" for e in written["entry"])
    again = read_fhir(out)
    for name in TABLES:
        pd.testing.assert_frame_equal(tables[name], again[name], check_dtype=True)


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/datasets is not available")
def test_round_trip_shared_examples(tmp_path):
    tables = read_fhir(EXAMPLES)
    assert len(tables["patients"]) == 8  # 2 single + 6 in the collection bundle
    assert len(tables["encounters"]) == 2 and len(tables["observations"]) == 2
    assert len(tables["conditions"]) == 2
    out = write_fhir_bundle(tables, tmp_path / "examples.json")
    again = read_fhir(out)
    for name in TABLES:
        pd.testing.assert_frame_equal(tables[name], again[name])


@requires_examples
def test_each_shared_example_reads_alone():
    for path in sorted(EXAMPLES.rglob("*.json")):
        tables = read_fhir(path)
        assert sum(len(t) for t in tables.values()) >= 1, path


def test_written_bundle_validates_with_r4b_models(tmp_path):
    from fhir.resources.R4B.bundle import Bundle

    tables = read_fhir(_write(tmp_path, _bundle()))
    out = write_fhir_bundle(tables, tmp_path / "out.json", bundle_type="collection", bundle_id="b1")
    bundle = Bundle.model_validate_json(out.read_text())
    assert bundle.type == "collection" and len(bundle.entry) == 7


def test_write_synthetic_like_tables(tmp_path):
    """Numbers as ids, Timestamps, NaN, numpy ints: what a generator hands back."""
    patients = pd.DataFrame({"patient_id": [1, 2, 3], "gender": ["male", "female", np.nan],
                             "birth_date": pd.to_datetime(["1950-01-01", "1960-05-06", None]),
                             "postal_code": [2116.0, np.nan, 10001.0]})
    obs = pd.DataFrame({"observation_id": np.arange(10, 14), "patient_id": [1, 1, 2, 3],
                        "status": "final", "code": ["bili"] * 4,
                        "effective": pd.to_datetime(["2020-01-01 10:30", "2020-02-01 00:00", None, None]),
                        "value": [1.5, np.nan, 3.0, 4.25], "value_unit": "mg/dL"})
    out = write_fhir_bundle({"patients": patients, "observations": obs}, tmp_path / "s.json")
    again = read_fhir(out)
    assert again["patients"]["patient_id"].tolist() == ["1", "2", "3"]
    assert again["patients"]["birth_date"].tolist()[:2] == ["1950-01-01", "1960-05-06"]
    assert again["observations"]["effective"].iloc[0] == "2020-01-01T10:30:00Z"
    assert again["observations"]["value"].isna().tolist() == [False, True, False, False]


@pytest.mark.parametrize("table,column,value,message", [
    ("patients", "gender", "M", "Patient/p1: gender is 'M'"),
    ("patients", "birth_date", "01/02/1950", "Patient/p1: birthDate"),
    ("encounters", "status", "done", "Encounter/e1: status is 'done'"),
    ("observations", "status", "final ", "Observation/o1: status is 'final '"),
    ("conditions", "clinical_status", "cured", "Condition/c1: clinicalStatus is 'cured'"),
    ("conditions", "verification_status", "maybe", "Condition/c1: verificationStatus"),
    ("observations", "patient_id", "nobody", "Observation/o1: subject points to Patient/nobody"),
])
def test_write_rejects_bad_codes_with_resource_and_field(tmp_path, table, column, value, message):
    tables = {
        "patients": pd.DataFrame({"patient_id": ["p1"], "gender": ["female"], "birth_date": ["1950"]}),
        "encounters": pd.DataFrame({"encounter_id": ["e1"], "patient_id": ["p1"], "status": ["finished"],
                                    "class_code": ["AMB"]}),
        "observations": pd.DataFrame({"observation_id": ["o1"], "patient_id": ["p1"],
                                      "status": ["final"], "code": ["x"], "value": [1.0]}),
        "conditions": pd.DataFrame({"condition_id": ["c1"], "patient_id": ["p1"],
                                    "clinical_status": ["active"], "verification_status": ["confirmed"],
                                    "code": ["y"]}),
    }
    write_fhir_bundle(tables, tmp_path / "ok.json")
    tables[table] = tables[table].assign(**{column: [value]})
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_fhir_bundle(tables, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_write_errors_for_structure(tmp_path):
    pats = pd.DataFrame({"patient_id": ["a", "a"]})
    with pytest.raises(DataError, match="Patient/a appears twice"):
        write_fhir_bundle({"patients": pats}, tmp_path / "x.json")
    with pytest.raises(DataError, match="column\\(s\\) \\['age'\\]"):
        write_fhir_bundle({"patients": pd.DataFrame({"patient_id": ["a"], "age": [3]})}, tmp_path / "x.json")
    with pytest.raises(DataError, match="unknown FHIR table"):
        write_fhir_bundle({"visits": pats}, tmp_path / "x.json")
    with pytest.raises(DataError, match="not a FHIR id"):
        write_fhir_bundle({"patients": pd.DataFrame({"patient_id": ["a b"]})}, tmp_path / "x.json")
    with pytest.raises(DataError, match="class_code is required"):
        write_fhir_bundle({"patients": pd.DataFrame({"patient_id": ["a"]}),
                           "encounters": pd.DataFrame({"encounter_id": ["e"], "patient_id": ["a"],
                                                       "status": ["planned"]})}, tmp_path / "x.json")
    with pytest.raises(ConfigError, match="bundle_type"):
        write_fhir_bundle({}, tmp_path / "x.json", bundle_type="batch")


def test_model_validation_error_names_resource(tmp_path):
    from synthdata.io.fhir import validate_bundle

    bundle = build_bundle({"patients": pd.DataFrame({"patient_id": ["p9"]})})
    bundle["entry"][0]["resource"]["birthDate"] = "1990-13-01"
    with pytest.raises(DataError, match="Patient/p9: birthDate"):
        validate_bundle(bundle)


def test_read_errors(tmp_path):
    bad = _bundle()
    bad["entry"][0]["resource"]["gender"] = "F"
    with pytest.raises(DataError, match=r"Patient/11111111-1111-4111-8111-111111111111: gender is 'F'"):
        read_fhir(_write(tmp_path, bad))
    dup = _bundle()
    dup["entry"].append(copy.deepcopy(dup["entry"][3]))
    dup["entry"][-1]["resource"]["status"] = "amended"  # same identity, other content
    with pytest.raises(DataError, match=r"dup.json \(Bundle\) entry 8: Observation/o1 is also in "
                       r".*dup.json \(Bundle\) entry 3 with different content"):
        read_fhir(_write(tmp_path, dup, "dup.json"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_fhir(tmp_path / "broken")
    with pytest.raises(DataError, match="not found"):
        read_fhir(tmp_path / "missing")


def test_read_ndjson_folder(tmp_path):
    lines = [json.dumps(e["resource"]) for e in _bundle()["entry"][3:7]]
    lines.insert(0, json.dumps({"resourceType": "Patient", "id": "p1"}))
    lines.insert(0, json.dumps({"resourceType": "Patient", "id": "p2"}))
    (tmp_path / "data.ndjson").write_text("\n".join(lines) + "\n")
    tables, summary = read_fhir_summary(tmp_path)  # urn:uuid references without their bundle
    assert summary.dangling == {"observations.patient_id": 1, "observations.encounter_id": 1,
                                "conditions.patient_id": 1}
    assert tables["observations"]["encounter_id"].iloc[0] == "33333333-3333-4333-8333-333333333333"
    clean = [json.loads(x) for x in lines]
    for r in clean:
        for key in ("subject", "encounter"):
            if key in r and r[key]["reference"].startswith("urn:"):
                r[key] = {"reference": "Patient/p1"} if key == "subject" else None
        if r.get("encounter") is None:
            r.pop("encounter", None)
    (tmp_path / "data.ndjson").write_text("\n".join(json.dumps(r) for r in clean))
    tables = read_fhir(tmp_path)
    assert len(tables["patients"]) == 2 and len(tables["observations"]) == 3
    assert len(tables["conditions"]) == 1
