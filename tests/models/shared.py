"""Data and checks shared by the torch generator tests (vae, ctgan, ddpm)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import DATA

FLCHAIN = DATA / "flchain.csv"
needs_flchain = pytest.mark.skipif(not FLCHAIN.is_file(), reason="flchain.csv is not available")


def flchain_sample(n: int = 1500) -> pd.DataFrame:
    """flchain without its leak columns, ``n`` seeded rows."""
    df = pd.read_csv(FLCHAIN).drop(columns=["chapter", "futime"])
    return df.sample(n, random_state=0).reset_index(drop=True)


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
