"""The sequence generator ("ar"): histories keep their within-patient structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError, DataError
from synthdata.models.registry import make_generator
from synthdata.schema import Schema

pytest.importorskip("torch")


def _histories(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows per patient follow an upward trend from a patient-level start; 'long' patients
    have 6 visits, 'short' ones 2; gaps between visits are 30..200 days."""
    rng = np.random.default_rng(seed)
    rows, parents = [], []
    for pid in range(n):
        kind = "long" if pid % 2 else "short"
        level = rng.normal(50, 10)
        parents.append({"pid": pid, "kind": kind, "level": level})
        day = int(rng.integers(0, 20))
        for k in range(6 if kind == "long" else 2):
            rows.append({"pid": pid, "day": day, "value": level + 3.0 * k + rng.normal(0, 0.5),
                         "flag": "on" if k > 0 else "off"})
            day += int(rng.integers(30, 200))
    return pd.DataFrame(rows), pd.DataFrame(parents)


def _rising_share(values: pd.Series, owner: np.ndarray) -> float:
    diff = pd.Series(values.to_numpy(dtype=float)).groupby(owner).diff().dropna()
    return float((diff > 0).mean())


@pytest.fixture(scope="module")
def fitted():
    rows, parents = _histories()
    data = rows.drop(columns="pid")
    ctx = parents.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=25, seed=3)
    gen.fit(data, groups=rows["pid"], context=ctx, context_schema=Schema.infer(ctx))
    return gen, rows, parents


def test_histories_keep_the_trend_better_than_independent_rows(fitted):
    gen, rows, parents = fitted
    synth, owner = gen.sample_histories(parents.drop(columns="pid"), min_length=1, seed=0)
    real_share = _rising_share(rows["value"], rows["pid"].to_numpy())
    ar_share = _rising_share(synth["value"], owner)
    # baseline: a row generator (gmm) whose rows are dealt to the same histories in order
    data = rows.drop(columns="pid")
    flat = make_generator("gmm", Schema.infer(data), n_components=5, seed=0).fit(data)
    base = flat.sample(len(rows), seed=0)
    base_share = _rising_share(base["value"], rows["pid"].to_numpy())
    assert real_share > 0.95
    assert ar_share > 0.8, ar_share
    assert ar_share > base_share + 0.25, (ar_share, base_share)
    # times never go back within a history and start where real histories start
    days = pd.Series(synth["day"].to_numpy()).groupby(owner).diff().dropna()
    assert (days >= 0).all()
    assert synth["day"].dtype == rows["day"].dtype
    # the "flag" turns on after the first visit in the real data: the model learns it
    first = ~pd.Series(owner).duplicated(keep="first").to_numpy()
    assert (synth.loc[first, "flag"] == "off").mean() > 0.8
    assert (synth.loc[~first, "flag"] == "on").mean() > 0.8


def test_parent_row_drives_length_and_level(fitted):
    gen, _, parents = fitted
    ctx = parents.drop(columns="pid")
    synth, owner = gen.sample_histories(ctx, min_length=1, seed=1)
    lengths = np.bincount(owner, minlength=len(ctx))
    long = (ctx["kind"] == "long").to_numpy()
    assert lengths[long].mean() > 4.0 and lengths[~long].mean() < 3.0, (
        lengths[long].mean(), lengths[~long].mean())
    assert (lengths >= 1).all()                                # min_length=1
    first = pd.Series(synth["value"].to_numpy()).groupby(owner).first()
    corr = np.corrcoef(first.to_numpy(), ctx["level"].to_numpy()[first.index])[0, 1]
    assert corr > 0.7, corr                                    # the parent's level carries over


def test_time_limit_ends_histories(fitted):
    gen, _, parents = fitted
    ctx = parents.drop(columns="pid")
    limit = np.full(len(ctx), 150.0)
    synth, owner = gen.sample_histories(ctx, min_length=1, time_limit=limit, seed=2)
    later = pd.Series(owner).duplicated().to_numpy()          # rows after a history's first
    assert (synth.loc[later, "day"] <= 150 + 1).all()
    assert np.bincount(owner, minlength=len(ctx)).max() < 6


def test_given_lengths_are_kept_and_fit_before_the_time_limit(fitted):
    gen, _, parents = fitted
    ctx = parents.drop(columns="pid")
    want = np.resize(np.array([1, 3, 7, 2]), len(ctx))     # 7: longer than any real history
    synth, owner = gen.sample_histories(ctx, lengths=want, seed=4)
    np.testing.assert_array_equal(np.bincount(owner, minlength=len(ctx)), want)
    # a time limit no longer cuts such histories: their clock is compressed to fit before it
    limit = np.full(len(ctx), 150.0)
    synth, owner = gen.sample_histories(ctx, lengths=want, time_limit=limit, seed=4)
    np.testing.assert_array_equal(np.bincount(owner, minlength=len(ctx)), want)
    assert (synth["day"] <= 150 + 1).all()
    assert (pd.Series(synth["day"].to_numpy()).groupby(owner).diff().dropna() >= 0).all()
    with pytest.raises(ConfigError, match="lengths must be 200 positive integers"):
        gen.sample_histories(ctx, lengths=np.zeros(len(ctx), dtype=int))


