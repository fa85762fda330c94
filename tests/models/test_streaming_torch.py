"""vae, ctgan and ddpm fitted on a Parquet dataset read in shuffled mini-batches (locally, and
through Ray Data: slow)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.models._params import EpochBudget
from synthdata.models._torch import ConditionSampler, SpanPlan
from synthdata.models.base import load_generator
from synthdata.models.registry import make_generator
from synthdata.models.streaming import MatrixStream, ParquetSource, fit_streaming
from synthdata.schema import Schema
from synthdata.transform.table import TableTransformer
from tests.models.shared import use_local_ray, write_parts

# tiny models, one thread (a second, busy core makes torch's threads spin), few epochs
TINY = {
    "vae": {"epochs": 3, "batch_size": 200, "compress_dims": (32,), "decompress_dims": (32,),
            "embedding_dim": 8},
    "ctgan": {"epochs": 2, "batch_size": 200, "generator_dims": (32,),
              "discriminator_dims": (32,)},
    "ddpm": {"epochs": 3, "batch_size": 200, "hidden_dims": (32, 32), "n_timesteps": 50,
             "sampling_steps": 10},
}


@pytest.fixture(scope="module")
def table(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(1200, random_state=2).reset_index(drop=True)


@pytest.fixture(scope="module")
def folder(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parts(table, tmp_path_factory.mktemp("parts"), 5)


def _tiny(name: str, schema: Schema, **extra: object) -> object:
    gen = make_generator(name, schema, **{"seed": 0, **TINY[name], **extra})
    gen.threads = 1
    return gen


@pytest.mark.parametrize("name", ["vae", "ctgan", "ddpm"])
def test_a_streamed_fit_resolves_epochs_auto_from_the_row_count(name: str, folder: Path,
                                                                table: pd.DataFrame) -> None:
    # epochs="auto" is the default: the stream's row count picks the epochs, as in memory
    gen = _tiny(name, Schema.infer(table), epochs="auto")
    gen.epoch_budget = EpochBudget(300, 12)  # 1,200 rows of 200: 6 steps an epoch -> 2
    fit_streaming(gen, ParquetSource(folder, batch_rows=150), shuffle_batches=2)
    assert len(gen.history_) == gen.training_epochs(len(table)) == 2


@pytest.mark.parametrize("name", ["vae", "ctgan", "ddpm"])
def test_streamed_fit_on_many_files_samples_the_schema(name: str, table: pd.DataFrame,
                                                       folder: Path, tmp_path: Path) -> None:
    schema = Schema.infer(table)
    gen = _tiny(name, schema)
    assert fit_streaming(gen, ParquetSource(folder, batch_rows=150), shuffle_batches=2) is gen
    assert gen.n_train_rows_ == len(table)
    assert len(gen.history_) == TINY[name]["epochs"]
    assert all(np.isfinite(list(r.values())).all() for r in gen.history_)
    # two read batches of 150 rows plus a carried remainder below one mini-batch
    assert 0 < gen.stream_max_rows_held_ <= 2 * 150 + TINY[name]["batch_size"]
    assert gen.ledger.not_private_steps() == ["transform.fit", f"model.{name}.fit"]
    synth = gen.sample(600, seed=1)
    assert list(synth.columns) == list(table.columns) and len(synth) == 600
    # marginals a 2-3 epoch tiny model gets right: values within the table's range and
    # categories, and the sex split not collapsed onto one level
    for col in ("age", "kappa", "futime"):
        assert synth[col].between(table[col].min(), table[col].max()).all(), col
    assert set(synth["chapter"].dropna()) <= set(table["chapter"].dropna())
    assert 0.15 < (synth["sex"] == "F").mean() < 0.85
    back = load_generator(gen.save(tmp_path / "m.sdg"))
    pd.testing.assert_frame_equal(back.sample(50, seed=3), gen.sample(50, seed=3))


def test_one_file_gives_the_in_memory_model_class_and_transformer(table: pd.DataFrame,
                                                                 tmp_path: Path) -> None:
    schema = Schema.infer(table)
    one = write_parts(table, tmp_path / "one", 1)
    streamed = fit_streaming(_tiny("vae", schema, epochs=1), ParquetSource(one))
    in_memory = _tiny("vae", schema, epochs=1).fit(table)
    assert type(streamed) is type(in_memory)
    assert streamed.transformer_.get_state() == in_memory.transformer_.get_state()
    assert streamed.transformer_.layout_ == in_memory.transformer_.layout_
    assert {k: v.shape for k, v in streamed.net_.state_dict().items()} == \
        {k: v.shape for k, v in in_memory.net_.state_dict().items()}


def test_the_same_seed_gives_the_same_streamed_model(table: pd.DataFrame, folder: Path) -> None:
    schema = Schema.infer(table)
    fits = [fit_streaming(_tiny("ddpm", schema, epochs=1), ParquetSource(folder, batch_rows=150))
            for _ in range(2)]
    pd.testing.assert_frame_equal(fits[0].sample(100, seed=4), fits[1].sample(100, seed=4))
    other = fit_streaming(_tiny("ddpm", schema, epochs=1, seed=1),
                          ParquetSource(folder, batch_rows=150))
    assert fits[0].history_ != other.history_


class _Engine:
    """Read batches of a table, transformed, counting the read batches alive at every yield
    (weak references)."""

    def __init__(self, df: pd.DataFrame, batch_rows: int) -> None:
        self.df, self.batch_rows = df, batch_rows
        self.max_alive = 0
        self.refs: list[weakref.ref[pd.DataFrame]] = []

    def epoch_matrices(self, rng: np.random.Generator, transformer: TableTransformer
                       ) -> Iterator[np.ndarray]:
        starts = list(range(0, len(self.df), self.batch_rows))
        for i in rng.permutation(len(starts)):
            batch = self.df.iloc[starts[i]:starts[i] + self.batch_rows].copy()
            self.refs.append(weakref.ref(batch))
            self.max_alive = max(self.max_alive, sum(r() is not None for r in self.refs))
            yield transformer.transform(batch).astype(np.float32)
            del batch


def test_an_epoch_holds_a_bounded_number_of_rows_and_sees_every_row_once(
        table: pd.DataFrame) -> None:
    tt = TableTransformer(Schema.infer(table), numeric="quantile").fit(table)
    engine = _Engine(table, batch_rows=100)
    stream = MatrixStream(engine, tt, len(table), shuffle_batches=3, seed=7)
    whole = tt.transform(table).astype(np.float32)
    epochs = []
    for epoch in range(2):
        parts = list(stream.minibatches(epoch, 64))
        assert [len(p) for p in parts] == [64] * (len(table) // 64) + [len(table) % 64]
        rows = np.concatenate(parts)
        # every row exactly once: the same multiset of rows as the whole matrix
        assert np.array_equal(np.unique(rows, axis=0, return_counts=True)[1],
                              np.unique(whole, axis=0, return_counts=True)[1])
        epochs.append(rows)
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled per epoch
    # never the whole table: three read batches plus a remainder below one mini-batch
    assert stream.max_rows_held <= 3 * 100 + 64 < len(table)
    assert engine.max_alive <= 2  # the batch being read and at most one not yet released
    again = MatrixStream(_Engine(table, 100), tt, len(table), shuffle_batches=3, seed=7)
    assert np.array_equal(np.concatenate(list(again.minibatches(0, 64))), epochs[0])


class _RowIds:
    """Read batches whose single column is the row's index (no transformer needed)."""

    def __init__(self, n_rows: int, batch_rows: int) -> None:
        self.n_rows, self.batch_rows = n_rows, batch_rows

    def epoch_matrices(self, rng: np.random.Generator, transformer: object
                       ) -> Iterator[np.ndarray]:
        starts = range(0, self.n_rows, self.batch_rows)
        for i in rng.permutation(len(starts)):
            stop = min(starts[i] + self.batch_rows, self.n_rows)
            yield np.arange(starts[i], stop, dtype=np.float32)[:, None]


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(1, 700), batch_rows=st.integers(1, 120),
       shuffle_batches=st.integers(1, 5), batch=st.integers(1, 90), seed=st.integers(0, 9))
