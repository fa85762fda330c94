"""Reading FHIR: identity, de-duplication, the read summary, more resource types, NDJSON."""

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from synthdata.errors import DataError
from synthdata.io.fhir import (
    TABLES,
    read_fhir,
    read_fhir_summary,
    write_fhir_bundle,
    write_fhir_ndjson,
)
from tests.conftest import SHARED

pytest.importorskip("fhir.resources")

P = {"resourceType": "Patient", "id": "1", "gender": "female", "birthDate": "1960-01-02"}


def _obs(oid: str, value: float, subject: str = "Patient/1", **extra) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": subject}, "valueQuantity": {"value": value, "unit": "/min"},
            **extra}


def _dump(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_same_id_on_two_servers_is_two_resources(tmp_path):
    """A valid collection bundle: Observation/14 from two servers, each with its own Patient/1."""
    a, b = "http://a.example/fhir", "https://b.example/r4"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"{a}/Patient/1", "resource": P},
        {"fullUrl": f"{b}/Patient/1", "resource": {**P, "gender": "male"}},
        {"fullUrl": f"{a}/Observation/14", "resource": _obs("14", 70.0)},
        {"fullUrl": f"{b}/Observation/14", "resource": _obs("14", 90.0)},
    ]}
    tables, summary = read_fhir_summary(_dump(tmp_path / "c.json", bundle))
    obs, pats = tables["observations"], tables["patients"]
    assert obs["observation_id"].tolist() == ["14", "14-2"]
    assert pats["patient_id"].tolist() == ["1", "1-2"]
    # each observation points to the patient of its own server
    assert obs["patient_id"].tolist() == ["1", "1-2"]
    assert pats.set_index("patient_id").loc[obs["patient_id"], "gender"].tolist() == ["female", "male"]
    assert summary.renamed == 2 and not summary.dangling
    assert summary.resources["Observation"] == {"found": 2, "read": 2, "duplicates": 0,
                                                "skipped": 0, "skip_reason": None,
                                                "fields_not_kept": {}}


def test_identical_resource_in_two_files_is_read_once(tmp_path):
    _dump(tmp_path / "patient.json", P)
    _dump(tmp_path / "more" / "patient_copy.json", {**P, "meta": {"lastUpdated": "2024-01-01T00:00:00Z"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b2c7f3e-1111-4111-8111-111111111111", "resource": P,
         "request": {"method": "PUT", "url": "Patient/1"}},
        {"resource": _obs("o1", 60.0)}]}
    _dump(tmp_path / "bundle.json", bundle)
    tables, summary = read_fhir_summary(tmp_path)
    assert tables["patients"]["patient_id"].tolist() == ["1"]
    assert summary.resources["Patient"]["found"] == 3
    assert summary.resources["Patient"]["duplicates"] == 2
    assert summary.n_accounted == summary.n_found == 4


def test_same_identity_different_content_names_both_files(tmp_path):
    _dump(tmp_path / "a.json", P)
    _dump(tmp_path / "b.json", {**P, "gender": "male"})
    with pytest.raises(DataError, match=r"b.json: Patient/1 is also in .*a.json with different content"):
        read_fhir(tmp_path)


def test_unknown_types_are_counted_with_reason(tmp_path):
    _dump(tmp_path / "p.json", P)
    bp = {k: v for k, v in _obs("bp", 0.0).items() if k != "valueQuantity"}
    bp["component"] = [{"code": {"text": "systolic"}, "valueQuantity": {"value": 120}}]
    _dump(tmp_path / "bp.json", {**bp, "performer": [{"reference": "Practitioner/x"}]})
    for i in range(3):
        _dump(tmp_path / f"org{i}.json", {"resourceType": "Organization", "id": f"org{i}"})
    _dump(tmp_path / "resp.json", {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "201 Created"}},
        {"resource": {"resourceType": "OperationOutcome", "issue": []},
         "response": {"status": "400"}}]})
    tables, summary = read_fhir_summary(tmp_path)
    assert len(tables["patients"]) == 1
    assert summary.resources["Organization"]["skipped"] == 3
    assert summary.resources["Organization"]["skip_reason"] == "resource type not read into tables"
    assert summary.resources["OperationOutcome"]["skipped"] == 1
    assert summary.n_entries_without_resource == 1 and summary.n_bundles == 1
    assert summary.n_accounted == summary.n_found == 6
    assert summary.resources["Observation"]["fields_not_kept"] == {"component": 1, "performer": 1}
    text = "\n".join(summary.lines())
    assert "Organization: 0 read, 3 skipped (resource type not read into tables)" in text
    assert "Observation: 1 read, elements not kept: component (1), performer (1)" in text
    d = summary.to_dict()
    assert d["n_resources_found"] == 6 and d["n_skipped"] == 4 and d["n_resources_read"] == 2


