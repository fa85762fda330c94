"""Data and checks shared by the torch generator tests (vae, ctgan, ddpm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA, ROOT

FLCHAIN = DATA / "flchain.csv"
needs_flchain = pytest.mark.skipif(not FLCHAIN.is_file(), reason="flchain.csv is not available")


def flchain_sample(n: int = 1500) -> pd.DataFrame:
    """flchain without its leak columns, ``n`` seeded rows."""
    df = pd.read_csv(FLCHAIN).drop(columns=["chapter", "futime"])
    return df.sample(n, random_state=0).reset_index(drop=True)


def public_sex_schema(data: pd.DataFrame):
    """The inferred schema with sex's coding declared public: a DP test must not depend on
    whether DP category discovery (σ ≈ 60 counts at n = 600) happens to keep "F" in a run."""
    import synthdata as sd

    return sd.Schema.infer(data).with_overrides(
        {"columns": [{"name": "sex", "categories": ["F", "M"], "public": True}]})


def assert_respects_schema(data: pd.DataFrame, synth: pd.DataFrame, n: int) -> None:
    """Shape, dtypes, integrality, bounds and known categories of a flchain sample."""
    assert synth.shape == (n, data.shape[1])
    assert list(synth.columns) == list(data.columns)
    assert synth.dtypes.to_dict() == data.dtypes.to_dict()
    assert (synth["age"] == synth["age"].round()).all()
    for col in ("age", "kappa", "lambda"):
        assert synth[col].between(data[col].min(), data[col].max()).all(), col
    assert set(synth["sex"].unique()) <= set(data["sex"].unique())
    assert set(synth["flc.grp"].unique()) <= set(data["flc.grp"].unique())
    assert not synth.drop(columns="creatinine").isna().any().any()


def check_reproducible(kind: str, params: dict, data: pd.DataFrame, schema, gen) -> None:
    """Same seed => same samples; the global torch RNG and thread count are left untouched;
    another seed differs; the unseeded sample stream continues."""
    import torch

    import synthdata as sd

    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    again = sd.make_generator(kind, schema, seed=0, **params).fit(data)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    pd.testing.assert_frame_equal(gen.sample(500, seed=5), again.sample(500, seed=5))
    other = sd.make_generator(kind, schema, seed=1, **params).fit(data)
    assert not gen.sample(500, seed=5).equals(other.sample(500, seed=5))
    a, b = gen.sample(200), gen.sample(200)
    assert not a.equals(b)  # the unseeded stream continues


def check_save_load(gen, path, n: int) -> None:
    """An archived generator samples exactly as the original (with and without conditions)
    and keeps its parameters."""
    import synthdata as sd

    loaded = sd.load_generator(gen.save(path))
    pd.testing.assert_frame_equal(gen.sample(n, seed=7), loaded.sample(n, seed=7))
    pd.testing.assert_frame_equal(gen.sample(300, seed=8, conditions={"death": 1}),
                                  loaded.sample(300, seed=8, conditions={"death": 1}))
    assert loaded.get_params() == {k: list(v) if isinstance(v, tuple) else v
                                   for k, v in gen.get_params().items()}


def check_numeric_encodings(kind: str, params: dict, data: pd.DataFrame) -> None:
    """Both numeric encodings fit and sample within the schema: "quantile" (the default) has
    one value span per number and no mode indicators; "mode" adds a mode indicator span."""
    import synthdata as sd
    from synthdata.schema import Schema
    from synthdata.transform.columns import SpanRole

    schema = Schema.infer(data)
    roles = {}
    for encoding in ("quantile", "mode"):
        gen = sd.make_generator(kind, schema, seed=0, numeric_encoding=encoding, **params).fit(data)
        assert gen.get_params()["numeric_encoding"] == encoding
        roles[encoding] = {s.role for s in gen.transformer_.layout_}
        assert_respects_schema(data, gen.sample(300, seed=1), 300)
    assert SpanRole.MODE not in roles["quantile"]
    assert SpanRole.MODE in roles["mode"]


def write_parts(df: pd.DataFrame, folder: Path, n_files: int) -> Path:
    """``df`` split in row order into ``n_files`` Parquet files in ``folder`` (a dataset for
    the streaming fits)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(df)), n_files)):
        df.iloc[rows].to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder


def use_local_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip without Ray; otherwise make Ray's workers import this checkout's synthdata (not
    another install) and keep Ray from wrapping them in a uv runtime environment."""
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
