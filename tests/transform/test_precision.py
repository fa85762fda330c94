"""A declared ``precision`` fixes output rounding, with or without privacy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthdata.schema.model import Column, ColumnKind
from synthdata.transform.columns import NumericEncoder, NumericMethod


def test_declared_precision_wins_over_the_data():
    col = Column("x", ColumnKind.CONTINUOUS, dtype="float64", precision=1)
    values = pd.Series(np.random.default_rng(0).normal(5, 2, 300).round(4), name="x")
    enc = NumericEncoder(col, NumericMethod.QUANTILE).fit(values, np.random.default_rng(0))
    assert enc.step_ == 0.1  # the data has 4 decimals
    out = enc.inverse(enc.transform(values)).to_numpy()
    assert np.allclose(out, np.round(out, 1), rtol=0, atol=1e-12)
    private = NumericEncoder(col, NumericMethod.QUANTILE).fit_private(
        np.linspace(0, 10, 5), np.linspace(0, 1, 5), 0.0, 10.0, has_missing=False)
    assert private.step_ == 0.1
    undeclared = NumericEncoder(Column("x", ColumnKind.CONTINUOUS), NumericMethod.QUANTILE)
    assert undeclared.fit_private(np.linspace(0, 10, 5), np.linspace(0, 1, 5), 0.0, 10.0).step_ == 0
