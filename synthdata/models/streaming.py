"""Fit a generator on a table larger than memory, read in batches (locally or with Ray).

``fit_streaming(gen, source)`` makes passes over a Parquet dataset (one file or a folder of
many), never holding more than one batch of rows (plus the first pass's summary and row
sample, see :mod:`synthdata.transform.streaming`):

1. **Metadata pass**: every batch is checked against the schema and summarised; the
   summaries merge into one, from which the transformer is fitted (ranges, categories,
   quantile maps, missing slots) with no further read.
2. **Start**: the gmm is fitted in memory on the row sample (``SAMPLE_ROWS`` rows; the same
   BIC choice of components and EM as :meth:`GMMGenerator.fit`).
3. **EM passes**: each pass runs the E-step of the current parameters on every batch and
   adds up the sufficient statistics (responsibility sums, first and second moments,
   category counts); the M-step on the sums is one EM iteration over all rows, exactly as
   in memory (up to floating-point summation order). ``passes`` passes run, fewer when the
   mean log-likelihood improves by less than the generator's ``tol``.

With ``ray_address`` the same passes run on a Ray cluster through Ray Data
(``ray.data.read_parquet`` and ``map_batches``): workers summarise blocks and compute the
statistics of their batches, the driver merges and runs the M-step. Summaries and sums are
the same whatever the split, so the Ray fit gives the local fit's model (within
floating-point summation order). Ray is an optional extra (``pip install 'synthdata[ray]'``).

Only the gmm fits by streaming; vae, ctgan and ddpm are refused with a ConfigError (not
implemented yet), as are privacy (DP-EM streaming is not implemented) and declared
constraints (their reparameterisation needs the whole table).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata._progress import ProgressOption, progress_reporter
from synthdata._rng import make_rng
from synthdata.errors import ConfigError, DataError, MissingExtraError
from synthdata.transform.streaming import SAMPLE_ROWS, TableSummary, fit_transformer_from_summary
from synthdata.transform.table import TableTransformer

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 100_000
DEFAULT_PASSES = 20
STREAMING_GENERATORS = ("gmm",)


class ParquetSource:
    """A Parquet dataset (one file, a folder of files, or a list of files) read in batches
    of at most ``batch_rows`` rows with ``pyarrow.dataset``."""

    def __init__(self, path: str | Path | list[str | Path], *, batch_rows: int = DEFAULT_BATCH_ROWS,
                 columns: list[str] | None = None) -> None:
        paths = [Path(p) for p in path] if isinstance(path, list) else [Path(path)]
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                found = sorted(q for q in p.rglob("*.parquet") if q.is_file())
                if not found:
                    raise DataError(f"{p}: the folder holds no *.parquet file; give a Parquet "
                                    "file or a folder of them")
                files.extend(found)
            elif p.is_file():
                files.append(p)
            else:
                raise DataError(f"{p}: no such file or folder")
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows <= 0:
            raise ConfigError(f"batch_rows must be a positive integer, got {batch_rows!r}")
        self.files, self.batch_rows, self.columns = files, batch_rows, columns

    def _dataset(self, files: list[Path]) -> Any:
        import pyarrow.dataset as ds

        try:
            return ds.dataset([str(f) for f in files], format="parquet")
        except Exception as err:  # pyarrow raises several types for unreadable files
            raise DataError(f"{files[0]}: cannot read it as Parquet ({err})") from err

    def labelled_batches(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """Every row once, in batches (one in memory at a time), each with a label naming
        its file for error messages. Files are read one by one, so a file whose columns or
        types differ from the others fails the schema check with its name."""
        import pyarrow as pa

        index = 0
        for path in self.files:
            try:
                for batch in self._dataset([path]).to_batches(
                        columns=self.columns, batch_size=self.batch_rows, batch_readahead=1,
                        fragment_readahead=1):
                    if batch.num_rows:
                        yield f"batch {index} of the training data (file {path})", batch.to_pandas()
                        index += 1
            except pa.ArrowException as err:
                raise DataError(f"{path}: cannot read it as Parquet ({err})") from err

    def batches(self) -> Iterator[pd.DataFrame]:
        """Every row once, in batches (one batch in memory at a time)."""
        for _, batch in self.labelled_batches():
            yield batch

    def head(self, n_rows: int) -> pd.DataFrame:
        """The first ``n_rows`` rows (for schema inference)."""
        return self._dataset(self.files).head(n_rows, columns=self.columns).to_pandas()


def fit_streaming(gen: Any, source: ParquetSource, *, passes: int = DEFAULT_PASSES,
                  ray_address: str | None = None, progress: ProgressOption = None) -> Any:
    """Fit ``gen`` (an unfitted gmm) on ``source`` without loading it; returns ``gen``.

    Parameters
    ----------
    gen:
        A generator from ``make_generator("gmm", schema, ...)`` without privacy.
    source:
        A :class:`ParquetSource`.
    passes:
        EM iterations over every row after the start on the row sample.
    ray_address:
        ``None``: read locally, out of core. Otherwise the address of a Ray cluster
        (``"auto"``, ``"ray://host:10001"``, or ``"local"`` to start one on this machine);
        the passes run through Ray Data.
    """
    if not callable(progress):
        with progress_reporter(progress) as callback:
            return fit_streaming(gen, source, passes=passes, ray_address=ray_address,
                                 progress=callback)
    _check_streamable(gen, passes)
    engine = _RayEngine(source, ray_address) if ray_address is not None else _LocalEngine(source)
    try:
        return _fit_gmm(gen, engine, passes, progress)
    finally:
        engine.close()


def _check_streamable(gen: Any, passes: int) -> None:
    if getattr(gen, "name", None) not in STREAMING_GENERATORS:
        raise ConfigError(f"streaming fit: generator {getattr(gen, 'name', gen)!r} cannot fit by "
                          f"streaming yet (only {list(STREAMING_GENERATORS)}); load the table in "
                          "memory or use gmm")
    if gen.privacy is not None:
        raise ConfigError("streaming fit: privacy is not supported (DP-EM needs the whole table "
                          "in memory); remove privacy or fit in memory")
    if any(getattr(gen.schema, "constraints", None) or ()):
        raise ConfigError("streaming fit: declared constraints are not supported (their "
                          "reparameterisation reads the whole table); remove them from the "
                          "schema or fit in memory")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes <= 0:
        raise ConfigError(f"streaming fit: passes must be a positive integer, got {passes!r}")
    gen._validate_params()


def _fit_gmm(gen: Any, engine: Any, passes: int, progress: Callable[..., None]) -> Any:
    from synthdata.privacy.ledger import PrivacyLedger

    rng = make_rng(gen.seed)
    seed = int(rng.integers(0, 2**31 - 1))
    summary = engine.summarise(gen.schema, seed)
    if summary.n_rows < 10:
        raise DataError(f"the training data has {summary.n_rows} row(s); at least 10 are needed")
    progress("stream.metadata", 1, 1)
    gen.ledger_ = PrivacyLedger.from_config(None, n_rows=summary.n_rows)
    gen.constraints_ = None
    tt = TableTransformer(gen.schema, numeric=gen.numeric_encoding, **gen._transformer_options())
    gen.transformer_ = fit_transformer_from_summary(tt, summary, rng)
    gen.ledger_.record_not_private("transform.fit", reason="bounds, categories and encodings "
                                   "learned from the training data (streaming summary) without "
                                   "privacy", shapes_release=True)
    if gen.transformer_.n_features_ == 0:
        raise DataError("the table has no column a generator can learn (only ids or text)")
    start = gen.transformer_.transform(summary.row_sample(SAMPLE_ROWS, rng))
    gen.fit_initial(start, rng)
    gen.n_train_rows_ = summary.n_rows
    prev = -np.inf
    done = 0
    for it in range(passes):
        stats = engine.em_statistics(gen)
        gen.apply_em_statistics(stats)
        done = it + 1
        progress("stream.em", done, passes)
        if gen.loglik_ - prev < gen.tol:
            break
        prev = gen.loglik_
    gen.stream_passes_ = done
    gen.ledger_.record_not_private(f"model.{gen.name}.fit", reason="model parameters learned "
                                   "without privacy", shapes_release=True)
    gen.sample_seed_ = int(rng.integers(0, 2**63 - 1))
    gen._sample_rng = np.random.default_rng(gen.sample_seed_)
    return gen


def batch_statistics(gen: Any, batch: pd.DataFrame) -> dict[str, np.ndarray]:
    """EM statistics of one batch under ``gen``'s current parameters."""
    return gen.em_statistics(gen.transformer_.transform(batch))


