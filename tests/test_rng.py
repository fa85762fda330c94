"""The sampling primitives of synthdata._rng."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from synthdata._rng import standard_normal_f32


@given(rows=st.integers(1, 7), cols=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_box_muller_normals_have_the_asked_shape_dtype_and_are_finite(rows, cols, seed):
    z = standard_normal_f32(np.random.default_rng(seed), (rows, cols))
    assert z.shape == (rows, cols) and z.dtype == np.float32
    assert np.isfinite(z).all()


def test_box_muller_normals_are_standard_normal_in_distribution_and_tails():
    z = standard_normal_f32(np.random.default_rng(0), (3, 700_001)).astype(float).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    # both halves (cosine and sine) and the odd leftover are normal, and independent
    half = len(z) // 2
    assert stats.kstest(z[:half], "norm").pvalue > 1e-3
    assert stats.kstest(z[half:], "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[:half], z[half:2 * half])[0, 1]) < 0.005
    # tails as a float64 draw gives them (a 24-bit radius would stop at 5.8)
    for t in (3.0, 4.0):
        assert (np.abs(z) > t).mean() == pytest.approx(2 * stats.norm.sf(t), rel=0.25)


def test_box_muller_normals_follow_the_generator():
    a = standard_normal_f32(np.random.default_rng(5), (4, 1000))
    b = standard_normal_f32(np.random.default_rng(5), (4, 1000))
    c = standard_normal_f32(np.random.default_rng(6), (4, 1000))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_box_muller_far_tails_are_continuous_past_the_float32_grid():
    # radii past 4.08 come from redrawn float64 uniforms: beyond 4.5 and 5 the counts are
    # the normal's, and values past the grid's 5.8 limit are possible
    flat = standard_normal_f32(np.random.default_rng(3), (20, 1_000_000)).astype(float).ravel()
    z = np.abs(flat)
    for t in (4.5, 5.0):
        expected = 2 * stats.norm.sf(t) * z.size
        assert abs((z > t).sum() - expected) < 4 * np.sqrt(expected) + 2
    # the pairs' radii past 4.5 (~400): on the 2^-24 grid they would take ~670 values
    # (~120 repeats); continuous, hardly two fall within 1e-6 of each other
    half = len(flat) // 2
    radius = np.hypot(flat[:half], flat[half:])
    far = np.sort(radius[radius > 4.5])
    assert len(far) > 300 and (np.diff(far) < 1e-6).sum() <= 3
