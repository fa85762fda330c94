"""pbc tables shipped in data/ (the multi-table demo data)."""

from __future__ import annotations

import pandas as pd
import pytest

from synthdata.relational.schema import MultiTableSchema
from tests.conftest import DATA, ROOT


@pytest.fixture(scope="session")
def pbc_tables() -> dict[str, pd.DataFrame]:
    return {"pbc": pd.read_csv(DATA / "pbc.csv"), "pbcseq": pd.read_csv(DATA / "pbcseq.csv")}


@pytest.fixture(scope="session")
def pbc_schema() -> MultiTableSchema:
    return MultiTableSchema.load(ROOT / "schemas" / "pbc.yaml")
