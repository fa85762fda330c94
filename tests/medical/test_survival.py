import numpy as np
import pandas as pd
import pytest

from synthdata.errors import DataError
from synthdata.medical.survival import (
    check_survival_times,
    kaplan_meier,
    km_curve_distance,
    km_distance,
)


def _naive_km(t, e, x):
    s = 1.0
    for u in np.unique(t[e]):
        if u > x:
            break
        s *= 1 - ((t == u) & e).sum() / (t >= u).sum()
    return s


def test_textbook_example():
    km = kaplan_meier([6, 6, 6, 7, 10, 13, 16, 22, 23, 6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35],
                      [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    # Gehan 6-MP group (Freireich 1963), as tabulated in Kleinbaum & Klein
    assert km.times.tolist() == [6, 7, 10, 13, 16, 22, 23]
    assert km.survival.round(4).tolist() == [0.8571, 0.8067, 0.7529, 0.6902, 0.6275, 0.5378, 0.4482]
    assert km(0)[0] == 1.0 and km(8)[0] == pytest.approx(0.8067, abs=1e-4)
    assert km.median() == 23


def test_matches_naive_estimator_and_truth():
    rng = np.random.default_rng(0)
    t, c = rng.exponential(10, 3000), rng.exponential(20, 3000)
    time, event = np.minimum(t, c).round(1), t <= c
    km = kaplan_meier(time, event)
    for x in (1, 5, 10, 20):
        assert km(x)[0] == pytest.approx(_naive_km(time, event, x))
    assert km(10)[0] == pytest.approx(np.exp(-1), abs=0.03)


def test_distance():
    a = kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1])
    assert km_distance(a, a) == 0
    b = kaplan_meier([2, 3, 4, 5], [1, 1, 1, 1])
    assert km_distance(a, b) == pytest.approx(0.25)
    real = pd.DataFrame({"t": [1, 2, 3, 4], "s": [2, 2, 0, 2]})
    assert km_curve_distance(real, real, time="t", event="s", event_values=[2]) == 0


def test_errors_and_checks():
    with pytest.raises(DataError, match="negative"):
        kaplan_meier([1, -2], [1, 0])
    with pytest.raises(DataError, match="missing or not numeric"):
        kaplan_meier([1, None], [1, 0])
    check = check_survival_times([0, -1, 5, np.nan], end=[1, 1, 4, 1])
    assert (check.n_negative, check.n_after_end, check.n_missing, check.is_ok) == (1, 1, 1, False)
    assert check_survival_times([0, 3], end=3).is_ok


def test_km_distance_when_one_side_has_no_event():
    from synthdata.medical.survival import kaplan_meier, km_distance

    none = kaplan_meier([1, 2, 3], [0, 0, 0])
    some = kaplan_meier([1, 2, 3], [1, 0, 1])
    assert none(2.5).tolist() == [1.0]
    # no event on one side: S = 1 there; the other curve falls to 0 at its last event
    assert km_distance(none, some) == km_distance(some, none) == 1.0
    assert km_distance(none, none) == 0.0
