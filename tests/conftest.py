"""Shared fixtures: small real data shipped in the repo, and the shared dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def flchain() -> pd.DataFrame:
    return pd.read_csv(DATA / "flchain.csv")


@pytest.fixture(scope="session")
def flchain_small(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(800, random_state=0).reset_index(drop=True)


def shared_csvs() -> list[Path]:
    """Every CSV in ../shared/datasets (empty when the folder is absent)."""
    if not SHARED.is_dir():
        return []
    return sorted(SHARED.glob("*.csv"))


def shared_manifest() -> dict:
    path = SHARED / "manifest.json"
    if not path.is_file():
        pytest.skip("../shared/datasets is not available")
    return json.loads(path.read_text())


def requires_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is not available")