def test_numbers_follow_the_discrete_value_of_their_row():
    """Long-format labs: the value's scale is set by the test of the same row."""
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(150):
        day = 0
        for _ in range(4):
            test = rng.choice(["hdl", "chol"])
            day += int(rng.integers(1, 90))
            rows.append({"pid": pid, "day": day, "test": test,
                         "value": rng.normal(1.0 if test == "hdl" else 200.0, 0.1)})
    rows = pd.DataFrame(rows)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=200, seed=0)
    gen.fit(data, groups=rows["pid"])
    out = gen.sample(150, seed=0)
    hdl = out.loc[out["test"] == "hdl", "value"]
    chol = out.loc[out["test"] == "chol", "value"]
    # without the row's test in the value head, half of each test's values came from the other
    assert (hdl < 100).mean() > 0.85 and (chol > 100).mean() > 0.85, (hdl.describe(), chol.describe())


def test_training_steps_are_capped_on_large_tables():
    rows, _ = _histories(200, seed=2)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=50, batch_size=16,
                         max_steps=26, seed=0)
    gen.fit(data, groups=rows["pid"])
    assert gen.epochs_run_ == 2 and len(gen.history_) == 2   # 13 batches an epoch
    with pytest.raises(ConfigError, match="max_steps must be a positive integer or null"):
        make_generator("ar", Schema.infer(data), max_steps=0).fit(data, groups=rows["pid"])


def test_fit_times_compresses_only_histories_past_their_limit():
    from synthdata.models.sequence import _fit_times

    times = np.array([10.0, 20.0, 50.0, 5.0, 8.0, 300.0, -40.0, 0.0, 60.0])
    owner = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3])
    limit = np.array([30.0, 100.0, 200.0, 20.0])
    out = _fit_times(times, owner, limit)
    np.testing.assert_allclose(out[:3], [10.0, 15.0, 30.0])         # 10 + (t - 10) * 20 / 40
    np.testing.assert_allclose(out[3:5], [5.0, 8.0])                # within its limit: kept
    assert out[5] == 200.0                                          # starts past it: pinned
    np.testing.assert_allclose(out[6:], [-40.0, -16.0, 20.0])       # negative days too


def test_length_batches_sort_within_pools_only():
    from synthdata.models.sequence import _length_batches

    lengths = np.array([5, 1, 4, 2, 3, 6, 9, 7])
    perm = np.arange(8)
    mixed = _length_batches(perm, lengths, 2, 1, np.arange(4))
    assert [b.tolist() for b in mixed] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    pooled = _length_batches(perm, lengths, 2, 2, np.array([3, 2, 1, 0]))
    # pools of 2 batches (4 histories), each sorted by length, batches visited in the order given
    assert [b.tolist() for b in pooled] == [[7, 6], [4, 5], [2, 0], [1, 3]]


def test_seeded_and_save_load_round_trip(fitted, tmp_path):
    gen, _, parents = fitted
    ctx = parents.drop(columns="pid")
    a, oa = gen.sample_histories(ctx, seed=5)
    b, _ = gen.sample_histories(ctx, seed=5)
    pd.testing.assert_frame_equal(a, b)
    loaded = sd.load_generator(gen.save(tmp_path / "ar.sdg"))
    c, oc = loaded.sample_histories(ctx, seed=5)
    pd.testing.assert_frame_equal(a, c)
    np.testing.assert_array_equal(oa, oc)
    assert loaded.ledger.to_dict() == gen.ledger.to_dict()
    import zipfile

    with zipfile.ZipFile(tmp_path / "ar.sdg") as zf:
        assert "weights.pt" in zf.namelist() and not any(n.endswith(".pkl") for n in zf.namelist())


def test_without_parent_samples_n_histories():
    rows, _ = _histories(60, seed=1)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=3, seed=0)
    gen.fit(data, groups=rows["pid"])
    out = gen.sample(10, seed=0)
    assert list(out.columns) == list(data.columns) and len(out) >= 10
    with pytest.raises(ConfigError, match="conditional sampling"):
        gen.sample(5, conditions={"flag": "on"})


def test_refuses_privacy_with_a_reason():
    rows, _ = _histories(20)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), privacy=sd.DPConfig(epsilon=1.0, delta=1e-6))
    with pytest.raises(ConfigError, match="differential privacy is not available.*use generator 'gmm'"):
        gen.fit(data, groups=rows["pid"])


def test_fit_errors_name_the_problem():
    rows, parents = _histories(20)
    data = rows.drop(columns="pid")
    schema = Schema.infer(data)
    with pytest.raises(DataError, match="contiguous"):
        make_generator("ar", schema, epochs=1).fit(data, groups=rows["pid"].sample(
            frac=1, random_state=0).to_numpy())
    shuffled = rows.sample(frac=1, random_state=0).sort_values("pid", kind="stable")
    with pytest.raises(DataError, match="sorted by 'day'"):
        make_generator("ar", schema, order_column="day", epochs=1).fit(
            shuffled.drop(columns="pid"), groups=shuffled["pid"])
    with pytest.raises(ConfigError, match="order_column 'nope'"):
        make_generator("ar", schema, order_column="nope").fit(data, groups=rows["pid"])
    with pytest.raises(ConfigError, match="hidden_dim must be a positive integer"):
        make_generator("ar", schema, hidden_dim=0).fit(data, groups=rows["pid"])
    with pytest.raises(DataError, match="one parent row per history"):
        ctx = parents.drop(columns="pid").iloc[:5]
        make_generator("ar", schema, epochs=1).fit(data, groups=rows["pid"], context=ctx,
                                                   context_schema=Schema.infer(ctx))


