"""A generated FHIR R4 collection bundle of coherent patient records (no real data).

``make_bundle(n_patients, seed)`` builds Synthea-like records with numpy only: patients (some
deceased, always after their last event), encounters of six types (one, "new patient
consultation", at most once per patient and only as the first visit), vital signs and labs
whose values depend on their LOINC code (BMI 15-50, heart rate 40-140, ...), a coded smoking
status, all dated inside their encounter; conditions, medication requests, procedures,
immunizations, allergies and diagnostic reports linked to an encounter. Used by the FHIR tests
and by ``benchmarks/bench_fhir.py`` (the 800-patient round trip of issue 18).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NEW_PATIENT = "185387006"
# type code: (display, class, repeats, duration range in hours)
ENCOUNTER_TYPES = {
    NEW_PATIENT: ("New patient consultation", "AMB", False, (0.25, 1.0)),
    "185349003": ("Encounter for check up", "AMB", True, (0.25, 1.0)),
    "390906007": ("Follow-up encounter", "AMB", True, (0.25, 0.75)),
    "50849002": ("Emergency room admission", "EMER", True, (1.0, 6.0)),
    "183452005": ("Emergency hospital admission", "IMP", True, (24.0, 120.0)),
    "698314001": ("Consultation for treatment", "AMB", True, (0.5, 1.5)),
}
# LOINC code: (display, unit, mean, sd, low, high, decimals)
VITALS = {
    "39156-5": ("Body mass index", "kg/m2", 27.0, 5.0, 15.0, 50.0, 1),
    "29463-7": ("Body weight", "kg", 78.0, 16.0, 35.0, 180.0, 1),
    "8867-4": ("Heart rate", "/min", 74.0, 11.0, 40.0, 140.0, 0),
    "8480-6": ("Systolic blood pressure", "mm[Hg]", 124.0, 16.0, 85.0, 200.0, 0),
    "2339-0": ("Glucose", "mg/dL", 100.0, 18.0, 55.0, 260.0, 0),
    "4548-4": ("Hemoglobin A1c", "%", 5.8, 0.8, 4.0, 12.0, 1),
}
SMOKING = ("72166-2", "Tobacco smoking status",
           {"266919005": "Never smoker", "8517006": "Ex-smoker", "77176002": "Smoker"})
CONDITIONS = {"38341003": "Hypertension", "44054006": "Diabetes mellitus type 2",
              "195967001": "Asthma", "444814009": "Viral sinusitis"}
MEDS = {"38341003": ("314076", "lisinopril 10 MG Oral Tablet"),
        "44054006": ("860975", "metformin 500 MG Oral Tablet"),
        "195967001": ("895994", "fluticasone 0.11 MG/ACTUAT Inhaler")}


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_bundle(n_patients: int = 800, seed: int = 0) -> dict:
    """A collection Bundle (dict) of ``n_patients`` coherent generated records."""
    rng = np.random.default_rng(seed)
    entries: list[dict] = []
    counter = {"n": 0}

    def add(resource: dict) -> str:
        counter["n"] += 1
        rid = f"{resource['resourceType'][:3].lower()}{counter['n']}"
        resource["id"] = rid  # in place: a patient gets its death date after its records
        entries.append({"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{counter['n']:012d}",
                        "resource": resource})
        return rid

    end_of_data = pd.Timestamp("2024-06-30", tz="UTC")
    repeatable = [c for c, t in ENCOUNTER_TYPES.items() if t[2]]
    weights = np.array([0.45, 0.2, 0.1, 0.05, 0.2])
    for _ in range(n_patients):
        birth = pd.Timestamp("1935-01-01", tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 70 * 365)))
        patient = {"resourceType": "Patient", "gender": str(rng.choice(["female", "male"])),
                   "birthDate": birth.strftime("%Y-%m-%d")}
        pid = add(patient)
        first = max(birth + pd.Timedelta(days=365), pd.Timestamp("2005-01-01", tz="UTC"))
        n_enc = int(rng.poisson(5)) + 1
        span = (end_of_data - first).days
        starts = sorted(first + pd.Timedelta(days=int(d), hours=int(h))
                        for d, h in zip(rng.integers(0, span, n_enc), rng.integers(8, 18, n_enc)))
        level = rng.normal(0, 0.6)  # a patient's own level: values correlate across visits
        chronic = [c for c in ("38341003", "44054006", "195967001") if rng.random() < 0.25]
        last = birth
        for k, start in enumerate(starts):
            code = NEW_PATIENT if k == 0 and rng.random() < 0.7 else \
                str(rng.choice(repeatable, p=weights))
            display, cls, _, (lo, hi) = ENCOUNTER_TYPES[code]
            end = start + pd.Timedelta(hours=float(rng.uniform(lo, hi)))
            eid = add({"resourceType": "Encounter", "status": "finished",
                       "class": {"system": ACT, "code": cls},
                       "type": [{"coding": [{"system": SNOMED, "code": code, "display": display}]}],
                       "subject": {"reference": f"Patient/{pid}"},
                       "period": {"start": _iso(start), "end": _iso(end)}})
            last = max(last, end)
            links = {"subject": {"reference": f"Patient/{pid}"},
                     "encounter": {"reference": f"Encounter/{eid}"}}

            def at(start: pd.Timestamp = start, end: pd.Timestamp = end) -> str:
                return _iso(start + (end - start) * float(rng.random()))
            vitals = list(VITALS) if code in (NEW_PATIENT, "185349003") else \
                ["8867-4", "8480-6"] if cls != "AMB" else ["8867-4"]
            obs_ids = []
            for loinc in vitals:
                name, unit, mean, sd, low, high, dec = VITALS[loinc]
                value = round(float(np.clip(mean + sd * (level + rng.normal(0, 0.8)), low, high)), dec)
                obs = {"resourceType": "Observation", "status": "final",
                       "category": [{"coding": [{
                           "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                           "code": "laboratory" if loinc in ("2339-0", "4548-4") else "vital-signs"}]}],
                       "code": {"coding": [{"system": LOINC, "code": loinc, "display": name}]},
                       **links, "effectiveDateTime": at(),
                       "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}
                if loinc == "2339-0":
                    obs["referenceRange"] = [{"low": {"value": 70, "unit": unit},
                                              "high": {"value": 99, "unit": unit}}]
                    flag = "H" if value > 99 else "L" if value < 70 else "N"
                    obs["interpretation"] = [{"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": flag}]}]
                obs_ids.append(add(obs))
            if code in (NEW_PATIENT, "185349003"):
                smoke = str(rng.choice(list(SMOKING[2]), p=[0.6, 0.25, 0.15]))
                add({"resourceType": "Observation", "status": "final",
                     "code": {"coding": [{"system": LOINC, "code": SMOKING[0], "display": SMOKING[1]}]},
                     **links, "effectiveDateTime": at(),
                     "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": smoke,
                                                          "display": SMOKING[2][smoke]}]}})
                if rng.random() < 0.3:
                    add({"resourceType": "DiagnosticReport", "status": "final",
                         "code": {"coding": [{"system": LOINC, "code": "51990-0",
                                              "display": "Basic metabolic panel"}]},
                         **links, "effectiveDateTime": at(), "issued": _iso(end)})
                if rng.random() < 0.4:
                    add({"resourceType": "Immunization", "status": "completed",
                         "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx",
                                                     "code": "140", "display": "Influenza"}]},
                         "patient": {"reference": f"Patient/{pid}"},
                         "encounter": {"reference": f"Encounter/{eid}"},
                         "occurrenceDateTime": at(), "primarySource": True})
            if k < len(chronic):
                ccode = chronic[k]
                add({"resourceType": "Condition",
                     "clinicalStatus": {"coding": [{"code": "active"}]},
                     "verificationStatus": {"coding": [{"code": "confirmed"}]},
                     "code": {"coding": [{"system": SNOMED, "code": ccode,
                                          "display": CONDITIONS[ccode]}]},
                     **links, "onsetDateTime": _iso(start), "recordedDate": _iso(start)})
                med, mdisp = MEDS[ccode]
                add({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                     "medicationCodeableConcept": {"coding": [{
                         "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": med,
                         "display": mdisp}]}, **links, "authoredOn": at()})
            if cls == "AMB" and rng.random() < 0.08:
                abate = start + pd.Timedelta(days=int(rng.integers(7, 30)))
                add({"resourceType": "Condition",
                     "clinicalStatus": {"coding": [{"code": "resolved"}]},
                     "code": {"coding": [{"system": SNOMED, "code": "444814009",
                                          "display": CONDITIONS["444814009"]}]},
                     **links, "onsetDateTime": _iso(start), "abatementDateTime": _iso(abate)})
                last = max(last, abate)
            if cls != "AMB" and rng.random() < 0.5:
                add({"resourceType": "Procedure", "status": "completed",
                     "code": {"coding": [{"system": SNOMED, "code": "430193006",
                                          "display": "Medication reconciliation"}]},
                     **links, "performedDateTime": at()})
            if k == 0 and rng.random() < 0.1:
                add({"resourceType": "AllergyIntolerance",
                     "clinicalStatus": {"coding": [{"code": "active"}]},
                     "type": "allergy", "category": ["food"], "criticality": "low",
                     "code": {"coding": [{"system": SNOMED, "code": "91935009",
                                          "display": "Allergy to peanuts"}]},
                     "patient": {"reference": f"Patient/{pid}"},
                     "encounter": {"reference": f"Encounter/{eid}"}, "recordedDate": at()})
        if rng.random() < 0.15:
            death = last + pd.Timedelta(days=int(rng.integers(1, 900)))
            if death < end_of_data:
                patient["deceasedDateTime"] = _iso(death)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