def test_minibatches_cover_every_row_once_in_bounded_memory(n_rows: int, batch_rows: int,
                                                            shuffle_batches: int, batch: int,
                                                            seed: int) -> None:
    stream = MatrixStream(_RowIds(n_rows, batch_rows), None, n_rows,
                          shuffle_batches=shuffle_batches, seed=seed)
    parts = list(stream.minibatches(0, batch))
    assert [len(p) for p in parts[:-1]] == [batch] * (len(parts) - 1)
    assert len(parts) == -(-n_rows // batch)
    assert sorted(np.concatenate(parts)[:, 0].astype(int)) == list(range(n_rows))
    assert stream.max_rows_held <= shuffle_batches * batch_rows + batch


def test_streamed_ctgan_conditions_by_the_whole_tables_frequencies(table: pd.DataFrame,
                                                                  folder: Path) -> None:
    schema = Schema.infer(table)
    gen = fit_streaming(_tiny("ctgan", schema, epochs=1), ParquetSource(folder, batch_rows=150))
    plan = SpanPlan(gen.transformer_.layout_)
    data = torch.from_numpy(gen.transformer_.transform(table).astype(np.float32))
    whole = ConditionSampler(plan, plan.codes(data), log_frequency=True)
    torch.testing.assert_close(gen.sampler_.freq_probs, whole.freq_probs)
    torch.testing.assert_close(gen.sampler_.cat_probs, whole.cat_probs)
    # a block without some category never draws it, the others keep the whole table's weights
    block = data[:40]
    local = gen._block_sampler(block, torch.log1p(whole.counts))
    cond, column, category, rows = local.draw(2000, torch.Generator().manual_seed(0))
    codes = plan.codes(block)
    held = codes[rows, local.span_index[column]]
    assert torch.equal(held, category)  # every drawn real row holds its condition
    absent = local.counts == 0
    assert absent.any()  # 40 rows leave out some chapters
    probs = torch.cat([local.cat_probs[j, :sp.width] for j, sp in enumerate(local.spans)])
    assert (probs[absent] == 0).all()
    expected = torch.log1p(whole.counts) * ~absent
    for j, sp in enumerate(local.spans):
        w = expected[int(local.offsets[j]):int(local.offsets[j]) + sp.width]
        torch.testing.assert_close(probs[int(local.offsets[j]):int(local.offsets[j]) + sp.width],
                                   (w / w.sum()).float())


def test_streaming_refusals_say_why_and_what_to_do(table: pd.DataFrame, folder: Path) -> None:
    schema = Schema.infer(table)
    source = ParquetSource(folder)
    with pytest.raises(ConfigError, match="privacy is not supported .* remove privacy or fit "
                                          "in memory"):
        fit_streaming(make_generator("vae", schema, privacy={"epsilon": 1.0}), source)
    with pytest.raises(ConfigError, match="early_stopping is not supported .* set "
                                          "early_stopping=false"):
        fit_streaming(make_generator("ctgan", schema, early_stopping=True), source)
    constrained = schema.with_constraints(sd.Inequality("age", "futime"))
    with pytest.raises(ConfigError, match="declared constraints are not supported"):
        fit_streaming(make_generator("ddpm", constrained), source)
    with pytest.raises(ConfigError, match="shuffle_batches must be a positive integer"):
        fit_streaming(make_generator("vae", schema), source, shuffle_batches=0)
    with pytest.raises(ConfigError, match="vae: parameter epochs"):
        fit_streaming(make_generator("vae", schema, epochs=0), source)


@pytest.mark.slow
def test_the_ray_path_trains_on_the_driver_from_ray_data(table: pd.DataFrame, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    use_local_ray(monkeypatch)
    parts = write_parts(table, tmp_path / "data", 8)
    schema = Schema.infer(table)
    local = fit_streaming(_tiny("vae", schema), ParquetSource(parts, batch_rows=100))
    remote = fit_streaming(_tiny("vae", schema), ParquetSource(parts, batch_rows=100),
                           ray_address="local")
    assert remote.n_train_rows_ == local.n_train_rows_ == len(table)
    assert remote.transformer_.get_state() == local.transformer_.get_state()
    assert len(remote.history_) == len(local.history_) == TINY["vae"]["epochs"]
    # the same data and schedule: the training losses end close to the local ones
    assert remote.history_[-1]["recon"] == pytest.approx(local.history_[-1]["recon"], rel=0.25)
    assert remote.stream_max_rows_held_ <= 4 * 100 + TINY["vae"]["batch_size"]
    synth = remote.sample(300, seed=1)
    assert list(synth.columns) == list(table.columns)
    assert set(synth["chapter"].dropna()) <= set(table["chapter"].dropna())