def test_gaps_and_cumulative_sums_are_inverse():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from synthdata.models.sequence import _cumulate, _gaps

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=6), min_size=1, max_size=8))
    def check(groups):
        times = np.concatenate([np.cumsum(g) for g in groups]).astype(float)
        lengths = np.array([len(g) for g in groups])
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        owner = np.repeat(np.arange(len(groups)), lengths)
        gaps = _gaps(times, starts, lengths)
        assert (gaps >= 0).all()
        np.testing.assert_allclose(_cumulate(gaps, owner), times)

    check()


def test_sampling_step_matches_the_trained_gru():
    import torch

    from synthdata.models.sequence import _ARNet

    gen = torch.Generator().manual_seed(0)
    from synthdata.models._torch import build_module

    net = build_module(lambda: _ARNet(10 + 5, 5, 16, 7, 3, 4, 7), gen)
    ctx = torch.randn((4, 5), generator=gen)
    x = torch.randn((4, 3, 10), generator=gen)
    full = net(torch.cat([x, ctx.unsqueeze(1).expand(4, 3, 5)], dim=-1), ctx)
    h, prepared, steps = net.initial(ctx)[0], net.prepare(ctx), []
    for k in range(3):
        out, h = net.step(x[:, k], h, prepared)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, dim=1), full)


