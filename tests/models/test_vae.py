"""VAE generator: shapes, schema constraints, conditions, reproducibility, save/load, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError, NotFittedError
from synthdata.schema import Schema
from tests.models.shared import (
    FLCHAIN,
    assert_respects_schema,
    check_numeric_encodings,
    check_reproducible,
    check_save_load,
    flchain_sample,
    needs_flchain,
)

torch = pytest.importorskip("torch")

FAST = {"epochs": 3, "batch_size": 200}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return flchain_sample()


@pytest.fixture(scope="module")
def fitted(data):
    schema = Schema.infer(data)
    return schema, sd.make_generator("vae", schema, seed=0, **FAST).fit(data)


def test_shapes_dtypes_and_schema_constraints(data, fitted):
    schema, gen = fitted
    synth = gen.sample(3000, seed=1)
    assert_respects_schema(data, synth, 3000)
    assert synth["creatinine"].isna().any()  # nullable column keeps missing cells


def test_conditions_honoured(fitted):
    _, gen = fitted
    out = gen.sample(400, conditions={"death": 1, "sex": "F"}, seed=2)
    assert len(out) == 400
    assert (out["death"] == 1).all() and (out["sex"] == "F").all()
    with pytest.raises(ConfigError, match="only discrete"):
        gen.sample(10, conditions={"age": 60})


def test_too_rare_condition_is_a_clear_error(fitted, monkeypatch):
    import synthdata.models.vae as vae

    _, gen = fitted
    monkeypatch.setattr(vae, "MAX_REJECTION_ROUNDS", 1)
    monkeypatch.setattr(vae, "MAX_REJECTION_BATCH", 4096)
    with pytest.raises(ConfigError, match="too rare.*acceptance rate"):
        gen.sample(100_000, conditions={"death": 1, "mgus": 1, "flc.grp": 10})


def test_reproducible_and_global_rng_untouched(data, fitted):
    schema, gen = fitted
    check_reproducible("vae", FAST, data, schema, gen)


def test_save_load_identical_samples(fitted, tmp_path):
    _, gen = fitted
    check_save_load(gen, tmp_path / "vae.sdg", 1000)


def test_early_stopping_and_progress(data):
    schema = Schema.infer(data)
    calls = []
    gen = sd.make_generator("vae", schema, epochs=200, batch_size=500, early_stopping=True,
                            patience=2, seed=0)
    gen.fit(data, progress=lambda step, done, total: calls.append((step, done, total)))
    assert gen.epochs_run_ < 200
    assert all("validation" in h for h in gen.history_)
    assert calls[-1] == ("vae.fit", 200, 200)
    assert {c[0] for c in calls} >= {"vae.fit"}



def test_both_numeric_encodings(data):
    check_numeric_encodings("vae", FAST, data)


@pytest.mark.parametrize("kind", ["vae", "ctgan", "ddpm"])
def test_wide_all_discrete_table_fits_and_keeps_every_level(kind):
    # no value column at all (the VAE's scale head is then unused) and spans of very
    # different widths (several width groups in the layout)
    rng = np.random.default_rng(3)
    n = 600
    data = pd.DataFrame({"wide": [f"w{k}" for k in rng.integers(0, 70, n)],
                         "mid": [f"m{k}" for k in rng.integers(0, 12, n)],
                         "flag": rng.choice(["yes", "no"], n),
                         "tri": rng.choice(["a", "b", None], n)})
    schema = Schema.infer(data)
    params = {"epochs": 2, "batch_size": 100} if kind != "ddpm" else {"epochs": 2}
    gen = sd.make_generator(kind, schema, seed=0, **params).fit(data)
    assert len(gen.plan_.groups) > 1
    synth = gen.sample(2000, seed=1)
    assert list(synth.columns) == list(data.columns)
    assert set(synth["wide"]) <= set(data["wide"]) and synth["wide"].nunique() > 20
    assert set(synth["flag"].dropna()) <= {"yes", "no"}


def test_not_fitted(data):
    gen = sd.make_generator("vae", Schema.infer(data))
    with pytest.raises(NotFittedError, match="fit"):
        gen.sample(10)


@pytest.mark.parametrize("param,value", [
    ("epochs", 0), ("batch_size", -5), ("lr", 0.0), ("embedding_dim", 2.5),
    ("compress_dims", ()), ("decompress_dims", [64, 0]), ("kl_weight", -1.0),
    ("validation_share", 0.9), ("loss_factor", "x"), ("early_stopping", "yes"), ("patience", 0),
    ("numeric_encoding", "gaussian"),
])
def test_bad_params_name_the_parameter(data, param, value):
    gen = sd.make_generator("vae", Schema.infer(data), **{param: value})
    with pytest.raises(ConfigError, match=param):
        gen.fit(data)


@pytest.mark.slow
@needs_flchain
def test_flchain_detection_auc():
    """300 epochs on the flchain train split (70/30, leak columns dropped)."""
    from synthdata.evaluate._data import prepare
    from synthdata.evaluate.fidelity import detection

    df = pd.read_csv(FLCHAIN).drop(columns=["chapter", "futime"])
    idx = np.random.default_rng(0).permutation(len(df))
    cut = int(0.7 * len(df))
    train, holdout = df.iloc[idx[:cut]], df.iloc[idx[cut:]]
    schema = Schema.infer(df)
    gen = sd.make_generator("vae", schema, epochs=300, seed=0).fit(train)
    synth = gen.sample(len(train), seed=1)
    auc = detection(prepare(train, synth, holdout, schema), np.random.default_rng(0))["auc"]
    assert auc < VAE_AUC_BOUND, auc


VAE_AUC_BOUND = 0.70  # measured 0.614 (seed 0, 300 epochs, quantile defaults of 2026-11-26)