def test_dangling_reference_is_counted_and_warned(tmp_path, caplog):
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "http://s/fhir/Patient/1", "resource": P, "search": {"mode": "match"}},
        {"fullUrl": "http://s/fhir/Observation/a", "resource": _obs("a", 1.0)},
        {"fullUrl": "http://s/fhir/Observation/b", "resource": _obs("b", 2.0, "Patient/404")},
        {"fullUrl": "http://s/fhir/Observation/c",
         "resource": _obs("c", 3.0, "Group/g1")}]}  # a Group subject: not a patient, not dangling
    with caplog.at_level(logging.WARNING, logger="synthdata.io.fhir"):
        tables, summary = read_fhir_summary(_dump(tmp_path / "s.json", bundle))
    assert tables["observations"]["patient_id"].tolist() == ["1", "404", None]
    assert summary.dangling == {"observations.patient_id": 1}
    assert summary.dangling_examples["observations.patient_id"] == ["Patient/404"]
    assert "1 dangling reference(s) in observations.patient_id" in caplog.text
    assert any("WARNING 1 dangling" in line for line in summary.lines())


def test_ndjson_bulk_export_folder(tmp_path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(P) + "\n" +
                                             json.dumps({**P, "id": "2", "gender": "male"}) + "\n")
    (tmp_path / "Observation.ndjson").write_text(
        "\n".join(json.dumps(_obs(f"o{i}", 60.0 + i, f"Patient/{1 + i % 2}")) for i in range(5)))
    (tmp_path / "Encounter.ndjson").write_text("\n")  # empty export file
    tables, summary = read_fhir_summary(tmp_path)
    assert len(tables["patients"]) == 2 and len(tables["observations"]) == 5
    assert tables["observations"]["patient_id"].tolist() == ["1", "2", "1", "2", "1"]
    assert summary.n_files == 3 and summary.n_bundles == 0 and not summary.dangling
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.ndjson").write_text(json.dumps(P) + "\n{oops\n")
    with pytest.raises(DataError, match=r"x.ndjson:2: not valid JSON"):
        read_fhir(bad)


def _new_types_bundle() -> dict:
    enc = {"resourceType": "Encounter", "id": "e1", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "subject": {"reference": "Patient/1"}}
    links = {"subject": {"reference": "Patient/1"}, "encounter": {"reference": "Encounter/e1"}}
    plinks = {"patient": {"reference": "Patient/1"}, "encounter": {"reference": "Encounter/e1"}}
    resources = [P, enc,
        {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": "314076", "display": "lisinopril 10 MG"}]},
         "authoredOn": "2020-03-04", "dosageInstruction": [{"text": "1 tablet daily"}], **links},
        {"resourceType": "Procedure", "id": "pr1", "status": "completed",
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]},
         "performedPeriod": {"start": "2020-03-04T10:00:00Z", "end": "2020-03-04T11:00:00Z"}, **links},
        {"resourceType": "Immunization", "id": "i1", "status": "completed",
         "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
         "occurrenceDateTime": "2020-10-01", "primarySource": True, **plinks},
        {"resourceType": "AllergyIntolerance", "id": "a1",
         "clinicalStatus": {"coding": [{"code": "active"}]},
         "verificationStatus": {"coding": [{"code": "confirmed"}]},
         "type": "allergy", "category": ["food"], "criticality": "high",
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91935009",
                              "display": "Allergy to peanuts"}]},
         "reaction": [{"manifestation": [{"coding": [{"system": "http://snomed.info/sct",
                                                       "code": "39579001"}]}],
                       "severity": "severe"}], **plinks},
        {"resourceType": "DiagnosticReport", "id": "d1", "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
         "effectiveDateTime": "2020-03-04", "issued": "2020-03-05T08:00:00Z",
         "conclusion": "normal", **links},
        {"resourceType": "Condition", "id": "c1", "clinicalStatus": {"coding": [{"code": "resolved"}]},
         "code": {"text": "sprain"}, "severity": {"coding": [{"system": "http://snomed.info/sct",
                                                             "code": "255604002", "display": "Mild"}]},
         "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "49076000"}]}],
         "abatementString": "after two weeks", **links},
        _obs("o1", 140.0, interpretation=[{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": "H"}]}],
             referenceRange=[{"low": {"value": 60, "unit": "/min"}, "high": {"value": 100, "unit": "/min"}}],
             note=[{"text": "after exercise"}, {"text": "repeat"}]),
    ]
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}


