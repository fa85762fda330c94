"""DP-SGD for ddpm (the whole denoiser, through the shared engine privacy/dpsgd.py).

Tiny runs on a 600-row flchain sample: the spend stays within the budget, the ledger holds
one DP-SGD entry planned from the noisy count, two fits with one seed differ (noise and
every training draw from OS entropy), nothing of the run reads the rows outside the
accounting (the sampler's value clip is public), the per-row clipping of the denoiser equals
clipping its per-row gradients one by one, and a plan that cannot fit raises before training.
"""

from __future__ import annotations

import json
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import PrivacyBudgetError
from synthdata.privacy import DPConfig, PrivacyLedger
from tests.models.shared import FLCHAIN, flchain_sample, public_sex_schema

torch = pytest.importorskip("torch")

from synthdata.models.diffusion import DP_VALUE_CLIP, _Denoiser  # noqa: E402
from synthdata.privacy.dpsgd import DPSGD  # noqa: E402

N, BATCH, EPOCHS = 600, 100, 2
FAST = {"epochs": EPOCHS, "batch_size": BATCH, "hidden_dims": (32, 32), "n_timesteps": 100,
        "sampling_steps": 5}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    if not FLCHAIN.is_file():
        pytest.skip("flchain.csv is not available")
    return flchain_sample(N)


def fit(data: pd.DataFrame, epsilon: float = 3.0, ledger: PrivacyLedger | None = None,
        **params):
    gen = sd.make_generator("ddpm", public_sex_schema(data), privacy=DPConfig(epsilon=epsilon), seed=0,
                            **{**FAST, **params})
    return gen.fit(data, ledger=ledger)


@pytest.fixture(scope="module")
def fitted(data):
    return fit(data)


def test_spent_within_budget_and_one_dpsgd_entry(fitted):
    eps, delta = fitted.ledger.total()
    assert eps <= 3.0 and delta <= fitted.ledger.delta
    assert eps > 2.5  # the budget is used, not wasted
    first = fitted.ledger.entries[0]
    assert first.step == "data.count"
    n_plan = fitted.dp_rows_
    assert n_plan is not None and n_plan == first.params["released"]
    sgd = [e for e in fitted.ledger.entries if e.mechanism == "dpsgd"]
    assert [e.step for e in sgd] == ["model.ddpm.dp_sgd"]
    # q and steps come from the noisy count, never the true N
    assert sgd[0].sample_rate == pytest.approx(BATCH / n_plan)
    assert sgd[0].steps == EPOCHS * math.ceil(n_plan / BATCH) == fitted.dp_steps_
    assert sgd[0].params["noise_multiplier"] == fitted.dp_noise_multiplier_ > 0
    assert fitted.ledger.dpsgd_epsilon() <= fitted.dp_plan_.training_epsilon
    assert not fitted.ledger.not_private_steps()


def test_auto_batch_is_planned_from_the_noisy_count(data):
    gen = fit(data, epochs=1, batch_size="auto")
    n_plan = gen.dp_rows_
    expected = min(int(np.clip(n_plan // 8, 128, 1024)), n_plan)
    assert gen.dp_sample_rate_ == pytest.approx(expected / n_plan)


def test_sampler_clip_is_public_and_archive_holds_no_training_record(fitted, data, tmp_path):
    assert fitted.clip_ == DP_VALUE_CLIP  # not the largest training value
    path = fitted.save(tmp_path / "ddpm.sdg")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
    assert "n_train_rows" not in meta
    assert not {"history", "fit_seconds"} & set(meta["extra"])
    assert meta["extra"]["clip"] == DP_VALUE_CLIP
    loaded = sd.load_generator(path)
    pd.testing.assert_frame_equal(loaded.sample(100, seed=4), fitted.sample(100, seed=4))


def test_sampling_and_conditions_work(fitted, data):
    synth = fitted.sample(300, seed=1)
    assert list(synth.columns) == list(data.columns) and len(synth) == 300
    assert set(synth["sex"].dropna()) <= {"F", "M"}
    assert (fitted.sample(50, conditions={"sex": "F"}, seed=2)["sex"] == "F").all()


def test_same_seed_dp_fits_differ_and_global_rng_untouched(fitted, data):
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    again = fit(data)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    ours, theirs = again.net_.state_dict(), fitted.net_.state_dict()
    assert any(not torch.equal(ours[k], theirs[k]) for k in ours)
    assert not again.sample(200, seed=3).equals(fitted.sample(200, seed=3))


def test_plan_that_cannot_fit_raises_before_training(data, monkeypatch):
    from synthdata.privacy import accounting

    monkeypatch.setattr(DPSGD, "poisson_sample", lambda self: pytest.fail("a step ran"))
    monkeypatch.setattr(accounting, "calibrate_dpsgd_noise", lambda *a, **k: 0.3)
    ledger = PrivacyLedger.from_config(DPConfig(epsilon=1.0), n_rows=len(data))
    with pytest.raises(PrivacyBudgetError, match="does not fit"):
        fit(data, epsilon=1.0, ledger=ledger)
    assert not [e for e in ledger.entries if e.mechanism == "dpsgd"]


def _owner(max_grad_norm: float = 1.0) -> SimpleNamespace:
    cfg = DPConfig(epsilon=3.0, max_grad_norm=max_grad_norm)
    return SimpleNamespace(name="t", privacy=cfg,
                           ledger_=PrivacyLedger.from_config(cfg, n_rows=1000))


def _loss(net: _Denoiser, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (net(x, net.embed_time(t, 100)) - y).square().sum()


@pytest.mark.parametrize("rows", [1, 12])
def test_denoiser_clipping_equals_clipping_each_row(rows):
    """The engine's clipped sum over the denoiser (time MLP, input layer, in-place ReLU body)
    equals clipping each row's own gradient and summing -- also for a one-row batch, which
    must not take the sampler's folded-bias shortcut past the input layer."""
    gen = torch.Generator().manual_seed(0)  # test-only weights and inputs
    net = _Denoiser(5, 2, (16, 16))
    net.train()
    x = torch.randn((rows, 7), generator=gen)
    x[: rows // 3] *= 40  # some rows clipped, some not
    t = torch.randint(1, 101, (rows,), generator=gen)
    y = torch.randn((rows, 5), generator=gen)
    dp = DPSGD(_owner(20.0), net, step="t.dp_sgd", expected_batch_size=rows, n_rows=1000,
               steps=10, epsilon=2.0)
    _loss(net, x, t, y).backward()
    ours = dp.clipped_sum()
    dp.close()
    params = list(net.parameters())
    expected = [torch.zeros_like(p) for p in params]
    factors = []
    for i in range(rows):
        grads = torch.autograd.grad(_loss(net, x[i:i + 1], t[i:i + 1], y[i:i + 1]), params)
        norm = torch.cat([g.reshape(-1) for g in grads]).norm()
        factors.append(min(1.0, 20.0 / (float(norm) + 1e-6)))
        for acc, g in zip(expected, grads, strict=True):
            acc += factors[-1] * g
    if rows > 1:
        assert min(factors) < 1 and max(factors) == 1
    for p, want in zip(params, expected, strict=True):
        torch.testing.assert_close(ours[p], want, rtol=1e-4, atol=1e-5)
