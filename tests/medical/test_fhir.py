"""FhirSynthesizer: coherent synthetic FHIR records, written as R4B-valid bundles."""

import json

import pandas as pd
import pytest

from synthdata.errors import ConfigError, DataError, NotFittedError
from synthdata.io.fhir import read_fhir_summary, write_fhir_bundle
from synthdata.medical.fhir import FhirSynthesizer, coherence_checks
from tests.io.fhir_maker import make_bundle

pytest.importorskip("fhir.resources")
GMM = {"n_components": 2, "max_iter": 10}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    path = tmp_path_factory.mktemp("fhir") / "bundle.json"
    path.write_text(json.dumps(make_bundle(40, seed=1)))
    tables, summary = read_fhir_summary(path)
    assert summary.n_accounted == summary.n_found and not summary.dangling
    return tables


@pytest.fixture(scope="module")
def fitted(real):
    return FhirSynthesizer(generator_params=GMM, seed=0).fit(real)


@pytest.mark.slow  # fits nine linked tables: ~15 s on a loaded 2-core box
def test_synthetic_records_are_coherent_and_valid(real, fitted, tmp_path):
    synth = fitted.sample(80, seed=3)
    assert len(synth["patients"]) == 80
    checks = coherence_checks(real, synth)
    for name in ("values_outside_code_range", "single_use_code_repeats",
                 "observations_outside_encounter", "events_after_death", "dangling_references",
                 "invented_codes"):
        assert checks[name] == 0, (name, checks[name])
    assert checks["n_single_use_codes"] >= 1  # "new patient consultation" (and rare types)
    obs = synth["observations"]
    assert obs["value"].notna().any() and obs["value_code"].notna().any()
    # a code's unit and its kind of value come with the code
    bmi = obs[obs["code"] == "39156-5"]
    assert set(bmi["value_unit"].dropna()) == {"kg/m2"} and bmi["value_code"].isna().all()
    smoking = obs[obs["code"] == "72166-2"]
    assert smoking["value"].isna().all()
    assert set(smoking["value_code"].dropna()) <= {"266919005", "8517006", "77176002"}
    # every table is written as a bundle that the R4B models accept, and reads back whole
    out = write_fhir_bundle(synth, tmp_path / "synthetic.json", bundle_type="transaction")
    _, summary = read_fhir_summary(out)
    assert summary.n_read == sum(len(t) for t in synth.values()) and not summary.dangling
    assert set(synth) == {"patients", "encounters", *fitted.events_}
    assert {"observations", "conditions", "medication_requests", "immunizations"} <= set(synth)


def test_checks_catch_incoherent_records(real):
    """The checks are not vacuous: incoherent edits of the real tables are counted."""
    bad = {k: v.copy() for k, v in real.items()}
    obs = bad["observations"]
    i = obs.index[obs["code"] == "39156-5"][0]
    obs.loc[i, "value"] = 221.0
    j = obs.index[obs["effective"].notna()][0]
    obs.loc[j, "effective"] = "1999-01-01T00:00:00Z"
    enc = bad["encounters"]
    first = enc[enc["type_code"] == "185387006"].iloc[0]
    enc.loc[len(enc)] = {**first.to_dict(), "encounter_id": "extra"}
    pats = bad["patients"]
    pats.loc[0, "deceased_date"] = "1990-01-01T00:00:00Z"
    obs.loc[obs.index[1], "code"] = "0000-0"
    checks = coherence_checks(real, bad)
    assert checks["values_outside_code_range"] == 2  # the 221 and the invented code's value
    assert checks["observations_outside_encounter"] == 1
    assert checks["single_use_code_repeats"] == 1
    assert checks["invented_codes"] == 1
    n_events = sum(int((bad[t]["patient_id"] == pats.loc[0, "patient_id"]).sum())
                   for t in bad if t != "patients")
    assert 0 < checks["events_after_death"] <= n_events


@pytest.mark.slow  # fits nine linked tables: ~15 s on a loaded 2-core box
def test_same_seed_same_records(fitted):
    a, b = fitted.sample(20, seed=5), fitted.sample(20, seed=5)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_errors(real):
    with pytest.raises(NotFittedError, match="call fit"):
        FhirSynthesizer().sample(3)
    with pytest.raises(ConfigError, match="without differential privacy"):
        FhirSynthesizer(privacy=object()).fit(real)
    with pytest.raises(DataError, match="needs 'encounters' rows"):
        FhirSynthesizer().fit({"patients": real["patients"],
                               "encounters": real["encounters"].iloc[:0]})
    no_birth = {**real, "patients": real["patients"].assign(birth_date=None)}
    with pytest.raises(DataError, match="patients with a birthDate"):
        FhirSynthesizer().fit(no_birth)


@pytest.mark.slow  # fits nine linked tables: ~15 s on a loaded 2-core box
def test_rows_not_learned_are_counted(real):
    tables = {k: v.copy() for k, v in real.items()}
    tables["observations"].loc[:4, "encounter_id"] = None
    tables["allergies"] = tables["allergies"].iloc[:3]
    syn = FhirSynthesizer(generator_params=GMM, seed=0).fit(tables)
    assert syn.not_learned_["observations rows without a known encounter"] == 5
    assert syn.not_learned_["allergies rows (fewer than 10: table not synthesised)"] == 3
    assert "allergies" not in syn.sample(10, seed=0)
