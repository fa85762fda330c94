"""Each column transformer round-trips: inverse(transform(x)) gives back x.

Numbers come back within the column's resolution, missing cells stay missing, dtypes are
restored, and an encoder rebuilt from ``get_state()`` encodes exactly like the original.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.errors import DataError
from synthdata.schema.column import Column
from synthdata.transform.columns import (
    Activation,
    CategoryEncoder,
    NumericEncoder,
    NumericMethod,
    RegeneratedEncoder,
)
from synthdata.types import ColumnKind

METHODS = (NumericMethod.MODE, NumericMethod.QUANTILE)
RNG = np.random.default_rng(0)


def _rebuilt(enc, cls, *args):
    return cls(enc.column, *args).set_state(enc.get_state())


def _round_trip(enc, series: pd.Series) -> pd.Series:
    block = enc.transform(series)
    assert block.shape == (len(series), enc.width)
    return enc.inverse(block)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-10_000, 10_000), min_size=2, max_size=60),
       st.sampled_from(METHODS))
def test_continuous_with_two_decimals_round_trips(cents: list[int], method) -> None:
    series = pd.Series(np.array(cents) / 100.0, name="x")
    col = Column("x", ColumnKind.CONTINUOUS, dtype="float64")
    enc = NumericEncoder(col, method, max_modes=5).fit(series, np.random.default_rng(0))
    back = _round_trip(enc, series)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back.to_numpy(), series.to_numpy(), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-500, 500), min_size=2, max_size=60), st.sampled_from(METHODS))
def test_integer_round_trips_with_its_dtype(values: list[int], method) -> None:
    series = pd.Series(values, dtype="int64", name="n")
    col = Column("n", ColumnKind.INTEGER, dtype="int64")
    enc = NumericEncoder(col, method, max_modes=5).fit(series, np.random.default_rng(0))
    back = _round_trip(enc, series)
    assert back.dtype == np.int64
    assert back.tolist() == values


@pytest.mark.parametrize("method", METHODS)
def test_missing_cells_stay_missing(method) -> None:
    series = pd.Series([1.5, np.nan, 2.25, 3.0, np.nan, 10.75, 4.5], name="x")
    col = Column("x", ColumnKind.CONTINUOUS, dtype="float64", nullable=True)
    enc = NumericEncoder(col, method, max_modes=3).fit(series, np.random.default_rng(0))
    block = enc.transform(series)
    assert block[:, -2:].sum(1).tolist() == [1.0] * len(series)  # the missing indicator span
    back = enc.inverse(block)
    assert back.isna().tolist() == series.isna().tolist()
    np.testing.assert_allclose(back.dropna().to_numpy(), series.dropna().to_numpy(), atol=1e-9)


def test_a_missing_value_unseen_at_fit_is_a_data_error() -> None:
    col = Column("x", ColumnKind.CONTINUOUS, dtype="float64")
    enc = NumericEncoder(col, NumericMethod.QUANTILE).fit(pd.Series([1.0, 2.0, 3.0]), RNG)
    with pytest.raises(DataError, match="column 'x' has 1 missing value.*none when the "
                                        "transformer was fitted"):
        enc.transform(pd.Series([1.0, None]))


@pytest.mark.parametrize("method", METHODS)
def test_datetime_text_round_trips_in_its_format(method) -> None:
    days = pd.date_range("2001-01-01", periods=40, freq="7D")
    series = pd.Series(days.strftime("%Y-%m-%d"), dtype=object, name="d")
    col = Column("d", ColumnKind.DATETIME, dtype="object", datetime_format="%Y-%m-%d")
    enc = NumericEncoder(col, method, max_modes=4).fit(series, np.random.default_rng(0))
    back = _round_trip(enc, series)
    assert back.tolist() == series.tolist()


@pytest.mark.parametrize("method", METHODS)
def test_numeric_state_rebuilds_the_same_encoder(method) -> None:
    series = pd.Series(np.round(np.random.default_rng(1).normal(50, 10, 200), 1), name="x")
    col = Column("x", ColumnKind.CONTINUOUS, dtype="float64")
    enc = NumericEncoder(col, method, max_modes=4).fit(series, np.random.default_rng(0))
    again = NumericEncoder(col, method, max_modes=4).set_state(enc.get_state())
    np.testing.assert_array_equal(again.transform(series), enc.transform(series))
    pd.testing.assert_series_equal(again.inverse(enc.transform(series)),
                                   enc.inverse(enc.transform(series)))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "dd", None]), min_size=1, max_size=50),
       st.booleans())
def test_categories_round_trip_with_missing(values: list, ordinal: bool) -> None:
    series = pd.Series(values, dtype=object, name="c")
    col = Column("c", ColumnKind.CATEGORICAL, dtype="object", nullable=True)
    enc = CategoryEncoder(col, ordinal=ordinal).fit(series)
    assert enc.spans()[0].kind == (Activation.LINEAR if ordinal else Activation.SOFTMAX)
    back = _round_trip(enc, series)
    assert back.tolist() == values
    again = CategoryEncoder(col, ordinal=ordinal).set_state(enc.get_state())
    np.testing.assert_array_equal(again.transform(series), enc.transform(series))


def test_boolean_and_integer_categories_keep_their_dtype() -> None:
    flags = pd.Series([True, False, True, True], name="f")
    enc = CategoryEncoder(Column("f", ColumnKind.BOOLEAN, dtype="bool")).fit(flags)
    back = _round_trip(enc, flags)
    assert back.dtype == bool and back.tolist() == flags.tolist()
    codes = pd.Series([3, 1, 2, 3, 1], dtype="int64", name="k")
    enc = CategoryEncoder(Column("k", ColumnKind.CATEGORICAL, dtype="int64")).fit(codes)
    back = _round_trip(enc, codes)
    assert back.dtype == np.int64 and back.tolist() == codes.tolist()


def test_one_hot_rows_are_one_hot() -> None:
    series = pd.Series(["x", "y", "x", "z"], name="c")
    enc = CategoryEncoder(Column("c", ColumnKind.CATEGORICAL, dtype="object")).fit(series)
    block = enc.transform(series)
    assert set(np.unique(block)) == {0.0, 1.0} and block.sum(1).tolist() == [1.0] * 4


def test_declared_categories_refuse_unknown_values() -> None:
    col = Column("c", ColumnKind.CATEGORICAL, dtype="object", categories=("a", "b"))
    with pytest.raises(DataError, match=r"column 'c' holds value\(s\) \['z'\] that are not "
                                        "among the schema's categories"):
        CategoryEncoder(col).fit(pd.Series(["a", "z"]))


@pytest.mark.parametrize(("kind", "dtype", "data", "expected"), [
    (ColumnKind.ID, "int64", [7, 9, 11], [1, 2, 3]),
    (ColumnKind.ID, "object", ["p7", "p9", "p11"], ["SYN00000001", "SYN00000002", "SYN00000003"]),
    (ColumnKind.TEXT, "object", ["free", "text", "here"], [None, None, None]),
])
def test_ids_are_regenerated_and_text_is_left_empty(kind, dtype, data, expected) -> None:
    col = Column("i", kind, dtype=dtype)
    enc = RegeneratedEncoder(col).fit(pd.Series(data, dtype=dtype))
    assert enc.width == 0 and enc.spans() == [] and enc.transform(pd.Series(data)).shape == (3, 0)
    assert _rebuilt(enc, RegeneratedEncoder).generate(3).tolist() == expected
