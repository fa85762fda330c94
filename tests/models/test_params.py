"""The ``epochs="auto"`` rule of the torch generators (``_params.EpochBudget``).

Small tables keep the full epochs exactly (300 for vae/ctgan, 1,000 for ddpm: every shared
table and benchmark table is unchanged), large tables get a capped number of optimizer
steps, an explicit ``epochs`` always wins, the fit runs the epochs the rule gives and logs
them, and under DP the rule reads only the noisy count.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.models._params import EpochBudget
from synthdata.schema import Schema
from tests.models.shared import FLCHAIN, flchain_sample, public_sex_schema

KINDS = ("vae", "ctgan", "ddpm")
# rows of the shared tables the benchmarks fit (covid_testing, nafld1, nafld3 the largest)
SHARED_ROWS = (418, 2_982, 4_406, 7_043, 7_874, 15_524, 17_549, 34_340)
SMALL = {"vae": {"batch_size": 100, "compress_dims": (16,), "decompress_dims": (16,),
                 "embedding_dim": 8},
         "ctgan": {"batch_size": 100, "generator_dims": (16,), "discriminator_dims": (16,),
                   "embedding_dim": 8},
         "ddpm": {"batch_size": 100, "hidden_dims": (16,), "n_timesteps": 50,
                  "sampling_steps": 5}}


def generator(kind: str, **params):
    return sd.make_generator(kind, Schema(columns=()), seed=0, **params)


# -- the rule -----------------------------------------------------------------------------

def test_budget_keeps_full_epochs_then_caps_steps():
    budget = EpochBudget(full_epochs=300, max_steps=12_000)
    assert budget.epochs(1) == budget.epochs(40) == 300
    assert budget.epochs(41) == 292          # 12,000 // 41
    assert budget.epochs(200) == 60
    assert budget.epochs(20_000) == 1        # never zero
    assert budget.full_rows(1000) == 40_000


@given(full=st.integers(1, 2000), max_steps=st.integers(1, 10**6), steps=st.integers(1, 10**5))
def test_budget_properties(full, max_steps, steps):
    budget = EpochBudget(full_epochs=full, max_steps=max_steps)
    epochs = budget.epochs(steps)
    assert 1 <= epochs <= full
    assert epochs * steps <= max(max_steps, steps)      # the cap holds (one epoch at least)
    if full * steps <= max_steps:
        assert epochs == full                           # small tables: the full epochs
    else:
        assert (epochs + 1) * steps > max_steps         # as many epochs as fit
    assert budget.epochs(steps + 1) <= epochs           # more rows never mean more epochs


@pytest.mark.parametrize("kind", KINDS)
def test_auto_is_the_default(kind):
    assert generator(kind).epochs == "auto"
    generator(kind, epochs="auto")._validate_params()  # as a pipeline's params may say


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", SHARED_ROWS)
def test_shared_tables_keep_the_full_epochs(kind, rows):
    full = 1000 if kind == "ddpm" else 300
    assert generator(kind).training_epochs(rows) == full
    assert generator(kind).training_epochs(40_000) == full


@pytest.mark.parametrize(("kind", "expected"), [
    ("vae", {200_000: 60, 400_000: 30, 10_000_000: 1}),        # 200 / 400 / 10,000 steps
    ("ctgan", {200_000: 60, 400_000: 30, 10_000_000: 1}),      # 400 / 800 / 20,000 steps
    ("ddpm", {200_000: 204, 400_000: 102, 10_000_000: 4}),     # 196 / 391 / 9,766 steps
])
def test_large_tables_are_capped(kind, expected):
    gen = generator(kind)
    assert {rows: gen.training_epochs(rows) for rows in expected} == expected


@pytest.mark.parametrize("kind", KINDS)
def test_explicit_epochs_win(kind):
    assert generator(kind, epochs=500).training_epochs(200_000) == 500
    assert generator(kind, epochs=7).training_epochs(500) == 7


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("value", "message"), [
    ("fast", "parameter epochs must be a positive integer or 'auto', got 'fast'"),
    (0, "parameter epochs must be a positive integer, got 0"),
    (2.5, "parameter epochs must be a positive integer, got 2.5"),
])
def test_bad_epochs_are_refused(kind, value, message):
    with pytest.raises(ConfigError, match=f"^{kind}: {message}"):
        generator(kind, epochs=value)._validate_params()


# -- fits -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    if not FLCHAIN.is_file():
        pytest.skip("flchain.csv is not available")
    return flchain_sample(600)


def epochs_run(gen) -> int:
    return len(gen.history_)


@pytest.mark.parametrize("kind", KINDS)
def test_fit_runs_the_auto_epochs_and_logs_them(kind, data, monkeypatch, caplog):
    cls = type(generator(kind))
    monkeypatch.setattr(cls, "epoch_budget", EpochBudget(full_epochs=4, max_steps=10))
    schema = Schema.infer(data)
    caplog.set_level(logging.INFO, logger="synthdata.models._params")
    # 600 rows, batch 100: 6 steps per epoch, 10 // 6 = 1 epoch
    big = sd.make_generator(kind, schema, seed=0, **SMALL[kind]).fit(data)
    assert epochs_run(big) == 1
    assert f"{kind}: 1 epochs of 6 steps (epochs='auto': 4 would exceed the cap of 10 steps)" \
        in caplog.text
    # 200 rows: 2 steps per epoch, the full 4 epochs
    small = sd.make_generator(kind, schema, seed=0, **SMALL[kind]).fit(data.iloc[:200])
    assert epochs_run(small) == 4
    assert f"{kind}: 4 epochs of 2 steps (epochs='auto': the full 4 fit within the cap" \
        in caplog.text
    explicit = sd.make_generator(kind, schema, seed=0, epochs=3, **SMALL[kind]).fit(data)
    assert epochs_run(explicit) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_dp_schedule_reads_only_the_noisy_count(kind, data, monkeypatch):
    """The true n is 600; the run's count says 2,500. The epochs (and so the steps charged)
    must follow 2,500: 25 steps per epoch, 50 // 25 = 2 epochs, 50 steps. Read from the
    true n it would be 6 steps per epoch, 3 epochs, 18 steps."""
    pytest.importorskip("opacus")
    cls = type(generator(kind))
    monkeypatch.setattr(cls, "epoch_budget", EpochBudget(full_epochs=3, max_steps=50))
    monkeypatch.setattr(cls, "_planning_rows", lambda self, n_rows: 2_500)
    gen = sd.make_generator(kind, public_sex_schema(data), privacy=sd.DPConfig(epsilon=3.0),
                            seed=0, **SMALL[kind])
    gen.fit(data)
    sgd = [e for e in gen.ledger.entries if e.mechanism == "dpsgd"]
    assert len(sgd) == 1
    assert sgd[0].steps == 2 * 25 == gen.dp_steps_
    assert sgd[0].sample_rate == pytest.approx(100 / 2_500)
