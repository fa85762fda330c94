"""Small real data for the evaluation tests (read, never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT / "data" / "flchain.csv", Path("/work/shared/datasets/flchain.csv")]


@pytest.fixture(scope="session")
def flchain_full() -> pd.DataFrame:
    path = next((p for p in CANDIDATES if p.exists()), None)
    if path is None:
        pytest.skip("flchain.csv not found in data/ or /work/shared/datasets/")
    return pd.read_csv(path)


def three_way(df: pd.DataFrame, n: int, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """Disjoint train / holdout / independent-sample splits of ``n`` rows each."""
    idx = np.random.default_rng(seed).permutation(len(df))
    return tuple(df.iloc[idx[i * n:(i + 1) * n]].reset_index(drop=True) for i in range(3))


@pytest.fixture(scope="session")
def splits_small(flchain_full: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    return three_way(flchain_full, 400)


@pytest.fixture(scope="session")
def splits_large(flchain_full: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    return three_way(flchain_full, 2500)
