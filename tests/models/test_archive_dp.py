"""The archive of a DP fit is a release: no exact n, no per-epoch losses on real rows."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.privacy import DPConfig
from synthdata.schema.model import load_yaml
from synthdata.schema.public import declared_schema

ROOT = Path(__file__).resolve().parents[2]
DECLARED = ROOT / "schemas" / "flchain_dp.yaml"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    df = pd.read_csv(ROOT / "data" / "flchain.csv").drop(columns=["chapter", "futime"])
    return df.sample(400, random_state=2).reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(data: pd.DataFrame) -> sd.Schema:
    return declared_schema(load_yaml(DECLARED), list(data.columns), name="flchain")


def _meta(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


@pytest.mark.parametrize("kind,params", [
    ("gmm", {}),
    ("vae", {"epochs": 1, "batch_size": 100, "compress_dims": (16,), "decompress_dims": (16,),
             "embedding_dim": 8})])
def test_dp_archive_holds_no_exact_count_and_no_losses(kind, params, data, schema, tmp_path):
    pytest.importorskip("torch") if kind == "vae" else None
    gen = sd.make_generator(kind, schema, privacy=DPConfig(epsilon=3.0), seed=0, **params)
    gen.fit(data)
    path = gen.save(tmp_path / "m.sdg")
    meta = _meta(path)
    assert "n_train_rows" not in meta
    assert not {"history", "fit_seconds", "bic", "loglik"} & set(meta["extra"])
    assert str(len(data)) not in json.dumps(meta)
    # the count it made is a DP release on its ledger, and what the plan used
    with zipfile.ZipFile(path) as zf:
        ledger = json.loads(zf.read("ledger.json"))
    first = ledger["entries"][0]
    assert first["step"] == "data.count" and first["params"]["released"] == gen.dp_rows_
    loaded = sd.load_generator(path)
    assert loaded.n_train_rows_ is None
    synth = loaded.sample(300, seed=1)
    assert synth["age"].between(50, 90).all() and (synth["kappa"] >= 0).all()
    kappa = synth["kappa"].to_numpy()
    assert np.allclose(kappa, np.round(kappa, 3), rtol=0, atol=1e-9)  # declared precision


def test_non_private_archive_keeps_its_training_record(data, tmp_path):
    gen = sd.make_generator("gmm", sd.Schema.infer(data), seed=0).fit(data)
    meta = _meta(gen.save(tmp_path / "m.sdg"))
    assert meta["n_train_rows"] == len(data)
    assert "loglik" in meta["extra"]


def test_dp_archive_drops_inferred_bounds_and_categories(data, tmp_path):
    schema = sd.Schema.infer(data)  # library use: an inferred schema holds the rows' facts
    assert schema["kappa"].max is not None and schema["flc.grp"].categories
    gen = sd.make_generator("gmm", schema, privacy=DPConfig(epsilon=3.0), seed=0).fit(data)
    path = gen.save(tmp_path / "m.sdg")
    with zipfile.ZipFile(path) as zf:
        archived = sd.Schema.from_dict(json.loads(zf.read("schema.json")))
    for col in archived:
        assert col.min is None and col.max is None and col.categories is None, col.name
    loaded = sd.load_generator(path)
    assert len(loaded.sample(50, seed=0)) == 50