def _visits(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """Long-format labs: every visit has an 'a' row then a 'b' row carrying the same value;
    one 'once' test per patient; first times are negative (before an index date)."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(n):
        day, level = int(rng.integers(-400, -10)), rng.normal(50, 10)
        rows.append({"pid": pid, "day": day, "test": "once", "value": float(rng.integers(0, 2))})
        for _ in range(int(rng.integers(2, 5))):
            day += int(rng.integers(20, 90))
            value = float(round(level + rng.normal(0, 3)))
            rows.append({"pid": pid, "day": day, "test": "a", "value": value})
            rows.append({"pid": pid, "day": day, "test": "b", "value": value})
    return pd.DataFrame(rows)


def test_repeat_heads_once_only_codes_and_calibration():
    rows = _visits()
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=30, seed=0)
    gen.fit(data, groups=rows["pid"])
    assert gen.repeat_columns_ == ["value"]                  # not the time column
    once = gen.transformer_.inverse_transform(
        np.eye(gen.plan_.n_features)[gen.once_slots_].astype(float))["test"].tolist()
    assert once == ["once"]
    lengths = rows.groupby("pid").size().to_numpy()
    synth, owner = gen.sample_histories(n=len(lengths), lengths=lengths, seed=0)
    synth["pid"] = owner
    # a 'once' test at most once per history (the real data: exactly once)
    assert synth[synth["test"] == "once"].groupby("pid").size().max() == 1
    # 'b' repeats the 'a' just before it, at the same time
    prev_same = (synth["pid"].diff() == 0) & (synth["test"] == "b") & \
        (synth["test"].shift() == "a")
    pairs = synth[prev_same]
    assert len(pairs) > 0.5 * (synth["test"] == "b").sum()
    exact = (pairs["value"].to_numpy() == synth["value"].shift().to_numpy()[prev_same]).mean()
    assert exact > 0.8, exact
    # calibrated per code: the 0/1 values of 'once' stay 0/1, 'a' keeps its real range
    assert set(synth.loc[synth["test"] == "once", "value"].unique()) <= {0.0, 1.0}
    real_a = rows.loc[rows["test"] == "a", "value"]
    synth_a = synth.loc[synth["test"] == "a", "value"]
    assert abs(synth_a.median() - real_a.median()) < 3.0
    assert synth_a.between(real_a.min(), real_a.max()).mean() > 0.95
    # times never step back, also where the first times are negative
    assert (synth.groupby("pid")["day"].diff().dropna() >= 0).all()
    assert synth.groupby("pid")["day"].first().lt(0).mean() > 0.8


def test_calibrate_false_leaves_the_drawn_numbers():
    rows = _visits(60)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=2, seed=0,
                         calibrate=False)
    gen.fit(data, groups=rows["pid"])
    assert gen.calibration_ is None
    with pytest.raises(ConfigError, match="calibrate must be true or false"):
        make_generator("ar", Schema.infer(data), calibrate="yes").fit(data, groups=rows["pid"])
    with pytest.raises(ConfigError, match="value_temperature must be a positive number"):
        make_generator("ar", Schema.infer(data), value_temperature=0).fit(data, groups=rows["pid"])


def test_code_counts_once_slots_and_repeat_columns_helpers():
    from synthdata.models.sequence import _code_counts, _repeat_columns

    hot = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=float)
    hist = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(np.expm1(_code_counts(hot, hist)),
                               [[1, 0], [2, 0], [2, 1], [1, 0]])
    frame = pd.DataFrame({"t": [0, 0, 1, 1], "x": [1.0, 1.0, 2.0, 2.0], "y": [1.0, 2, 3, 4]})
    schema = Schema.infer(frame)
    # x repeats within history 0 (rows 0-1) and within history 1 (rows 2-3); t is the time
    assert _repeat_columns(frame, schema, "t", np.array([2, 2])) == ["x"]
    # a repeat across two histories does not count
    assert _repeat_columns(frame, schema, "t", np.array([1, 2, 1])) == []


def test_calibration_keeps_the_real_support_of_each_code():
    # 'a' has more distinct values than a stepwise quantile map keeps: without snapping to
    # real scores the 0/1 'flag' rows came out as fractions
    rng = np.random.default_rng(1)
    rows = []
    for pid in range(300):
        day = int(rng.integers(0, 500))
        rows.append({"pid": pid, "day": day, "test": "flag", "value": float(rng.integers(0, 2))})
        rows += [{"pid": pid, "day": day + 30 * k + 30, "test": "a", "value": rng.normal(50, 10)}
                 for k in range(4)]
    rows = pd.DataFrame(rows)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=3, seed=0)
    gen.fit(data, groups=rows["pid"])
    assert not gen.transformer_.encoder("value").stepwise_
    synth, _ = gen.sample_histories(n=300, lengths=np.full(300, 5), seed=0)
    flags = synth.loc[synth["test"] == "flag", "value"].to_numpy()
    assert len(flags) >= 30
    assert set(flags) <= {0.0, 1.0}          # exactly: not 0.99999994 (float32 scores)
    # every calibrated number is a real value up to the quantile map's round-off (float32
    # scores were off by ~1e-7 relative)
    real = np.sort(data["value"].to_numpy())
    got = synth["value"].dropna().to_numpy()
    at = np.clip(np.searchsorted(real, got), 1, len(real) - 1)
    nearest = np.minimum(np.abs(real[at] - got), np.abs(real[at - 1] - got))
    assert (nearest <= 1e-9 * np.maximum(np.abs(got), 1.0)).all()


def test_fit_does_not_depend_on_the_global_torch_seed():
    # the GRU was initialised from torch's global RNG, whose seed differs per process: the
    # same seed gave a different model (nafld labs: detection 0.77-0.85) in every run
    import torch

    rows, _ = _histories(30, seed=2)
    data = rows.drop(columns="pid")
    outs = []
    state = torch.get_rng_state()
    try:
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)
            gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=2, seed=0)
            gen.fit(data, groups=rows["pid"])
            outs.append(gen.sample(15, seed=0))
    finally:
        torch.set_rng_state(state)
    pd.testing.assert_frame_equal(*outs)


def test_value_temperature_narrows_the_calibrated_numbers_not_the_time_gaps():
    rows = _visits(80)
    gen = _fit_ar_by_pid(rows, epochs=2)
    assert gen.code_temperature_ is None
    scale = gen._log_temperature().flatten().exp().tolist()
    assert scale == pytest.approx([1.0 if name == "day" else 0.7 for name in gen.value_names_])
    ones = np.ones(200, dtype=np.int64)   # first rows: their times depend on no earlier draw
    gen.value_temperature = 0.2
    cold, _ = gen.sample_histories(n=200, lengths=ones, seed=0)
    gen.value_temperature = 1.0
    warm, _ = gen.sample_histories(n=200, lengths=ones, seed=0)
    np.testing.assert_array_equal(cold["day"], warm["day"])


def test_latest_values_per_code_are_the_step_input():
    from synthdata.models.sequence import _latest_values

    level = np.array([0, 1, 0, 1, 1])
    values = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    hist = np.array([0, 0, 0, 0, 1])
    out = _latest_values(level, values, hist, 2).reshape(5, 2, 2)
    # code 0: value, seen; code 1: value, seen (history 1 starts afresh)
    np.testing.assert_array_equal(out[:, 0], [[1, 1], [1, 1], [3, 1], [3, 1], [0, 0]])
    np.testing.assert_array_equal(out[:, 1], [[0, 0], [2, 1], [2, 1], [4, 1], [5, 1]])
    gen = make_generator("ar", Schema.infer(_visits(40).drop(columns="pid")),
                         order_column="day", epochs=1, seed=0)
    rows = _visits(40)
    gen.fit(rows.drop(columns="pid"), groups=rows["pid"])
    c0, cw, m0, mw = gen._code_memory_span()
    assert cw == 3 and mw == 3 and gen.net_.vcode is not None   # tests once/a/b; day, value


def test_fit_temperature_picks_one_temperature_per_code(tmp_path):
    from synthdata.models.sequence import TEMPERATURE_GRID

    rows = _visits(120)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=3, seed=0)
    gen.fit(data, groups=rows["pid"])
    temps = gen.code_temperature_
    assert len(temps) == 3 and set(temps) <= set(TEMPERATURE_GRID)   # codes once / a / b
    level = torch_tensor([0, 1, 2])
    scale = gen._log_temperature(level).squeeze(-1).exp()
    day = gen.value_names_.index("day")
    assert scale[:, day].tolist() == [1.0, 1.0, 1.0]                   # the gap: never scaled
    assert scale[:, 1 - day].tolist() == pytest.approx(temps)
    loaded = sd.load_generator(gen.save(tmp_path / "ar.sdg"))
    assert loaded.code_temperature_ == temps
    with pytest.raises(ConfigError, match="fit_temperature must be true or false"):
        make_generator("ar", Schema.infer(data), fit_temperature=1).fit(data, groups=rows["pid"])


def torch_tensor(values):
    import torch

    return torch.tensor(values)


def test_codes_that_never_repeat_the_previous_row_do_not_when_sampled():
    # 'b' copies the 'a' before it; the 0/1 flag 'f' never repeats the previous row: a rare
    # draw of the shared repeat hurdle copied an hdl value into a smoking flag (nafld)
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(120):
        day, level = int(rng.integers(0, 100)), rng.normal(50, 10)
        for _ in range(3):
            value = float(round(level + rng.normal(0, 3)))
            rows += [{"pid": pid, "day": day, "test": "a", "value": value},
                     {"pid": pid, "day": day, "test": "b", "value": value},
                     {"pid": pid, "day": day, "test": "f", "value": float(rng.integers(0, 2))}]
            day += int(rng.integers(20, 90))
    rows = pd.DataFrame(rows)
    data = rows.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=2, seed=0)
    gen.fit(data, groups=rows["pid"])
    names = gen.transformer_.inverse_transform(np.eye(gen.plan_.n_features)[
        [gen.plan_.soft[gen.code_span_].start + c for c in gen.no_repeat_codes_]].astype(float))
    assert sorted(names["test"]) == ["a", "f"]        # 'a' follows an 'f' row: never equal
    synth, _ = gen.sample_histories(n=120, lengths=np.full(120, 9), seed=0)
    flags = synth.loc[synth["test"] == "f", "value"]
    assert len(flags) > 30 and set(flags) <= {0.0, 1.0}


@pytest.mark.parametrize("buckets", ["step", "code"])
def test_time_gaps_are_calibrated_onto_the_training_gaps(tmp_path, monkeypatch, buckets):
    """A barely trained model (2 epochs) draws its gaps off the training ones; the gap map
    (per row-index or code bucket, fitted on the model's own gaps) puts each code's
    later-row gaps back onto the training quantiles, also after a save/load."""
    from synthdata.models import sequence

    monkeypatch.setattr(sequence, "GAP_BUCKETS", buckets)
    rng = np.random.default_rng(1)
    rows = []
    for pid in range(300):   # 'a' rows 5..15 days after the previous row, 'b' rows 400..900
        day = int(rng.integers(0, 30))
        for k in range(6):
            code = "a" if k % 2 else "b"
            day += int(rng.integers(5, 15) if code == "a" else rng.integers(400, 900)) if k else 0
            rows.append({"pid": pid, "day": day, "test": code, "value": float(rng.normal())})
    real = pd.DataFrame(rows)
    gen = _fit_ar_by_pid(real, epochs=2)
    assert gen.gap_calibration_["mode"] == buckets
    assert sum(gen.gap_calibration_["fitted"]) == (4 if buckets == "code" else 5)
    lengths = np.full(1000, 6, dtype=np.int64)

    def by_bucket(df, owner):   # later rows' gaps per code, or per row index 1, 2-3, 4-5
        gap = pd.Series(df["day"].to_numpy(dtype=float)).groupby(owner).diff()
        index = pd.Series(owner).groupby(owner).cumcount().to_numpy()
        key = df["test"].to_numpy() if buckets == "code" else np.floor(np.log2(np.maximum(index, 1)))
        return {k: gap[(key == k) & (index > 0)].dropna() for k in np.unique(key[index > 0])}

    def gaps(g):
        return by_bucket(*g.sample_histories(n=1000, lengths=lengths, seed=5))

    want = by_bucket(real, real["pid"].to_numpy())
    probs = [0.1, 0.3, 0.7, 0.9]   # not the median: a bimodal bucket's lies in its gap
    got = gaps(gen)
    assert got.keys() == want.keys() and len(want) == (2 if buckets == "code" else 3)
    for k in want:
        assert np.quantile(got[k], probs) == pytest.approx(np.quantile(want[k], probs), rel=0.15,
                                                           abs=2)
    loaded = sd.load_generator(gen.save(tmp_path / "ar.sdg"))
    assert loaded.gap_calibration_ == gen.gap_calibration_
    for k, v in gaps(loaded).items():
        pd.testing.assert_series_equal(v, got[k])
    gen.gap_calibration_ = None   # the model's own gaps are off (what the map corrects)
    raw = gaps(gen)
    assert max(abs(np.median(raw[k]) / np.median(want[k]) - 1) for k in want) > 0.2


def test_numbers_are_calibrated_per_occurrence_of_their_code():
    """A flag that is 1 on a patient's first 'x' row (90%) and 0 on the later ones (90%):
    the calibration per code and occurrence restores both shares after a 2-epoch fit; the
    all-rows map alone (an archive without the per-occurrence maps) does not."""
    rng = np.random.default_rng(2)
    rows = []
    for pid in range(300):
        day = int(rng.integers(0, 50))
        for k in range(4):
            flag = float(rng.random() < (0.9 if k == 0 else 0.1))
            day += int(rng.integers(20, 90)) if k else 0
            rows.append({"pid": pid, "day": day, "test": "x", "value": flag})
            rows.append({"pid": pid, "day": day, "test": "y", "value": float(rng.normal())})
    real = pd.DataFrame(rows)
    gen = _fit_ar_by_pid(real, epochs=2)
    assert {"first", "later"} <= gen.calibration_.keys()

    def shares(g):
        out, owner = g.sample_histories(n=600, lengths=np.full(600, 8, dtype=np.int64), seed=4)
        x = out["test"].to_numpy() == "x"
        first = ~pd.DataFrame({"o": owner[x]}).duplicated().to_numpy()
        flag = out.loc[x, "value"].to_numpy()
        assert set(np.unique(flag)) <= {0.0, 1.0}
        return flag[first].mean(), flag[~first].mean()

    first, later = shares(gen)
    assert first == pytest.approx(0.9, abs=0.08) and later == pytest.approx(0.1, abs=0.08)
    gen.calibration_ = {k: v for k, v in gen.calibration_.items() if k not in ("first", "later")}
    first, later = shares(gen)
    assert abs(first - 0.9) > 0.1 or abs(later - 0.1) > 0.1


def _limited(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Histories of 3-5 rows from day 0 whose last row is 40-90% of the way to their own
    limit (200..4000 days, a follow-up end): the gaps scale with the time left. The limit
    is not a column of the rows."""
    rng = np.random.default_rng(seed)
    rows, limits = [], rng.uniform(200, 4000, n).round()
    for pid in range(n):
        k = int(rng.integers(3, 6))
        span = limits[pid] * rng.uniform(0.4, 0.9)
        days = np.r_[0.0, np.cumsum(rng.dirichlet(np.ones(k - 1)) * span)].round()
        rows += [{"pid": pid, "day": d, "value": float(rng.normal(10, 1))} for d in days]
    return pd.DataFrame(rows), limits


def test_histories_end_before_their_time_limit_as_often_as_the_real_ones():
    """Given the number of rows and the time limit, the gaps are drawn for the time left.
    Before, the gaps ignored the limit and histories that ran past it were compressed onto
    it (full nafld labs: 36% of histories ended exactly on futime, real 5.6%). Measured on
    this data: without the budget input 37% end on the limit (10% quantile of the share of
    the time used 0.10), with it 6% (0.33); real 0% (0.45)."""
    real, limits = _limited()
    data = real.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=40, seed=0,
                         hidden_dim=32, lr=0.01, fit_temperature=False)
    gen.fit(data, groups=real["pid"], time_limit=limits)
    lengths = real.groupby("pid").size().to_numpy()
    synth, owner = gen.sample_histories(n=len(limits), lengths=lengths, time_limit=limits, seed=1)
    np.testing.assert_array_equal(np.bincount(owner), lengths)
    last = pd.Series(synth["day"].to_numpy(dtype=float)).groupby(owner).max().to_numpy()
    assert (last <= limits + 1e-9).all()
    at_limit = float(np.mean(last >= limits - 0.5))
    used = np.quantile(last / limits, [0.1, 0.5])     # real: 0.4-0.9 of the time to the limit
    assert at_limit < 0.15, at_limit
    assert used[0] > 0.25 and 0.45 < used[1] < 0.8, used
    # the limit is an input the fit checks
    with pytest.raises(ConfigError, match="time_limit has 3 values for 400 histories"):
        make_generator("ar", Schema.infer(data), order_column="day", epochs=1).fit(
            data, groups=real["pid"], time_limit=np.ones(3))


def test_code_mix_is_calibrated_onto_the_training_rows(tmp_path):
    """A barely trained model (2 epochs) draws a long-format table's codes off their real
    shares; the fitted logit bias per code and the pilot draw at sampling put the mix back
    (TV 0.13 -> 0.006 here; either alone < 0.03), also after a save/load."""
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(300):
        day = 0
        for k in range(int(rng.integers(3, 9))):
            code = rng.choice(["a", "b", "c"], p=[0.7, 0.25, 0.05])
            day += int(rng.integers(1, 60)) if k else 0
            rows.append({"pid": pid, "day": day, "test": code, "value": float(rng.normal())})
    real = pd.DataFrame(rows)
    gen = _fit_ar_by_pid(real, epochs=2)
    lengths = np.resize(real.groupby("pid").size().to_numpy(), 2000)
    share = real["test"].value_counts(normalize=True)

    def tv(g):
        out, _ = g.sample_histories(n=2000, lengths=lengths, seed=1)
        return 0.5 * share.sub(out["test"].value_counts(normalize=True), fill_value=0).abs().sum()

    assert len(gen.code_bias_) == 3
    loaded = sd.load_generator(gen.save(tmp_path / "ar.sdg"))
    assert loaded.code_bias_ == gen.code_bias_
    calibrated = tv(loaded)
    gen.code_bias_ = None          # the pilot draw alone (sampling's round on its own parents)
    pilot_only = tv(gen)
    gen.code_share_ = None         # neither
    assert calibrated < 0.03 and pilot_only < 0.03 and tv(gen) > 0.06, (
        calibrated, pilot_only, tv(gen))


def _archive_without(gen, tmp_path, *keys: str):
    """``gen`` saved, then rewritten without ``meta.extra`` keys (as an older synthdata
    wrote it), checksums updated: the path of the rewritten archive."""
    import hashlib
    import json
    import zipfile

    path = gen.save(tmp_path / "ar.sdg")
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["meta.json"])
    for key in keys:
        del meta["extra"][key]
    members["meta.json"] = json.dumps(meta).encode()
    sums = json.loads(members["checksums.json"])
    sums["meta.json"] = hashlib.sha256(members["meta.json"]).hexdigest()
    members["checksums.json"] = json.dumps(sums).encode()
    old = tmp_path / "old.sdg"
    with zipfile.ZipFile(old, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return old


def test_archives_without_the_budget_input_are_refused(fitted, tmp_path):
    # as written before the time/rows-left inputs
    old = _archive_without(fitted[0], tmp_path, "budget_input")
    with pytest.raises(DataError, match="older synthdata .* refit the model"):
        sd.load_generator(old)


def test_archives_without_the_history_shift_load_and_sample_as_before(tmp_path):
    real = _event_histories(300)
    gen = _fit_ar_by_pid(real, epochs=5)
    assert gen.time_map_ is not None
    old = _archive_without(gen, tmp_path, "time_map", "time_map_check")  # as written before
    loaded = sd.load_generator(old)
    assert loaded.time_map_ is None
    lengths = np.resize(real.groupby("pid").size().to_numpy(), 300)
    got, _ = loaded.sample_histories(n=300, lengths=lengths, seed=5)
    gen.time_map_ = None
    want, _ = gen.sample_histories(n=300, lengths=lengths, seed=5)
    pd.testing.assert_frame_equal(got, want)


def test_rows_are_moved_onto_a_time_anchor_where_the_order_allows():
    from synthdata.models.sequence import _snap_to_anchor

    times = np.array([-50.0, -3.0, 8.0, 40.0, -9.0, 2.0, 30.0, 1.0, 5.0, 0.0, 12.0])
    owner = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    level = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1])
    limit = np.array([100.0, 100.0, 0.5, 100.0])
    # level 0: 7 rows, 4 wanted on day 0, one is (history 3, which gets no other): the three
    # nearest rows whose neighbours enclose 0, one per history (history 0's -3, not its 8)
    out = _snap_to_anchor(times, owner, level, limit, {"value": 0.0, "share": [4 / 7, 0.0]})
    np.testing.assert_array_equal(out, [-50.0, 0.0, 8.0, 40.0, -9.0, 0.0, 30.0, 0.0, 5.0, 0.0,
                                        12.0])
    # never past the history's limit, never out of order (history 2's 5 follows its 1)
    limit[2] = -1.0
    out = _snap_to_anchor(times, owner, level, limit, {"value": 0.0, "share": [1.0, 0.0]})
    assert out[7] == 1.0 and out[8] == 5.0 and out[2] == 8.0 and out[4] == -9.0
    assert (pd.Series(out).groupby(owner).diff().dropna() >= 0).all()