def add_statistics(total: dict[str, np.ndarray] | None, stats: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    if total is None:
        return {k: np.array(v, dtype=float, copy=True) for k, v in stats.items()}
    for k, v in stats.items():
        total[k] = total[k] + v
    return total


def summarise_batch(schema: Any, seed: int, batch: pd.DataFrame, where: str) -> TableSummary:
    schema.validate(batch, where=where)
    return TableSummary(schema, seed=seed).update(batch)


class _LocalEngine:
    """Passes over the source in this process, one batch at a time."""

    def __init__(self, source: ParquetSource) -> None:
        self.source = source

    def summarise(self, schema: Any, seed: int) -> TableSummary:
        total = TableSummary(schema, seed=seed)
        for label, batch in self.source.labelled_batches():
            total.merge(summarise_batch(schema, seed, batch, label))
        return total

    def em_statistics(self, gen: Any) -> dict[str, np.ndarray]:
        total = None
        for batch in self.source.batches():
            total = add_statistics(total, batch_statistics(gen, batch))
        if total is None:
            raise DataError("the training data has no rows")
        return total

    def close(self) -> None:
        pass


class _RayEngine:
    """The same passes through Ray Data on a Ray cluster."""

    def __init__(self, source: ParquetSource, address: str) -> None:
        try:
            import ray
        except ImportError as err:
            raise MissingExtraError("--ray-address needs Ray: pip install 'synthdata[ray]'"
                                    ) from err
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                ray.init(address=None if address == "local" else address,
                         include_dashboard=False, log_to_driver=False,
                         ignore_reinit_error=True)
            except (ConnectionError, ValueError, RuntimeError) as err:
                raise ConfigError(f"--ray-address {address!r}: cannot connect to a Ray cluster "
                                  f"({err}); give 'auto', 'ray://HOST:10001' or 'local'") from err
        self.source = source

    def _map(self, fn: Callable[[pd.DataFrame], Any]) -> list[Any]:
        """``fn`` on every batch of every file, on the cluster; the partial results.

        The dataset is the list of files (``ray.data.from_items``); each worker reads its
        files with pyarrow in batches of ``batch_rows`` (the files must be readable at the
        same path on every node, as for ``ray.data.read_parquet``).
        """
        source = self.source

        def run(rows: pd.DataFrame) -> pd.DataFrame:
            parts = []
            for path in rows["path"]:
                one = ParquetSource(Path(path), batch_rows=source.batch_rows,
                                    columns=source.columns)
                for batch in one.batches():
                    # summaries and sums are our own objects, passed between our own
                    # processes within one fit
                    parts.append(pickle.dumps(fn(batch)))
            return pd.DataFrame({"part": parts})

        items = [{"path": str(f)} for f in self.source.files]
        dataset = self.ray.data.from_items(items, override_num_blocks=len(items))
        rows = dataset.map_batches(run, batch_format="pandas", batch_size=1).take_all()
        return [pickle.loads(row["part"]) for row in rows]

    def summarise(self, schema: Any, seed: int) -> TableSummary:
        total = TableSummary(schema, seed=seed)
        for part in self._map(lambda b: summarise_batch(schema, seed, b, "a batch of the "
                                                        "training data (Ray)")):
            total.merge(part)
        return total

    def em_statistics(self, gen: Any) -> dict[str, np.ndarray]:
        total = None
        for part in self._map(lambda b: batch_statistics(gen, b)):
            total = add_statistics(total, part)
        if total is None:
            raise DataError("the training data has no rows")
        return total

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