def test_new_resource_types_and_kept_fields_round_trip(tmp_path):
    tables, summary = read_fhir_summary(_dump(tmp_path / "b.json", _new_types_bundle()))
    assert summary.n_read == 9 and not summary.dangling
    med = tables["medication_requests"].iloc[0]
    assert (med["medication_code"], med["intent"], med["dosage_text"], med["encounter_id"]) == \
        ("314076", "order", "1 tablet daily", "e1")
    proc = tables["procedures"].iloc[0]
    assert proc["performed_end"] == "2020-03-04T11:00:00Z" and proc["patient_id"] == "1"
    imm = tables["immunizations"].iloc[0]
    assert imm["vaccine_code"] == "140" and bool(imm["primary_source"]) and imm["patient_id"] == "1"
    al = tables["allergies"].iloc[0]
    assert (al["category"], al["criticality"], al["reaction"], al["reaction_severity"]) == \
        ("food", "high", "39579001", "severe")
    dr = tables["diagnostic_reports"].iloc[0]
    assert dr["conclusion"] == "normal" and dr["issued"] == "2020-03-05T08:00:00Z"
    cond = tables["conditions"].iloc[0]
    assert (cond["severity"], cond["body_site"], cond["abatement_text"]) == \
        ("255604002", "49076000", "after two weeks")
    obs = tables["observations"].iloc[0]
    assert (obs["interpretation"], obs["reference_low"], obs["reference_high"], obs["reference_unit"],
            obs["note"]) == ("H", 60.0, 100.0, "/min", "after exercise\nrepeat")
    for bundle_type in ("collection", "transaction"):
        out = write_fhir_bundle(tables, tmp_path / f"{bundle_type}.json", bundle_type=bundle_type)
        again = read_fhir(out)
        for name in TABLES:
            pd.testing.assert_frame_equal(tables[name], again[name], check_dtype=True)
    files = write_fhir_ndjson(tables, tmp_path / "bulk")
    assert sorted(files) == sorted(["Patient", "Encounter", "Observation", "Condition",
                                    "MedicationRequest", "Procedure", "Immunization",
                                    "AllergyIntolerance", "DiagnosticReport"])
    again = read_fhir(tmp_path / "bulk")
    for name in TABLES:
        pd.testing.assert_frame_equal(tables[name], again[name], check_dtype=True)


def test_ndjson_writer_validates_before_writing(tmp_path):
    tables = {"patients": pd.DataFrame({"patient_id": ["p1"]}),
              "immunizations": pd.DataFrame({"immunization_id": ["i1"], "patient_id": ["p1"],
                                             "status": ["completed"], "vaccine_code": ["140"]})}
    with pytest.raises(DataError, match="Immunization/i1: occurrence is required"):
        write_fhir_ndjson(tables, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_fhir_read_prints_the_summary(tmp_path):
    from synthdata.cli import main

    _dump(tmp_path / "p.json", P)
    _dump(tmp_path / "o.json", {"resourceType": "Organization", "id": "x"})
    _dump(tmp_path / "obs.json", _obs("a", 1.0, "Patient/nobody"))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["fhir", "read", str(tmp_path)]) == 0
    text = out.getvalue()
    assert "3 resource(s) in 3 file(s) (0 bundle(s)): 2 read, 0 duplicate(s), 1 skipped" in text
    assert "WARNING 1 dangling reference(s) in observations.patient_id" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["fhir", "read", "--json", str(tmp_path)]) == 0
    assert json.loads(out.getvalue())["n_accounted"] == 3
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["fhir", "read", str(tmp_path / "missing")]) == 2
    assert "FHIR path not found" in err.getvalue()


@pytest.mark.skipif(not (SHARED / "fhir_r4_examples").is_dir(), reason="../shared is not available")
def test_shipped_examples_are_fully_accounted_for():
    _, summary = read_fhir_summary(SHARED / "fhir_r4_examples")
    assert summary.n_accounted == summary.n_found and summary.n_found >= 9
    assert summary.n_read >= 9