def test_fit_finds_time_anchors_per_code_and_sampling_keeps_them():
    """Every history has its 'dx' row on day 0 (an index date) between earlier and later
    rows: drawn as gaps, the synthetic 'dx' rows land on day 0 by chance only."""
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(200):
        days = [*np.sort(rng.integers(-900, -1, 2)), 0, *np.sort(rng.integers(1, 900, 2))]
        rows += [{"pid": pid, "day": float(d), "event": "dx" if k == 2 else "other"}
                 for k, d in enumerate(days)]
    real = pd.DataFrame(rows)
    gen = _fit_ar_by_pid(real, epochs=20)
    assert gen.time_anchors_ == [{"value": 0.0, "share": [1.0, 0.0]}]   # levels dx, other
    lengths = np.full(400, 5)

    def dx_on_day_0(g):
        out, _ = g.sample_histories(n=400, lengths=lengths, seed=1)
        return float((out.loc[out["event"] == "dx", "day"] == 0).mean())

    assert gen.time_map_ is not None
    gen.time_map_ = None              # the anchors alone (the history shift moves dx rows too)
    anchored = dx_on_day_0(gen)
    gen.time_anchors_ = []
    # measured: 68% with the anchor (the other rows are where the order allows none), 0 without
    assert anchored > 0.5 and dx_on_day_0(gen) < 0.1, (anchored, dx_on_day_0(gen))


