"""Diffusion generator: shapes, reproducibility, save/load, conditions, sampler steps, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError, NotFittedError
from synthdata.schema import Schema
from tests.models.shared import (
    FLCHAIN,
    assert_respects_schema,
    check_numeric_encodings,
    check_reproducible,
    check_save_load,
    flchain_sample,
    needs_flchain,
)

torch = pytest.importorskip("torch")

FAST = {"epochs": 3, "batch_size": 256, "hidden_dims": (32, 32), "n_timesteps": 100,
        "sampling_steps": 5}
# Measured (see benchmarks/README.md, "Diffusion"): default parameters, flchain 70/30 split.
DDPM_AUC_BOUND = 0.62  # measured 0.573 (seed 0, defaults of 2026-11-26)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return flchain_sample()


@pytest.fixture(scope="module")
def fitted(data):
    schema = Schema.infer(data)
    return schema, sd.make_generator("ddpm", schema, seed=0, **FAST).fit(data)


def test_shapes_dtypes_and_schema_constraints(data, fitted):
    _, gen = fitted
    synth = gen.sample(2000, seed=1)
    assert_respects_schema(data, synth, 2000)


def test_conditions_by_inpainting(fitted):
    _, gen = fitted
    out = gen.sample(300, conditions={"death": 1, "sex": "F"}, seed=2)
    assert len(out) == 300
    assert (out["death"] == 1).all() and (out["sex"] == "F").all()
    # a rare combination costs nothing extra: no rejection
    rare = gen.sample(200, conditions={"death": 1, "mgus": 1, "flc.grp": 10}, seed=3)
    assert ((rare["mgus"] == 1) & (rare["flc.grp"] == 10)).all()
    with pytest.raises(ConfigError, match="only discrete"):
        gen.sample(10, conditions={"age": 60})
    with pytest.raises(ConfigError, match="not seen in training"):
        gen.sample(10, conditions={"sex": "X"})


def test_reproducible_and_global_rng_untouched(data, fitted):
    schema, gen = fitted
    check_reproducible("ddpm", FAST, data, schema, gen)


def test_save_load_identical_samples(fitted, tmp_path):
    _, gen = fitted
    check_save_load(gen, tmp_path / "ddpm.sdg", 800)


@pytest.mark.parametrize("steps", [1, 4, 100])
def test_sampler_calls_the_denoiser_once_per_step(data, steps):
    from synthdata.models.diffusion import sampling_times

    gen = sd.make_generator("ddpm", Schema.infer(data), seed=0,
                            **{**FAST, "epochs": 1, "sampling_steps": steps}).fit(data)
    calls = []  # the sampler runs the network in pieces: its hidden body once per step
    handle = gen.net_.body.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = gen.sample(100, seed=0)
    finally:
        handle.remove()
    assert len(calls) == steps and len(out) == 100
    times = sampling_times(100, steps)
    assert times[0] == 100 and times[-1] == 0 and len(times) == steps + 1
    assert all(a > b for a, b in zip(times, times[1:], strict=False))


@pytest.mark.parametrize("fixed", [[], [(0, 1), (2, 0)]])
def test_fast_sampler_matches_the_whole_network_run_every_step(fitted, fixed):
    """The running first-layer sum and per-span logits give the dense chain's rows."""
    _, gen = fitted
    fast = gen._denoise_batch(700, torch.Generator().manual_seed(4), fixed, 2)
    dense = gen._denoise_batch(700, torch.Generator().manual_seed(4), fixed, 2, dense=True)
    assert torch.allclose(fast, dense, atol=1e-4)
    soft = gen.plan_.soft_cols
    assert torch.equal(fast[:, soft], dense[:, soft])  # same category in every span
    for span, code in fixed:
        assert (gen.plan_.codes(fast)[:, span] == code).all()


