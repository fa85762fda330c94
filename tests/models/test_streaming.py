"""Fitting the gmm on a Parquet dataset read in batches (locally, and with Ray: slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthdata.errors import ConfigError, DataError, MissingExtraError
from synthdata.models.gmm import GMMGenerator
from synthdata.models.registry import make_generator
from synthdata.models.streaming import ParquetSource, fit_streaming
from synthdata.schema import Schema
from tests.models.shared import use_local_ray, write_parts


@pytest.fixture(scope="module")
def table(flchain: pd.DataFrame) -> pd.DataFrame:
    return flchain.sample(3000, random_state=1).reset_index(drop=True)


def _params(gen: GMMGenerator) -> list[np.ndarray]:
    return [gen.weights_, gen.means_, gen.covariances_, gen.log_theta_]


def test_em_statistics_add_up_over_batches_to_one_in_memory_iteration(table: pd.DataFrame) -> None:
    gen = make_generator("gmm", Schema.infer(table), n_components=3, max_iter=5).fit(table)
    matrix = gen.transformer_.transform(table)
    whole = gen.em_statistics(matrix)
    parts = [gen.em_statistics(matrix[rows]) for rows in np.array_split(np.arange(len(matrix)), 5)]
    for key, value in whole.items():
        np.testing.assert_allclose(sum(p[key] for p in parts), value, rtol=1e-10, atol=1e-8)
    before = float(whole["loglik"]) / len(matrix)
    gen.apply_em_statistics(whole)
    assert gen.loglik_ == pytest.approx(before)
    after = float(gen.em_statistics(matrix)["loglik"]) / len(matrix)
    assert after >= before - 1e-9   # an EM step never lowers the likelihood
    assert gen.n_components_ == 3 and gen.weights_.sum() == pytest.approx(1.0)


def test_fit_streaming_reads_many_files_and_gives_a_working_model(table: pd.DataFrame,
                                                                  tmp_path: Path) -> None:
    folder = write_parts(table, tmp_path / "data", 6)
    schema = Schema.infer(table)
    gen = make_generator("gmm", schema, n_components=3, seed=0)
    out = fit_streaming(gen, ParquetSource(folder, batch_rows=400), passes=4)
    assert out is gen
    assert gen.n_train_rows_ == len(table)
    assert 1 <= gen.stream_passes_ <= 4
    synth = gen.sample(500, seed=1)
    assert list(synth.columns) == list(table.columns) and len(synth) == 500
    assert gen.ledger.not_private_steps() == ["transform.fit", "model.gmm.fit"]
    path = gen.save(tmp_path / "m.sdg")
    from synthdata.models.base import load_generator

    pd.testing.assert_frame_equal(load_generator(path).sample(50, seed=3), gen.sample(50, seed=3))


def test_the_model_does_not_depend_on_files_or_batch_size(table: pd.DataFrame,
                                                          tmp_path: Path) -> None:
    schema = Schema.infer(table)
    fits = []
    for files, batch in ((2, 2000), (9, 250)):
        folder = write_parts(table, tmp_path / f"d{files}", files)
        gen = make_generator("gmm", schema, n_components=3, seed=0)
        fits.append(fit_streaming(gen, ParquetSource(folder, batch_rows=batch), passes=3))
    assert fits[0].stream_passes_ == fits[1].stream_passes_
    for a, b in zip(_params(fits[0]), _params(fits[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_streaming_refuses_what_it_cannot_do(table: pd.DataFrame, tmp_path: Path) -> None:
    folder = write_parts(table.head(100), tmp_path / "d", 2)
    schema = Schema.infer(table)
    source = ParquetSource(folder)
    with pytest.raises(ConfigError, match="generator 'aim' cannot fit by streaming"):
        fit_streaming(make_generator("aim", schema), source)
    with pytest.raises(ConfigError, match="privacy is not supported"):
        fit_streaming(make_generator("gmm", schema, privacy={"epsilon": 1.0}), source)
    with pytest.raises(ConfigError, match="passes must be a positive integer"):
        fit_streaming(make_generator("gmm", schema), source, passes=0)
    with pytest.raises(DataError, match="no such file or folder"):
        ParquetSource(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no \\*.parquet file"):
        ParquetSource(tmp_path / "empty")
    with pytest.raises(ConfigError, match="batch_rows must be a positive integer"):
        ParquetSource(folder, batch_rows=0)


def test_a_batch_that_breaks_the_schema_names_it(table: pd.DataFrame, tmp_path: Path) -> None:
    folder = write_parts(table.head(200), tmp_path / "d", 2)
    bad = table.head(50).copy()
    bad["age"] = "old"
    bad.to_parquet(folder / "part-999.parquet", index=False)
    with pytest.raises(DataError, match=r"batch 2 of the training data \(file .*part-999.parquet\)"):
        fit_streaming(make_generator("gmm", Schema.infer(table), n_components=2),
                      ParquetSource(folder))


def test_ray_address_without_ray_names_the_extra(table: pd.DataFrame, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_parts(table.head(100), tmp_path / "d", 2)
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'synthdata\[ray\]'"):
        fit_streaming(make_generator("gmm", Schema.infer(table)), ParquetSource(folder),
                      ray_address="local")


@pytest.mark.slow
def test_the_ray_path_gives_the_local_model(table: pd.DataFrame, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    use_local_ray(monkeypatch)
    folder = write_parts(table, tmp_path / "data", 12)
    schema = Schema.infer(table)
    local = fit_streaming(make_generator("gmm", schema, n_components=3, seed=0),
                          ParquetSource(folder, batch_rows=500), passes=3)
    remote = fit_streaming(make_generator("gmm", schema, n_components=3, seed=0),
                           ParquetSource(folder, batch_rows=500), passes=3, ray_address="local")
    assert remote.n_train_rows_ == local.n_train_rows_ == len(table)
    assert remote.transformer_.get_state() == local.transformer_.get_state()
    assert remote.stream_passes_ == local.stream_passes_
    for a, b in zip(_params(local), _params(remote), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    assert remote.loglik_ == pytest.approx(local.loglik_, abs=1e-6)
