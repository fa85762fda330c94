"""The marginal-based generator (``aim``): structure, DP ledger, noise, de-binning, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConditionTooRareError, ConfigError
from synthdata.privacy import DPConfig
from synthdata.schema import Schema


def _table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``colour`` decides ``shade`` (95 %), ``size`` shifts with ``colour``; ``count`` is an
    integer; ``rare`` is almost always 'common'."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    shade = pd.Series(colour).map({"red": "warm", "green": "cool", "blue": "cool"}).to_numpy()
    flip = rng.random(n) < 0.05
    shade = np.where(flip, np.where(shade == "warm", "cool", "warm"), shade)
    shift = pd.Series(colour).map({"red": 0.0, "green": 3.0, "blue": 6.0}).to_numpy()
    size = np.round(10 + shift + rng.gamma(2.0, 1.5, size=n), 3)
    count = rng.poisson(4, size=n)
    rare = np.where(rng.random(n) < 0.002, "odd", "common")
    return pd.DataFrame({"colour": colour, "shade": shade, "size": size, "count": count,
                         "rare": rare})


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table()


def test_non_private_fit_learns_the_dependency_and_round_trips_categories(table):
    gen = sd.make_generator("aim", Schema.infer(table), seed=3).fit(table)
    synth = gen.sample(3000)
    assert list(synth.columns) == list(table.columns)
    assert set(synth["colour"]) <= set(table["colour"]) and set(synth["shade"]) == {"warm", "cool"}
    warm = (synth["shade"] == "warm") == (synth["colour"] == "red")
    assert warm.mean() > 0.9  # independent columns would give about 0.5
    # the colour shifts the size: the bins carry the dependency
    means = synth.groupby("colour")["size"].mean()
    assert means["blue"] - means["red"] > 4.0
    freq = synth["colour"].value_counts(normalize=True)
    assert abs(freq["red"] - 0.5) < 0.05
    assert all(len(clique) <= 3 for clique in gen._get_extra()["cliques"])


def test_mst_mode_builds_a_tree_of_pairs(table):
    gen = sd.make_generator("aim", Schema.infer(table), mode="mst", seed=0).fit(table)
    cliques = gen._get_extra()["cliques"]
    assert len(cliques) == table.shape[1] - 1  # a spanning tree over the five columns
    assert all(len(c) == 2 for c in cliques)
    assert {name for c in cliques for name in c} == set(table.columns)


def test_numbers_are_de_binned_not_bin_midpoints(table):
    schema = Schema.infer(table)
    schema = schema.replace_columns(dataclasses.replace(c, precision=2) if c.name == "size"
                                    else c for c in schema.columns)
    gen = sd.make_generator("aim", schema, n_bins=4, seed=0,
                            privacy=DPConfig(epsilon=3.0)).fit(table)
    synth = gen.sample(2000)
    size = synth["size"]
    assert size.nunique() > 200           # 4 bins: midpoints would give at most 4 values
    assert (size == size.round(2)).all()  # the declared precision rounds the output
    assert (synth["count"] == synth["count"].round()).all()
    # within a bin the values spread like the data (quartiles within 20 % of the real ones)
    real_q = table["size"].quantile([0.25, 0.5, 0.75]).to_numpy()
    synth_q = size.quantile([0.25, 0.5, 0.75]).to_numpy()
    assert np.all(np.abs(synth_q - real_q) / real_q < 0.2)


def test_dp_fit_charges_every_measurement_and_selection_within_budget(table):
    gen = sd.make_generator("aim", Schema.infer(table), seed=0,
                            privacy=DPConfig(epsilon=1.0)).fit(table)
    steps = [e.step for e in gen.ledger_.entries]
    d = table.shape[1]
    assert "data.count" in steps
    assert steps.count("model.aim.one_way") == 1
    assert steps.count("model.aim.within_bins") == 1  # one release for 'size' and 'count'
    selects = [s for s in steps if s.startswith("model.aim.select[")]
    measures = [s for s in steps if s.startswith("model.aim.measure[")]
    assert len(selects) == d - 1 and len(measures) == d - 1
    assert gen.ledger_.not_private_steps() == []
    spent, delta = gen.ledger_.spent()
    assert 0.9 < spent <= 1.0 + 1e-9
    assert delta <= gen.ledger_.delta
    select = next(e for e in gen.ledger_.entries if e.step == selects[0])
    assert select.mechanism == "exponential" and select.rho > 0
    # the entry's ε and the Gumbel scale agree (ε = 2Δ/β) and ρ is ε²/8, OpenDP's own map
    assert select.epsilon == pytest.approx(2.0 / select.params["scale"])
    assert select.rho == pytest.approx(select.epsilon ** 2 / 8)


def test_dp_noise_does_not_come_from_the_seed(table):
    schema = Schema.infer(table)
    fits = [sd.make_generator("aim", schema, seed=7, privacy=DPConfig(epsilon=1.0)).fit(table)
            for _ in range(2)]
    assert not np.array_equal(np.concatenate(fits[0].one_way_), np.concatenate(fits[1].one_way_))
    a, b = (g.sample(500, seed=1) for g in fits)
    assert not a.equals(b)


def test_non_private_fit_is_reproducible(table):
    schema = Schema.infer(table)
    a, b = (sd.make_generator("aim", schema, seed=5).fit(table).sample(300) for _ in range(2))
    pd.testing.assert_frame_equal(a, b)


def test_conditions_fix_a_category_and_refuse_when_too_rare(table):
    gen = sd.make_generator("aim", Schema.infer(table), seed=0).fit(table)
    out = gen.sample(200, conditions={"colour": "blue"})
    assert (out["colour"] == "blue").all()
    assert (out["shade"] == "cool").mean() > 0.85
    # make "odd" (almost) impossible: "rare" drawn from its 1-way marginal alone
    gen.parents_[-1] = -1
    codes = list(gen.transformer_.encoder("rare").categories_)
    gen.one_way_[-1] = np.where(np.array(codes) == "odd", 1e-15, 1.0)
    with pytest.raises(ConditionTooRareError, match=r"aim: conditions \{'rare': .*too rare"):
        gen.sample(50, conditions={"rare": "odd"})


@pytest.mark.parametrize(("params", "message"), [
    ({"mode": "pgm"}, "aim: parameter mode must be 'aim' or 'mst', got 'pgm'"),
    ({"n_bins": 1}, "aim: parameter n_bins must be an integer from 2 to 256, got 1"),
    ({"max_parents": 3}, "aim: parameter max_parents must be an integer from 1 to 2, got 3"),
    ({"n_bins": True}, "aim: parameter n_bins must be an integer"),
])
def test_bad_parameters_are_refused_before_reading_data(table, params, message):
    gen = sd.make_generator("aim", Schema.infer(table), **params)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gen.fit(table)


def test_unknown_parameter_lists_the_allowed_ones(table):
    with pytest.raises(ConfigError, match=r"generator 'aim': unknown parameter\(s\) \['bins'\]"):
        sd.make_generator("aim", Schema.infer(table), bins=4)


def test_dp_archive_round_trip_keeps_the_model(table, tmp_path):
    gen = sd.make_generator("aim", Schema.infer(table), seed=0,
                            privacy=DPConfig(epsilon=2.0)).fit(table)
    path = gen.save(tmp_path / "aim.sdg")
    back = sd.load_generator(path)
    pd.testing.assert_frame_equal(gen.sample(100, seed=4), back.sample(100, seed=4))
    assert back.ledger_.spent() == gen.ledger_.spent()


def test_selection_is_not_won_by_large_cliques_of_noise():
    """Without privacy the score's chance term matters most: ``y`` depends on ``a`` alone,
    and two wide independent numbers ``u``, ``v`` offer a 16×16 parent pair whose L1 error
    is pure sampling noise. ``y`` must get ``a`` as a parent, and the synthetic ``y`` must
    still follow ``a`` (it did not before the chance term: nafld's status got bmi × height)."""
    from synthdata.models.marginal import _chance_l1

    rng = np.random.default_rng(0)
    n = 4000
    a = rng.choice(["p", "q"], n)
    y = np.where(rng.random(n) < np.where(a == "p", 0.8, 0.2), "yes", "no")
    df = pd.DataFrame({"a": a, "u": rng.normal(size=n).round(4),
                       "v": rng.normal(size=n).round(4), "y": y})
    gen = sd.make_generator("aim", Schema.infer(df), seed=0).fit(df)
    cliques = gen._get_extra()["cliques"]
    with_y = [c for c in cliques if "y" in c]
    assert any("a" in c for c in with_y), cliques
    synth = gen.sample(4000, seed=1)
    rate = synth.groupby("a")["y"].apply(lambda s: (s == "yes").mean())
    assert rate["p"] > 0.7 and rate["q"] < 0.3
    # the chance term: more cells or more noise or fewer model draws -> a larger allowance
    q = np.full(4, 0.25)
    assert _chance_l1(np.full(16, 1 / 16), 1000, 0.0, 0) > _chance_l1(q, 1000, 0.0, 0)
    assert _chance_l1(q, 1000, 5.0, 0) > _chance_l1(q, 1000, 0.0, 0)
    assert _chance_l1(q, 1000, 0.0, 2000) > _chance_l1(q, 1000, 0.0, 0)
    assert _chance_l1(q, 1000, 3.0, 0) == pytest.approx(
        np.sqrt(2 / np.pi) * 4 * np.sqrt(9 + 1000 * 0.25 * 0.75))
