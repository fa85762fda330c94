"""Fair augmentation: the plan's arithmetic and conditional sampling per group."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.augmentation import augment_plan
from synthdata.errors import ConfigError


def test_balanced_plan_fills_every_group_up_to_the_largest():
    assert augment_plan({"A": 80, "B": 20}) == {"A": 0, "B": 60}
    assert augment_plan({"A": 50, "B": 30, "C": 20}) == {"A": 0, "B": 20, "C": 30}


def test_plan_with_a_fixed_number_of_rows_goes_to_the_shortfall():
    plan = augment_plan({"A": 80, "B": 20}, rows=30)
    assert plan == {"A": 0, "B": 30}
    plan = augment_plan({"A": 80, "B": 20}, rows=200)  # more than the shortfall: shared out
    assert sum(plan.values()) == 200 and plan["B"] > plan["A"]


def test_plan_with_explicit_shares():
    plan = augment_plan({"A": 90, "B": 10}, {"B": 0.25})
    assert plan["A"] == 0 and (10 + plan["B"]) / (100 + plan["B"]) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("share, match", [
    ("even", "balanced"), ({"C": 0.5}, "does not have"), ({"B": 1.5}, r"\(0, 1\)"),
    ({"A": 0.5, "B": 0.4}, "add up to 1")])
def test_bad_target_shares_are_config_errors(share, match):
    with pytest.raises(ConfigError, match=match):
        augment_plan({"A": 80, "B": 20}, share)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 500), min_size=2, max_size=6), st.integers(1, 300))
def test_plan_properties(counts, rows):
    c = {f"g{i}": n for i, n in enumerate(counts)}
    plan = augment_plan(c)
    after = [c[g] + plan[g] for g in c]
    assert all(v >= 0 for v in plan.values())
    assert max(after) - min(after) <= 1                 # balanced up to rounding
    assert plan[max(c, key=c.get)] == 0                 # the largest group gets nothing
    fixed = augment_plan(c, rows=rows)
    assert sum(fixed.values()) == rows and all(v >= 0 for v in fixed.values())


def test_augment_samples_the_minority_with_its_own_rows():
    from tests.evaluate.test_groups import _table

    real = _table(600, 0)
    schema = sd.Schema.infer(real).with_overrides({"columns": [{"name": "y", "kind": "categorical"}]})
    gen = sd.make_generator("gmm", schema, seed=0, n_components=3).fit(real)
    extra = sd.augment(gen, real, by="group", seed=1)
    counts = real["group"].value_counts()
    assert len(extra) == counts["A"] - counts["B"]
    assert set(extra["group"]) == {"B"}
    # the minority's own trend survives: B has higher x and a higher outcome rate than A
    assert extra["x"].mean() > real.loc[real["group"] == "A", "x"].mean() + 0.5
    with pytest.raises(ConfigError, match="'race'"):
        sd.augment(gen, real, by="race")
