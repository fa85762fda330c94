"""Relational synthesis with the sequence generator for child tables (generator "ar")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.models.sequence import SequenceGenerator
from synthdata.relational.synthesizer import RelationalSynthesizer

pytest.importorskip("torch")

FAST_ROOT = {"n_components": 3, "max_iter": 20}   # the root table's gmm, kept small


@pytest.fixture(scope="module")
def ar_pbc(pbc_tables, pbc_schema):
    rs = RelationalSynthesizer(pbc_schema, generator="ar", generator_params={"epochs": 8},
                               table_params={"pbc": FAST_ROOT}, seed=0).fit(pbc_tables)
    return rs, rs.sample(400, seed=1)


def test_children_are_histories_of_their_parent(ar_pbc, pbc_schema):
    rs, out = ar_pbc
    assert isinstance(rs.plans_["pbcseq"].generator, SequenceGenerator)
    assert rs.plans_["pbc"].generator.name == "gmm"        # the root table keeps the baseline
    seq, pbc = out["pbcseq"], out["pbc"]
    assert pbc_schema.check(out).is_ok
    assert set(seq["id"]) <= set(pbc["id"])
    assert list(seq.columns) == pbc_schema.tables["pbcseq"].names
    # the pbcseq order rule: days strictly increase within a patient (the key is (id, day))
    # and never pass the end of follow-up
    assert (seq.groupby("id")["day"].diff().dropna() > 0).all()
    assert (seq["day"] <= seq["futime"]).all() and (seq["day"] >= 0).all()
    assert all(v == 0 for v in rs.violations_.values())
    # histories end at follow-up instead of piling rows on it (only a first visit sampled
    # after a short follow-up can still need clipping)
    assert rs.fixes_.get("pbcseq.day clipped to bounds", 0) <= 0.02 * len(seq), rs.fixes_
    # parent-level columns are constant within a patient
    assert (seq.groupby("id")[["futime", "status", "trt", "age", "sex"]].nunique() <= 1).all().all()
    counts = seq.groupby("id").size()
    assert counts.min() >= 1 and counts.max() <= 16


def test_history_lengths_follow_the_parent_count(ar_pbc, pbc_tables, pbc_schema):
    from synthdata.relational.evaluate import children_per_parent_tv

    _, out = ar_pbc
    # each history has the child count drawn with its parent row (the root gmm learns it with
    # the parent's columns); the model's own end-of-history step gave TV 0.086-0.13 on pbc
    assert children_per_parent_tv(pbc_tables, out, pbc_schema)["pbcseq.id -> pbc.id"] <= 0.1


def test_default_picks_the_sequence_generator_for_child_tables_with_a_time_column(pbc_schema):
    rs = RelationalSynthesizer(pbc_schema)
    assert rs.generator == "auto"
    assert (rs.table_generator("pbc"), rs.table_generator("pbcseq")) == ("gmm", "ar")
    # under patient-level DP every table uses gmm (DP-EM), instead of refusing
    private = RelationalSynthesizer(pbc_schema, privacy=sd.DPConfig(epsilon=3.0))
    assert private.table_generator("pbcseq") == "gmm"
    # a child table without a time column keeps gmm
    data = pbc_schema.to_dict()
    for fk in data["foreign_keys"]:
        fk.pop("order_by", None)
    from synthdata.relational.schema import MultiTableSchema

    assert RelationalSynthesizer(MultiTableSchema.from_dict(data)).table_generator("pbcseq") == "gmm"
    # a named generator applies to every table as before
    assert RelationalSynthesizer(pbc_schema, generator="gmm").table_generator("pbcseq") == "gmm"


def test_default_refuses_ambiguous_generator_params(pbc_tables, pbc_schema):
    rs = RelationalSynthesizer(pbc_schema, generator_params={"n_components": 3})
    with pytest.raises(ConfigError, match="generator 'auto' picks the generator per table "
                                          r"\(pbc: gmm, pbcseq: ar\).*name the generator kind"):
        rs.fit(pbc_tables)


def test_within_patient_rules_hold_on_sequence_output():
    from tests.medical.history_data import cohort, schema

    model = RelationalSynthesizer(schema(), generator="ar", generator_params={"epochs": 4},
                                  table_params={"patients": FAST_ROOT}, seed=0,
                                  discover_rules=False).fit(cohort(150))
    out = model.sample()
    assert model.violations_ and all(n == 0 for n in model.violations_.values()), model.violations_
    visits = out["visits"].sort_values(["pid", "day"])
    assert (visits.groupby("pid")["ever_diabetes"].diff().fillna(0) >= 0).all()
    age = out["patients"].set_index("pid")["age"].reindex(visits["pid"]).to_numpy()
    assert np.allclose(visits["age_at_visit"], age + visits["day"] / 365.25, atol=0.011)


def test_sampling_is_reproducible(ar_pbc):
    rs, out = ar_pbc
    again = rs.sample(400, seed=1)
    for name in out:
        pd.testing.assert_frame_equal(out[name], again[name])


def test_patient_level_privacy_is_refused_with_a_reason(pbc_tables, pbc_schema):
    rs = RelationalSynthesizer(pbc_schema, generator="ar",
                               privacy=sd.DPConfig(epsilon=3.0, delta=1e-6))
    with pytest.raises(ConfigError, match="not available with the sequence generator 'ar'.*"
                                          "use generator 'gmm'"):
        rs.fit(pbc_tables)


def test_unknown_ar_parameter_is_a_config_error(pbc_tables, pbc_schema):
    rs = RelationalSynthesizer(pbc_schema, generator="ar", generator_params={"epocs": 3},
                               table_params={"pbc": FAST_ROOT})
    with pytest.raises(ConfigError, match="unknown parameter.*epocs"):
        rs.fit(pbc_tables)


def test_root_params_go_through_table_params(pbc_tables, pbc_schema):
    rs = RelationalSynthesizer(pbc_schema, generator="ar", generator_params={"epochs": 1},
                               table_params={"pbc": {"n_components": 2, "max_iter": 20}}, seed=0)
    rs.fit(pbc_tables)
    assert rs.plans_["pbc"].generator.n_components == 2
    assert rs.plans_["pbcseq"].generator.epochs == 1
    assert np.isfinite(rs.sample(50, seed=0)["pbcseq"]["bili"]).all()


@pytest.mark.slow
def test_pipeline_generator_kind_ar(tmp_path):
    from tests.conftest import DATA, ROOT

    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"""
name: pbc_ar
seed: 0
data:
  tables: {{pbc: {DATA / 'pbc.csv'}, pbcseq: {DATA / 'pbcseq.csv'}}}
  schema: {ROOT / 'schemas' / 'pbc.yaml'}
generator: {{kind: ar, params: {{epochs: 3}}}}
sample: {{rows: 300}}
output: {{dir: {tmp_path / 'out'}}}
gate: none
""")
    result = sd.run_pipeline(cfg)
    assert result.synthetic_path is not None
    seq = pd.read_csv(result.run_dir / "pbcseq.csv")
    assert (seq.groupby("id")["day"].diff().dropna() > 0).all()
    assert (seq["day"] <= seq["futime"]).all()
