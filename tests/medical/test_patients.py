import numpy as np
import pandas as pd

from synthdata.medical.patients import patient_schema, patient_table


def test_one_row_per_patient_with_summaries(pbc_tables, pbc_schema):
    table = patient_table(pbc_tables, pbc_schema)
    schema = patient_schema(pbc_schema)
    assert len(table) == 418 and list(table.columns) == schema.names
    assert "id" not in table.columns
    counts = pbc_schema.children_per_parent(pbc_tables, pbc_schema.foreign_keys[0])
    assert (table["pbcseq.n_rows"].to_numpy() == counts.to_numpy()).all()
    visits = pbc_tables["pbcseq"]
    first = pbc_tables["pbc"]["id"].iloc[0]
    mine = visits[visits["id"] == first]
    assert table["pbcseq.mean_bili"].iloc[0] == mine["bili"].mean()
    assert table["pbcseq.mode_stage"].iloc[0] == mine["stage"].mode().iloc[0]
    # patients without visits have no summary, parent-level copies are not summarised
    assert np.isnan(table.loc[table["pbcseq.n_rows"] == 0, "pbcseq.mean_bili"]).all()
    assert not any(c.endswith(("_futime", "_status", "_age")) for c in table.columns)
    assert schema["sex"].pii == pbc_schema.tables["pbc"]["sex"].pii


def test_same_view_for_any_tables(pbc_schema):
    tables = {"pbc": pd.DataFrame({"id": [1, 2], **{c.name: [None, None] for c in
                                                    pbc_schema.tables["pbc"].columns if c.name != "id"}}),
              "pbcseq": pd.DataFrame(columns=pbc_schema.tables["pbcseq"].names)}
    table = patient_table(tables, pbc_schema)
    assert list(table["pbcseq.n_rows"]) == [0, 0]


def test_parent_child_correlations(pbc_tables, pbc_schema):
    from synthdata.medical.patients import parent_child_correlations

    real = patient_table(pbc_tables, pbc_schema)
    same = parent_child_correlations(real, real, pbc_schema)
    assert same["mean_abs_difference"] == 0 and len(same["pairs"]) > 10
    pair = next(p for p in same["pairs"] if p["parent"] == "bili" and p["child"] == "pbcseq.mean_bili")
    assert pair["real"] > 0.7                 # baseline bilirubin vs its mean over the visits
    shuffled = real.copy()
    shuffled["bili"] = shuffled["bili"].sample(frac=1, random_state=0).to_numpy()
    broken = parent_child_correlations(real, shuffled, pbc_schema)
    assert broken["mean_abs_difference"] > 0.01
    assert next(p for p in broken["pairs"] if p["parent"] == "bili"
                and p["child"] == "pbcseq.mean_bili")["synthetic"] < 0.3