def _fit_ar_by_pid(real: pd.DataFrame, epochs: int):
    """An ``ar`` generator fitted on ``real`` grouped by its ``pid`` column (dropped), ordered
    by ``day``, without the temperature fit."""
    data = real.drop(columns="pid")
    gen = make_generator("ar", Schema.infer(data), order_column="day", epochs=epochs, seed=0,
                         fit_temperature=False)
    gen.fit(data, groups=real["pid"])
    return gen


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    return float(np.abs(np.searchsorted(np.sort(a), grid, side="right") / len(a)
                        - np.searchsorted(np.sort(b), grid, side="right") / len(b)).max())


def _event_histories(n: int, seed: int = 0) -> pd.DataFrame:
    """1-4 events per patient in time order, all of one code, whose times depend on the code
    ('early' years before an index date, 'mid' around it, 'late' years after); a third of the
    patients have two events on one day."""
    rng = np.random.default_rng(seed)
    spans = {"early": (-3000, -1000), "mid": (-300, 300), "late": (1000, 3000)}
    rows = []
    for pid in range(n):
        code = str(rng.choice(list(spans)))
        days = np.sort(rng.integers(*spans[code], size=int(rng.integers(1, 5)))).astype(float)
        if len(days) > 1 and pid % 3 == 0:
            days[1] = days[0]
        rows += [{"pid": pid, "day": d, "event": code} for d in days]
    return pd.DataFrame(rows)


