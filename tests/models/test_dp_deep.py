"""DP-SGD for the deep generators (VAE: whole model; CTGAN: critic only).

Tiny epochs on a 600-row flchain sample: the spend stays within the budget, the ledger holds
one DP-SGD entry with the planned sample rate and steps (from the noisy count), two fits
with one seed differ (noise from OS entropy), a plan that
cannot fit raises before any training step, sampling works, and the vectorised clipping
equals opacus's per-sample gradients.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError, PrivacyBudgetError
from synthdata.privacy import DPConfig, PrivacyLedger

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from synthdata.privacy.dpsgd import DPSGD  # noqa: E402
from tests.models.shared import FLCHAIN, flchain_sample, public_sex_schema  # noqa: E402

N, BATCH, EPOCHS = 600, 100, 2
FAST = {"vae": {"epochs": EPOCHS, "batch_size": BATCH, "compress_dims": (32, 32),
                "decompress_dims": (32, 32), "embedding_dim": 16},
        "ctgan": {"epochs": EPOCHS, "batch_size": BATCH, "generator_dims": (32, 32),
                  "discriminator_dims": (32, 32), "embedding_dim": 16}}
KINDS = ("vae", "ctgan")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    if not FLCHAIN.is_file():
        pytest.skip("flchain.csv is not available")
    return flchain_sample(N)


def fit(kind: str, data: pd.DataFrame, epsilon: float = 3.0, seed: int = 0,
        ledger: PrivacyLedger | None = None, **params):
    gen = sd.make_generator(kind, public_sex_schema(data), privacy=DPConfig(epsilon=epsilon),
                            seed=seed, **{**FAST[kind], **params})
    return gen.fit(data, ledger=ledger)


@pytest.fixture(scope="module")
def fitted(data):
    return {kind: fit(kind, data) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_spent_within_budget_and_ledger_entry(kind, fitted):
    gen = fitted[kind]
    eps, delta = gen.ledger.total()
    assert eps <= 3.0 and delta <= gen.ledger.delta
    assert eps > 2.5  # the budget is used, not wasted
    sgd = [e for e in gen.ledger.entries if e.mechanism == "dpsgd"]
    assert len(sgd) == 1
    entry = sgd[0]
    assert entry.step == f"model.{kind}.dp_sgd"
    # q and steps come from the run's noisy count (n is not public), never the true N
    n_plan = gen.dp_rows_
    assert n_plan is not None and n_plan == gen.ledger.entries[0].params["released"]
    assert gen.ledger.entries[0].step == "data.count"
    assert entry.sample_rate == pytest.approx(BATCH / n_plan)
    steps = EPOCHS * (math.ceil(n_plan / BATCH) if kind == "vae" else n_plan // BATCH)
    assert entry.steps == steps == gen.dp_steps_
    assert entry.params["noise_multiplier"] == gen.dp_noise_multiplier_
    assert entry.params["max_grad_norm"] == 1.0
    # calibrated at the ledger's DP-SGD δ for the plan's training ε
    assert gen.ledger.dpsgd_epsilon() <= gen.dp_plan_.training_epsilon
    assert not gen.ledger.not_private_steps()
    assert not gen.ledger.reservations


def test_ctgan_condition_frequencies_are_charged(fitted):
    gen = fitted["ctgan"]
    steps = [e.step for e in gen.ledger.entries]
    discrete = [s.column for s in gen.sampler_.spans]
    assert discrete  # sex, death, mgus, ...
    for col in discrete:
        assert f"model.ctgan.condition_frequencies[{col}]" in steps
    assert gen.sampler_.counts is None  # no exact counts kept
    assert torch.allclose(gen.sampler_.freq_probs.sum(1), torch.ones(len(discrete)))
    assert gen.critic_.pac == 1  # pac forced to 1 under DP


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_works(kind, fitted, data):
    gen = fitted[kind]
    synth = gen.sample(300, seed=1)
    assert list(synth.columns) == list(data.columns) and len(synth) == 300
    assert set(synth["sex"].dropna()) <= {"F", "M"}


def test_ctgan_conditional_sampling(fitted):
    synth = fitted["ctgan"].sample(100, conditions={"sex": "F"}, seed=2)
    assert (synth["sex"] == "F").all()


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_dp_fits_differ_and_global_rng_untouched(kind, fitted, data):
    """DP noise and Poisson sampling come from OS entropy, never from the (public) seed: two
    DP fits with one seed on one table differ (an attacker who knows the seed cannot
    recompute the release); the global RNGs are not used."""
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    again = fit(kind, data)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    net = "net_" if kind == "vae" else "generator_"
    ours, theirs = getattr(again, net).state_dict(), getattr(fitted[kind], net).state_dict()
    assert any(not torch.equal(ours[k], theirs[k]) for k in ours)
    assert not again.sample(200, seed=3).equals(fitted[kind].sample(200, seed=3))


def test_dpsgd_draws_do_not_follow_the_seed():
    cfg = DPConfig(epsilon=3.0)
    owner = SimpleNamespace(name="t", privacy=cfg,
                            ledger_=PrivacyLedger.from_config(cfg, n_rows=1000))
    nets = [torch.nn.Linear(3, 2) for _ in range(2)]
    runs = [DPSGD(owner, net, step=f"t{i}.dp_sgd", expected_batch_size=100, n_rows=1000,
                  steps=5, epsilon=0.5) for i, net in enumerate(nets)]
    batches = [dp.poisson_sample() for dp in runs]
    assert not torch.equal(batches[0], batches[1])
    assert 40 < len(batches[0]) < 200  # rate 0.1 of 1000 rows
    for dp in runs:
        dp.close()


@pytest.mark.parametrize("kind", KINDS)
def test_plan_that_cannot_fit_raises_before_training(kind, data, monkeypatch):
    from synthdata.privacy import accounting

    def never(*args, **kwargs):
        raise AssertionError("a training step ran")

    monkeypatch.setattr(DPSGD, "poisson_sample", never)
    # an under-noised plan: the charge of the planned steps must refuse it
    monkeypatch.setattr(accounting, "calibrate_dpsgd_noise", lambda *a, **k: 0.3)
    ledger = PrivacyLedger.from_config(DPConfig(epsilon=1.0), n_rows=len(data))
    with pytest.raises(PrivacyBudgetError, match="does not fit"):
        fit(kind, data, epsilon=1.0, ledger=ledger)
    assert not [e for e in ledger.entries if e.mechanism == "dpsgd"]
    assert ledger.spent()[0] <= 1.0


def test_unreachable_epsilon_raises_budget_error(data, monkeypatch):
    from synthdata.privacy import accounting

    def fail(*args, **kwargs):
        raise ConfigError("no noise multiplier reaches ε")

    monkeypatch.setattr(accounting, "calibrate_dpsgd_noise", fail)
    monkeypatch.setattr(DPSGD, "poisson_sample", lambda self: pytest.fail("trained"))
    with pytest.raises(PrivacyBudgetError, match="cannot reach"):
        fit("vae", data)


def test_ctgan_reservation_fails_before_reading_frequencies(data):
    ledger = PrivacyLedger.from_config(DPConfig(epsilon=3.0), n_rows=len(data))
    ledger.reserve("someone.else", epsilon=2.9)  # leaves too little for DP-SGD
    with pytest.raises(PrivacyBudgetError):
        fit("ctgan", data, ledger=ledger)
    assert not any("condition_frequencies" in e.step or e.mechanism == "dpsgd"
                   for e in ledger.entries)


@pytest.mark.parametrize("kind", KINDS)
def test_early_stopping_refused_under_dp(kind, data):
    with pytest.raises(ConfigError, match="early_stopping"):
        fit(kind, data, early_stopping=True)


def test_saved_dp_model_samples_the_same(fitted, tmp_path):
    for kind in KINDS:
        path = fitted[kind].save(tmp_path / f"{kind}.zip")
        loaded = sd.load_generator(path)
        pd.testing.assert_frame_equal(loaded.sample(100, seed=4), fitted[kind].sample(100, seed=4))
        assert loaded.ledger.total() == fitted[kind].ledger.total()


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_clipping_matches_opacus_per_sample_gradients():
    """The ghost-norm clipped sum equals clipping opacus's per-sample gradients."""
    from opacus import GradSampleModule

    torch.manual_seed(0)  # test-only weights; the library never touches the global RNG
    net = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                              torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 3))
    ref = torch.nn.Sequential(*[torch.nn.Linear(m.in_features, m.out_features)
                                if isinstance(m, torch.nn.Linear) else m for m in net])
    ref.load_state_dict(net.state_dict())
    x, y = torch.randn(40, 7), torch.randn(40, 3)
    x[:5] *= 30  # some rows are clipped, some not
    cfg = DPConfig(epsilon=3.0, max_grad_norm=0.7)
    owner = SimpleNamespace(name="t", privacy=cfg,
                            ledger_=PrivacyLedger.from_config(cfg, n_rows=1000))
    dp = DPSGD(owner, net, step="t.dp_sgd", expected_batch_size=40, n_rows=1000, steps=10,
               epsilon=2.0)
    (net(x) - y).square().sum().backward()
    ours = dp.clipped_sum()
    dp.close()

    gsm = GradSampleModule(ref, loss_reduction="sum")
    (gsm(x) - y).square().sum().backward()
    params = list(ref.parameters())
    per = [p.grad_sample.reshape(40, -1) for p in params]
    norms = torch.cat(per, dim=1).norm(dim=1)
    factor = (0.7 / (norms + 1e-6)).clamp(max=1.0)
    assert (factor < 1).any() and (factor == 1).any()
    for p_ours, p_ref in zip(net.parameters(), params, strict=True):
        expected = torch.einsum("i,i...->...", factor, p_ref.grad_sample)
        torch.testing.assert_close(ours[p_ours], expected, rtol=1e-4, atol=1e-5)
