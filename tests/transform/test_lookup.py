"""Guide-table search: the results of np.searchsorted and np.interp, exactly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.transform.lookup import GuideTable, interp, interp_table

finite = st.floats(-50, 50, allow_nan=False, width=64)


def _values(rng: np.random.Generator, table: np.ndarray, n: int) -> np.ndarray:
    """Values spread over and beyond the table, the entries themselves, and extremes."""
    low, high = (table.min(), table.max()) if table.size else (0.0, 1.0)
    pad = (high - low) * 0.2 + 1.0
    spread = rng.uniform(low - pad, high + pad, n)
    special = np.array([np.inf, -np.inf, 1e300, -1e300, 0.0, low, high])
    return np.concatenate([spread, table.ravel(), special, np.nextafter(table.ravel(), np.inf)])


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(finite, min_size=1, max_size=300), side=st.sampled_from(["left", "right"]),
       ties=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_search_equals_searchsorted(entries, side, ties, seed):
    rng = np.random.default_rng(seed)
    table = np.sort(np.concatenate([entries, np.repeat(entries[:1], ties)]))
    values = _values(rng, table, 2000)
    guide = GuideTable(table, side=side)
    np.testing.assert_array_equal(guide.search(values), np.searchsorted(table, values, side=side))
    # float32 values are compared exactly (in float64), as np.searchsorted does
    small = values[np.abs(values) < 1e30].astype(np.float32)
    np.testing.assert_array_equal(guide.search(small), np.searchsorted(table, small, side=side))


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), width=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_search_by_row_equals_searchsorted_per_row(rows, width, seed):
    rng = np.random.default_rng(seed)
    table = np.cumsum(rng.dirichlet(np.full(width, 0.3), size=rows), axis=1)  # CDF rows
    guide = GuideTable(table, side="right")
    u = rng.random(3000)
    row = rng.integers(0, rows, 3000)
    expect = np.array([np.searchsorted(table[r], v, side="right") for r, v in zip(row, u)])
    np.testing.assert_array_equal(guide.search(u, row), expect)


def test_many_close_entries_refine_the_cells_and_nan_falls_back():
    # 900 knots packed near 0 as normal scores are: a few steps per value, not hundreds
    rng = np.random.default_rng(1)
    table = np.sort(rng.standard_normal(900))
    guide = GuideTable(table)
    assert guide.steps <= 6
    values = rng.standard_normal(10_000)
    np.testing.assert_array_equal(guide.search(values), np.searchsorted(table, values))
    with_nan = np.array([0.1, np.nan, -3.0])
    np.testing.assert_array_equal(guide.search(with_nan), np.searchsorted(table, with_nan))
    with pytest.raises(ValueError, match="sorted"):
        GuideTable(table[::-1])


@settings(max_examples=40, deadline=None)
@given(knots=st.lists(finite, min_size=2, max_size=200, unique=True), seed=st.integers(0, 2**16))
def test_interp_equals_np_interp_bit_for_bit(knots, seed):
    rng = np.random.default_rng(seed)
    x = np.sort(np.asarray(knots))
    y = np.cumsum(rng.exponential(size=len(x))) * rng.choice([1e-3, 1.0, 1e4])
    z = _values(rng, x, 3000)
    z = z[np.isfinite(z) & (np.abs(z) < 1e200)]
    guide, slopes = interp_table(x, y)
    np.testing.assert_array_equal(interp(z, x, y, guide, slopes), np.interp(z, x, y))
    z32 = z.astype(np.float32)
    np.testing.assert_array_equal(interp(z32, x, y, guide, slopes), np.interp(z32, x, y))


def test_interp_with_an_infinite_slope_takes_np_interps_fallbacks():
    x = np.array([0.0, 5e-324, 1e-300, 1.0, 2.0])
    y = np.array([0.0, 7.0, 9.0, 10.0, 10.0])
    z = np.concatenate([x, [-1.0, 1e-310, 0.5, 1.5, 3.0]])
    guide, slopes = interp_table(x, y)
    assert np.isinf(slopes).any()
    np.testing.assert_array_equal(interp(z, x, y, guide, slopes), np.interp(z, x, y))
