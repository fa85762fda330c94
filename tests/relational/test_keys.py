"""Composite keys: a link of two columns, carried by one surrogate key column."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import DataError, SchemaError
from synthdata.relational.evaluate import children_per_parent_tv
from synthdata.relational.schema import MultiTableSchema
from synthdata.relational.synthesizer import RelationalSynthesizer

SITES = {"version": 1, "name": "sites", "tables": {
    "patients": {"primary_key": ["site", "pno"], "columns": [
        {"name": "site", "kind": "categorical", "dtype": "str"},
        {"name": "pno", "kind": "id", "dtype": "int64"},
        {"name": "age", "kind": "continuous", "dtype": "float64"}]},
    "visits": {"primary_key": ["site", "pno", "day"], "columns": [
        {"name": "site", "kind": "categorical", "dtype": "str"},
        {"name": "pno", "kind": "id", "dtype": "int64"},
        {"name": "day", "kind": "integer", "dtype": "int64"},
        {"name": "sbp", "kind": "continuous", "dtype": "float64"}]}},
    "foreign_keys": [{"child": "visits", "column": ["site", "pno"], "parent": "patients",
                      "parent_column": ["site", "pno"], "order_by": "day"}]}
LABEL = "visits.(site, pno) -> patients.(site, pno)"


def sites(n: int = 90, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Patients numbered within their site (pno repeats across sites), 1-4 visits each."""
    rng = np.random.default_rng(seed)
    site = np.repeat(["north", "south", "east"], n // 3)
    pno = np.tile(np.arange(1, n // 3 + 1), 3)
    patients = pd.DataFrame({"site": site, "pno": pno, "age": rng.normal(55, 10, n).round(1)})
    rows = []
    for s, p, age in patients.itertuples(index=False):
        for day in np.sort(rng.choice(900, int(rng.integers(1, 5)), replace=False)):
            rows.append({"site": s, "pno": int(p), "day": int(day),
                         "sbp": round(float(100 + age * 0.5 + rng.normal(0, 8)), 1)})
    return {"patients": patients, "visits": pd.DataFrame(rows)}


def test_schema_links_by_one_surrogate_and_writes_back_the_declared_form():
    ms = MultiTableSchema.from_dict(SITES)
    fk = ms.parent_link("visits")
    assert fk is not None and fk.label == LABEL
    assert ms.primary_keys["patients"] == (fk.parent_column,)
    assert ms.primary_keys["visits"] == (fk.column, "day")
    assert "site" not in ms.tables["visits"] and "site" in ms.tables["patients"]
    declared = ms.to_dict()
    assert declared["foreign_keys"][0]["column"] == ["site", "pno"]
    assert declared["tables"]["patients"]["primary_key"] == ["site", "pno"]
    assert declared["tables"]["visits"]["primary_key"] == ["site", "pno", "day"]
    assert [c["name"] for c in declared["tables"]["visits"]["columns"]] == \
        ["site", "pno", "day", "sbp"]
    assert MultiTableSchema.from_dict(declared).to_dict() == declared


def test_pack_and_unpack_round_trip_the_real_tables():
    ms = MultiTableSchema.from_dict(SITES)
    tables = sites()
    packed = ms.pack_keys(tables)
    key = ms.parent_link("visits").column
    assert list(packed["visits"].columns) == [key, "day", "sbp"]
    # the same (site, pno) always gets the same surrogate, different ones never share it
    joined = packed["visits"].merge(packed["patients"], on=key)
    pd.testing.assert_series_equal(joined["site"], tables["visits"]["site"], check_names=False)
    pd.testing.assert_series_equal(joined["pno"], tables["visits"]["pno"], check_names=False)
    back = ms.unpack_keys(packed)
    for t in tables:
        pd.testing.assert_frame_equal(back[t], tables[t])
    assert ms.pack_keys(packed)["visits"] is packed["visits"]   # packing twice is a no-op
    assert ms.validate(tables).is_ok


def test_children_per_parent_counts_composite_keys():
    ms = MultiTableSchema.from_dict(SITES)
    real = ms.pack_keys(sites(seed=0))
    counts = ms.children_per_parent(real, ms.parent_link("visits"))
    per_pair = sites(seed=0)["visits"].groupby(["site", "pno"], sort=False).size()
    assert sorted(counts.tolist()) == sorted(per_pair.tolist())   # pno alone would merge sites
    tv = children_per_parent_tv(real, ms.pack_keys(sites(seed=1)), ms)
    assert list(tv) == [LABEL] and 0 <= tv[LABEL] < 0.5


def test_synthesizer_fits_and_samples_composite_links():
    ms = MultiTableSchema.from_dict(SITES)
    tables = sites()
    synth = RelationalSynthesizer(ms, generator="gmm", seed=0, generator_params={
        "n_components": 2, "max_iter": 20}).fit(tables).sample(60)
    patients, visits = synth["patients"], synth["visits"]
    assert list(patients.columns) == ["site", "pno", "age"]
    assert list(visits.columns) == ["site", "pno", "day", "sbp"]
    assert len(patients) == 60 and not patients.duplicated(["site", "pno"]).any()
    assert set(patients["site"]) <= {"north", "south", "east"}
    # every visit points to one synthetic patient through both columns
    hit = visits.merge(patients, on=["site", "pno"], how="left", indicator=True)
    assert (hit["_merge"] == "both").all() and len(visits) > 0
    assert not visits.duplicated(["site", "pno", "day"]).any()
    assert ms.validate(synth).is_ok


@pytest.mark.parametrize("change, message", [
    (lambda t: t.__setitem__("visits", t["visits"].drop(columns=["pno"])),
     "key column(s) ['pno'] are missing in table 'visits'"),
    (lambda t: t["patients"].__setitem__("pno", 1),
     "table 'patients': 90 row(s) share a primary key site/pno"),
    (lambda t: t["visits"].loc.__setitem__((0, "site"), "west"),
     f"{LABEL}: 1 orphan row(s) in 'visits' point to no row of 'patients' (first keys: "
     "[('west', 1)])"),
    (lambda t: t["visits"].__setitem__("pno", t["visits"]["pno"].map(lambda v: f"p{v}")),
     f"{LABEL}: type mismatch: visits.pno holds text but patients.pno holds numbers"),
    (lambda t: t["patients"].loc.__setitem__((0, "site"), None),
     "table 'patients': 1 row(s) have a missing primary key site/pno"),
])
def test_every_bad_key_is_a_data_error_naming_table_and_columns(change, message):
    ms = MultiTableSchema.from_dict(SITES)
    tables = {k: v.copy() for k, v in sites().items()}
    change(tables)
    with pytest.raises(DataError) as err:
        ms.validate(tables)
    assert message in str(err.value)
    with pytest.raises(DataError):
        RelationalSynthesizer(ms).fit(tables)


def _schema_with(**fk):
    data = copy.deepcopy(SITES)
    data["foreign_keys"][0].update(fk)
    return data


@pytest.mark.parametrize("data, message", [
    (_schema_with(column=["site", "nr"]), "column ['nr'] not in table 'visits'"),
    (_schema_with(parent_column=["pno", "site"]),
     "patients.['pno', 'site'] must be the primary key of 'patients'"),
    (_schema_with(column=["site", "pno", "day"]), "composite key mismatch"),
    (_schema_with(order_by="pno"), "link column(s) ['pno'] cannot also be order_by"),
    (_schema_with(parent_level="site"), "link column(s) ['site'] cannot also be order_by or "
                                        "parent_level"),
])
def test_bad_composite_links_in_the_schema_are_schema_errors(data, message):
    with pytest.raises(SchemaError) as err:
        MultiTableSchema.from_dict(data)
    assert message in str(err.value)


def test_declared_key_types_must_agree():
    data = copy.deepcopy(SITES)
    data["tables"]["visits"]["columns"][1]["dtype"] = "str"
    with pytest.raises(SchemaError, match=r"type mismatch: visits.pno holds texts \(dtype str\) "
                                          r"but patients.pno holds numbers"):
        MultiTableSchema.from_dict(data)


def test_a_composite_parent_key_needs_an_id_column_to_stay_unique():
    data = copy.deepcopy(SITES)
    for table in ("patients", "visits"):
        data["tables"][table]["columns"][1]["kind"] = "integer"
    with pytest.raises(SchemaError, match=r"declare at least one of patients.\['site', 'pno'\] "
                                          "kind: id"):
        MultiTableSchema.from_dict(data)