def test_histories_are_placed_so_each_codes_times_follow_the_real_ones(tmp_path):
    """A short fit dates the codes wrongly (the gaps are calibrated per row index, not the
    absolute times); the history shift moves each history as a whole so that its codes'
    times follow the training ones (also after a save and load), keeping every gap."""
    real = _event_histories(600)
    gen = _fit_ar_by_pid(real, epochs=10)
    assert gen.time_map_ is not None and len(gen.time_map_["quantiles"]) == 3
    assert len(gen.time_map_["by_length"]) == 3      # per history length 1, 2, 3+ rows
    assert gen.time_map_check_["with"] < gen.time_map_check_["without"]
    lengths = np.resize(real.groupby("pid").size().to_numpy(), 1500)

    def sample(g):
        out, owner = g.sample_histories(n=1500, lengths=lengths, seed=1)
        ks = np.mean([_ks(real.loc[real["event"] == c, "day"].to_numpy(),
                          out.loc[out["event"] == c, "day"].to_numpy())
                      for c in ("early", "mid", "late")])
        return ks, pd.Series(out["day"].to_numpy()).groupby(owner).diff(), out

    shifted, gaps, out = sample(sd.load_generator(gen.save(tmp_path / "ar.sdg")))
    gen.time_map_ = None
    unshifted, gaps_before, before = sample(gen)
    # measured: mean per-code KS 0.15 shifted, 0.36 as drawn (the model also mixes codes in
    # 23% of its histories, real 0%: no shift of a whole history places those)
    assert shifted < 0.22 and unshifted > 0.3, (shifted, unshifted)
    pd.testing.assert_series_equal(gaps, gaps_before)          # every gap kept
    assert (out["event"] == before["event"]).all()


