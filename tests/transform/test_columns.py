"""Per-column encoders."""

import numpy as np
import pytest


def test_fit_modes_1d_finds_separated_modes_and_prunes_the_rest():
    from synthdata.transform.columns import fit_modes_1d

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 1, 3000), rng.normal(10, 2, 1000)])
    weights, means, stds = fit_modes_1d(x, 10)
    assert weights.sum() == pytest.approx(1.0) and (np.diff(means) > 0).all()
    # the two real modes are there, with their weights
    left, right = means < 2.5, means >= 2.5
    assert weights[left].sum() == pytest.approx(0.75, abs=0.02)
    assert np.average(means[left], weights=weights[left]) == pytest.approx(-5, abs=0.2)
    assert np.average(means[right], weights=weights[right]) == pytest.approx(10, abs=0.3)
    again = fit_modes_1d(x, 10)
    assert all((a == b).all() for a, b in zip(again, (weights, means, stds), strict=True))
    # a repeated value (a recording artefact) gets a narrow mode, not a collapse
    spike = np.concatenate([rng.normal(0, 1, 900), np.full(100, 3.0)])
    w, m, s = fit_modes_1d(spike, 5)
    assert np.isfinite(s).all() and s.min() > 0
    assert abs(m[np.argmin(s)] - 3.0) < 1e-6