def test_reveal_schedule_follows_the_mask_rate(fitted):
    """Spans still masked after step k: m(t_{k+1}) / m(t_0) of them, drawn up front."""
    from synthdata.models import diffusion

    _, gen = fitted
    n = 20_000
    coins = torch.rand((n, 1), generator=torch.Generator().manual_seed(0))
    times = diffusion.sampling_times(gen.n_timesteps, gen.sampling_steps)
    ab = diffusion.alpha_bar(torch.tensor(times), gen.n_timesteps)
    after = (1 - ab[1:]) / (1 - ab[0])
    after[-1] = 0.0
    reveal_at = diffusion.reveal_steps(coins, ab)
    assert int(reveal_at.min()) >= 0 and int(reveal_at.max()) == len(times) - 2
    for k in range(len(times) - 1):
        share = float((reveal_at > k).float().mean())
        assert abs(share - float(after[k])) < 0.015, (k, share, float(after[k]))


def test_sample_does_not_depend_on_threads(fitted):
    """Chunks get their own generators: two workers give the one-worker rows exactly."""
    from synthdata.models.diffusion import SAMPLE_ROWS

    _, gen = fitted
    n = 2 * SAMPLE_ROWS + 17
    gen.threads = 1
    one = gen.sample(n, seed=5)
    gen.threads = 2
    try:
        two = gen.sample(n, seed=5)
    finally:
        gen.threads = None
    pd.testing.assert_frame_equal(one, two)
    assert not one.iloc[:SAMPLE_ROWS].reset_index(drop=True).equals(
        one.iloc[SAMPLE_ROWS:2 * SAMPLE_ROWS].reset_index(drop=True))


def test_progress_callback(data):
    calls = []
    sd.make_generator("ddpm", Schema.infer(data), seed=0, **FAST).fit(
        data, progress=lambda step, done, total: calls.append((step, done, total)))
    assert [c for c in calls if c[0] == "ddpm.fit"] == [("ddpm.fit", i, 3) for i in (1, 2, 3)]


def test_both_numeric_encodings(data):
    check_numeric_encodings("ddpm", FAST, data)


def test_not_fitted(data):
    with pytest.raises(NotFittedError, match="fit"):
        sd.make_generator("ddpm", Schema.infer(data)).sample(10)


@pytest.mark.parametrize("param,value", [
    ("epochs", 0), ("batch_size", -5), ("lr", 0.0), ("lr", "x"), ("hidden_dims", ()),
    ("hidden_dims", [64, 0]), ("n_timesteps", 2.5), ("sampling_steps", 0),
    ("sampling_steps", 2000), ("seed", -1), ("numeric_encoding", "gaussian"),
])
def test_bad_params_name_the_parameter(data, param, value):
    gen = sd.make_generator("ddpm", Schema.infer(data), **{param: value})
    with pytest.raises(ConfigError, match=param):
        gen.fit(data)


@pytest.mark.parametrize("columns", [["age", "kappa", "lambda"], ["sex", "mgus", "death"]])
def test_only_numbers_or_only_categories(data, columns):
    part = data[columns]
    gen = sd.make_generator("ddpm", Schema.infer(part), seed=0, **FAST).fit(part)
    out = gen.sample(100, seed=0)
    assert list(out.columns) == columns and len(out) == 100 and not out.isna().any().any()


@pytest.mark.slow
@needs_flchain
def test_flchain_detection_auc():
    """Default parameters on the flchain train split (70/30, leak columns dropped)."""
    from synthdata.evaluate._data import prepare
    from synthdata.evaluate.fidelity import detection

    df = pd.read_csv(FLCHAIN).drop(columns=["chapter", "futime"])
    idx = np.random.default_rng(0).permutation(len(df))
    cut = int(0.7 * len(df))
    train, holdout = df.iloc[idx[:cut]], df.iloc[idx[cut:]]
    schema = Schema.infer(df)
    gen = sd.make_generator("ddpm", schema, seed=0).fit(train)
    synth = gen.sample(len(train), seed=1)
    auc = detection(prepare(train, synth, holdout, schema), np.random.default_rng(0))["auc"]
    assert auc < DDPM_AUC_BOUND, auc



def test_auto_batch_gives_small_tables_several_steps_per_epoch(flchain_small):
    gen = sd.make_generator("ddpm", Schema.infer(flchain_small), seed=0)
    assert gen.batch_size == "auto"
    assert gen.batch_rows(2087) == 260 and gen.batch_rows(500) == 128
    assert gen.batch_rows(1_000_000) == 1024
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        sd.make_generator("ddpm", Schema.infer(flchain_small), batch_size="big").fit(flchain_small)