def test_history_shift_moves_whole_histories_by_the_median_move_within_limits():
    from synthdata.models.sequence import _shift_histories

    time_map = {"probs": [0.0, 0.5, 1.0], "quantiles": [[100.0, 100.0, 100.0], None],
                "rounds": 1}
    # 40 histories of 3 rows: code 0 at 0 and 10, code 1 (no map) at 20: each history moves
    # by the median of its code-0 rows' moves to 100 (100 - 0, 100 - 10): 95
    times = np.tile([0.0, 10.0, 20.0], 40)
    owner = np.repeat(np.arange(40), 3)
    level = np.tile([0, 0, 1], 40)
    limit = np.full(40, np.inf)
    limit[0], limit[1] = 50.0, 10.0    # history 0 has 30 to spare, history 1 is already past
    out = _shift_histories(times, owner, level, limit, time_map,
                           np.random.default_rng(0)).reshape(40, 3)
    np.testing.assert_array_equal(out[2:], np.tile([95.0, 105.0, 115.0], (38, 1)))
    # history 0 would pass its limit: it moves by a share of its room (never onto the limit
    # every time: 1.4% of nafld's event histories ended exactly on futime, real 0.2%)
    assert 0.0 <= out[0, 0] < 30.0
    np.testing.assert_allclose(np.diff(out[0]), [10.0, 10.0])
    np.testing.assert_array_equal(out[1], [0.0, 10.0, 20.0])    # no room: not moved later


def test_history_shift_targets_follow_the_history_length():
    """One-row histories take their targets from the real one-row histories' times, longer
    ones from theirs (a cell with too few rows: the code's times over every length)."""
    from synthdata.models.sequence import _shift_histories

    probs = [0.0, 0.5, 1.0]
    time_map = {"probs": probs, "quantiles": [[0.0, 0.0, 0.0]], "rounds": 1,
                "by_length": [[[-500.0, -500.0, -500.0]], [[300.0, 300.0, 300.0]], [None]]}
    owner = np.r_[np.arange(40), np.repeat(np.arange(40, 80), 2), np.repeat(np.arange(80, 85), 3)]
    times = np.zeros(len(owner))
    out = _shift_histories(times, owner, np.zeros(len(owner), dtype=int),
                           np.full(85, np.inf), time_map, np.random.default_rng(0))
    assert (out[:40] == -500.0).all() and (out[40:120] == 300.0).all()
    assert (out[120:] == 0.0).all()     # 15 rows of 3-row histories: no target, not moved


def test_no_time_map_where_rows_of_different_codes_share_times():
    """A visit table (several tests on one day) keeps its times as drawn: a map per code
    would pull one visit's tests apart."""
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(150):
        for k, day in enumerate(np.sort(rng.integers(0, 900, 3))):
            rows += [{"pid": pid, "day": float(day), "test": t, "value": float(rng.normal())}
                     for t in ("hdl", "chol")]
    gen = _fit_ar_by_pid(pd.DataFrame(rows), epochs=1)
    assert gen.time_map_ is None
