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
(``ray.data.from_items`` over the files and ``map_batches``): workers read their files with
pyarrow in batches, summarise them and compute the
statistics of their batches, the driver merges and runs the M-step. Summaries and sums are
the same whatever the split, so the Ray fit gives the local fit's model (within
floating-point summation order). Ray is an optional extra (``pip install 'synthdata[ray]'``).

**vae, ctgan and ddpm** stream mini-batches instead (:class:`MatrixStream`): the same
metadata pass fits the transformer (and gives the exact row count, which sets the steps per
epoch as in memory), then each of the generator's ``epochs`` reads the whole dataset once:

- the read units (every row group of every file) come in an order shuffled per epoch from
  the seed; each unit is read in batches of at most ``batch_rows`` rows;
- each read batch is transformed to the model's matrix; ``shuffle_batches`` of them are
  held, their rows shuffled together (a bounded block shuffle, from the seed) and cut into
  mini-batches of the generator's ``batch_size`` (the remainder carries into the next
  block, so an epoch has ``ceil(n / batch_size)`` steps as in memory);
- the generator trains on them with its own step (``_fit_stream`` hooks in vae.py, ctgan.py,
  diffusion.py). At most ``shuffle_batches * batch_rows + batch_size`` transformed rows
  (plus a transient copy of one block while it is shuffled) and one read batch are held
  at a time, whatever the table's size.

ctgan's training-by-sampling needs, per category, rows that hold it: each block gets its own
condition sampler over its rows, with categories drawn by the log of their frequency in the
whole table (the metadata pass's exact counts), restricted to the categories the block
holds; unconditional sampling after the fit uses the whole table's frequencies, as in
memory. ddpm's clip of predicted values is the largest absolute value seen in the first
epoch (every row), as in memory. Early stopping is refused (it holds out rows).

With ``ray_address`` the torch generators read through Ray Data: per epoch a dataset of the
files in an order shuffled from the seed, whose ``map_batches`` workers read each file in
batches and transform them; ``iter_batches`` streams the matrices to the driver, where the
block shuffle and all of training run. Training is not distributed (one model on the
driver); Ray spreads the reading, decoding and transforming of the files.

Refused with a ConfigError: privacy (a DP fit needs its DP count, DP preprocessing and
Poisson sampling over the whole table; not implemented for streaming) and declared
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
from synthdata.transform.columns import Activation, CategoryEncoder, SpanRole
from synthdata.transform.streaming import (
    SAMPLE_ROWS,
    DiscreteSummary,
    TableSummary,
    fit_transformer_from_summary,
)
from synthdata.transform.table import TableTransformer

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 100_000
DEFAULT_PASSES = 20
DEFAULT_SHUFFLE_BATCHES = 4
STREAMING_GENERATORS = ("gmm", "vae", "ctgan", "ddpm")
TORCH_STREAMING = ("vae", "ctgan", "ddpm")  # mini-batch training (``_fit_stream``)


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

    def units(self) -> list[tuple[Path, int]]:
        """Every (file, row group) of the dataset: the units an epoch shuffles."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out: list[tuple[Path, int]] = []
        for path in self.files:
            try:
                n_groups = pq.ParquetFile(path).metadata.num_row_groups
            except (pa.ArrowException, OSError) as err:
                raise DataError(f"{path}: cannot read it as Parquet ({err})") from err
            out.extend((path, g) for g in range(n_groups))
        return out

    def epoch_batches(self, rng: np.random.Generator) -> Iterator[pd.DataFrame]:
        """Every row once, in batches of at most ``batch_rows`` rows, the row groups of all
        files in an order drawn from ``rng`` (one batch in memory at a time)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        units = self.units()
        for i in rng.permutation(len(units)):
            path, group = units[int(i)]
            try:
                reader = pq.ParquetFile(path)
                for batch in reader.iter_batches(batch_size=self.batch_rows, row_groups=[group],
                                                 columns=self.columns):
                    if batch.num_rows:
                        yield batch.to_pandas()
            except pa.ArrowException as err:
                raise DataError(f"{path}: cannot read it as Parquet ({err})") from err

    def head(self, n_rows: int) -> pd.DataFrame:
        """The first ``n_rows`` rows (for schema inference)."""
        return self._dataset(self.files).head(n_rows, columns=self.columns).to_pandas()


def fit_streaming(gen: Any, source: ParquetSource, *, passes: int = DEFAULT_PASSES,
                  ray_address: str | None = None,
                  shuffle_batches: int = DEFAULT_SHUFFLE_BATCHES,
                  progress: ProgressOption = None) -> Any:
    """Fit ``gen`` (an unfitted gmm, vae, ctgan or ddpm) on ``source`` without loading it;
    returns ``gen``.

    Parameters
    ----------
    gen:
        A generator from ``make_generator(name, schema, ...)`` without privacy.
    source:
        A :class:`ParquetSource`.
    passes:
        gmm: EM iterations over every row after the start on the row sample. The torch
        generators make ``gen.epochs`` passes instead.
    ray_address:
        ``None``: read locally, out of core. Otherwise the address of a Ray cluster
        (``"auto"``, ``"ray://host:10001"``, or ``"local"`` to start one on this machine);
        the passes read through Ray Data (torch generators: training stays on this process).
    shuffle_batches:
        vae/ctgan/ddpm: read batches whose rows are shuffled together into mini-batches
        (memory holds about ``shuffle_batches * source.batch_rows`` transformed rows).

    Examples
    --------
    >>> gen = make_generator("vae", schema, epochs=2)            # doctest: +SKIP
    >>> fit_streaming(gen, ParquetSource("data/parts/", batch_rows=100_000))  # doctest: +SKIP
    """
    if not callable(progress):
        with progress_reporter(progress) as callback:
            return fit_streaming(gen, source, passes=passes, ray_address=ray_address,
                                 shuffle_batches=shuffle_batches, progress=callback)
    _check_streamable(gen, passes, shuffle_batches)
    engine = _RayEngine(source, ray_address) if ray_address is not None else _LocalEngine(source)
    try:
        if gen.name in TORCH_STREAMING:
            return _fit_torch(gen, engine, shuffle_batches, progress)
        return _fit_gmm(gen, engine, passes, progress)
    finally:
        engine.close()


def _check_streamable(gen: Any, passes: int, shuffle_batches: int = DEFAULT_SHUFFLE_BATCHES
                      ) -> None:
    if getattr(gen, "name", None) not in STREAMING_GENERATORS:
        raise ConfigError(f"streaming fit: generator {getattr(gen, 'name', gen)!r} cannot fit by "
                          f"streaming (only {list(STREAMING_GENERATORS)}); load the table in "
                          "memory or use one of those")
    if gen.privacy is not None:
        raise ConfigError("streaming fit: privacy is not supported (a DP fit needs its DP count, "
                          "DP preprocessing and DP-EM or Poisson-sampled DP-SGD over the whole "
                          "table in memory); remove privacy or fit in memory")
    if any(getattr(gen.schema, "constraints", None) or ()):
        raise ConfigError("streaming fit: declared constraints are not supported (their "
                          "reparameterisation reads the whole table); remove them from the "
                          "schema or fit in memory")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes <= 0:
        raise ConfigError(f"streaming fit: passes must be a positive integer, got {passes!r}")
    if isinstance(shuffle_batches, bool) or not isinstance(shuffle_batches, int) \
            or shuffle_batches <= 0:
        raise ConfigError("streaming fit: shuffle_batches must be a positive integer, got "
                          f"{shuffle_batches!r}")
    if getattr(gen, "early_stopping", False):
        raise ConfigError(f"streaming fit: {gen.name} early_stopping is not supported (it holds "
                          "out rows of the table); set early_stopping=false or fit in memory")
    gen._validate_params()


def _fit_streamed_transformer(gen: Any, engine: Any, rng: np.random.Generator,
                              progress: Callable[..., None]) -> TableSummary:
    """The metadata pass: summary, ledger and transformer of ``gen``; returns the summary."""
    from synthdata.privacy.ledger import PrivacyLedger

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
    gen.n_train_rows_ = summary.n_rows
    return summary


def _finish_fit(gen: Any, rng: np.random.Generator) -> Any:
    gen.ledger_.record_not_private(f"model.{gen.name}.fit", reason="model parameters learned "
                                   "without privacy", shapes_release=True)
    gen.sample_seed_ = int(rng.integers(0, 2**63 - 1))
    gen._sample_rng = np.random.default_rng(gen.sample_seed_)
    return gen


def _fit_gmm(gen: Any, engine: Any, passes: int, progress: Callable[..., None]) -> Any:
    rng = make_rng(gen.seed)
    summary = _fit_streamed_transformer(gen, engine, rng, progress)
    start = gen.transformer_.transform(summary.row_sample(SAMPLE_ROWS, rng))
    gen.fit_initial(start, rng)
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
    return _finish_fit(gen, rng)


def _fit_torch(gen: Any, engine: Any, shuffle_batches: int,
               progress: Callable[..., None]) -> Any:
    from synthdata._threads import check_threads, limit_threads

    rng = make_rng(gen.seed)
    summary = _fit_streamed_transformer(gen, engine, rng, progress)
    stream = MatrixStream(engine, gen.transformer_, summary.n_rows,
                          shuffle_batches=shuffle_batches, seed=int(rng.integers(0, 2**31 - 1)),
                          category_counts=category_counts(gen.transformer_, summary))
    with limit_threads(check_threads(gen.threads, where=f"{gen.name}: threads")):
        gen._fit_stream(stream, rng, progress)
    gen.stream_max_rows_held_ = stream.max_rows_held
    return _finish_fit(gen, rng)


def category_counts(transformer: TableTransformer, summary: TableSummary
                    ) -> dict[str, np.ndarray]:
    """Exact count of every slot (category code, missing last) of every one-hot categorical
    column, from the metadata pass: what ctgan's training-by-sampling weighs categories by."""
    out: dict[str, np.ndarray] = {}
    for span in transformer.layout_:
        if span.role != SpanRole.CATEGORY or span.kind != Activation.SOFTMAX:
            continue
        enc = transformer.encoder(span.column)
        col = summary.columns[span.column]
        assert isinstance(enc, CategoryEncoder) and isinstance(col, DiscreteSummary)
        counts = np.zeros(span.width, dtype=np.int64)
        if col.counts:
            codes = enc.codes(pd.Series(list(col.counts), dtype=object))
            np.add.at(counts, codes, np.fromiter(col.counts.values(), dtype=np.int64))
        if col.n_missing:
            counts[len(enc.categories_)] += col.n_missing
        out[span.column] = counts
    return out


class MatrixStream:
    """The training matrix of a streamed table, one epoch at a time, in bounded memory.

    What the torch generators' ``_fit_stream(stream, rng, progress)`` hook reads:
    ``n_rows`` (exact, from the metadata pass), :meth:`blocks` (shuffled blocks of a few
    read batches) or :meth:`minibatches`, and ``category_counts`` (see
    :func:`category_counts`). ``max_rows_held`` records the most transformed rows held at
    once (blocks plus the carried remainder).
    """

    def __init__(self, engine: Any, transformer: TableTransformer, n_rows: int, *,
                 shuffle_batches: int = DEFAULT_SHUFFLE_BATCHES, seed: int = 0,
                 category_counts: dict[str, np.ndarray] | None = None) -> None:
        self.engine, self.transformer, self.n_rows = engine, transformer, int(n_rows)
        self.shuffle_batches, self.seed = int(shuffle_batches), int(seed)
        self.category_counts = category_counts or {}
        self.max_rows_held = 0

    def blocks(self, epoch: int) -> Iterator[np.ndarray]:
        """Every row once as float32 matrices of at most ``shuffle_batches`` read batches,
        rows shuffled within each block; the read order shuffled per epoch (from the seed)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        held: list[np.ndarray] = []
        for matrix in self.engine.epoch_matrices(rng, self.transformer):
            held.append(matrix)
            del matrix
            self._note(sum(len(m) for m in held))
            if len(held) >= self.shuffle_batches:
                yield self._mix(held, rng)
                held = []
        if held:
            yield self._mix(held, rng)

    @staticmethod
    def _mix(held: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        block = held[0] if len(held) == 1 else np.concatenate(held)
        held.clear()
        return block[rng.permutation(len(block))]

    def minibatches(self, epoch: int, batch: int) -> Iterator[np.ndarray]:
        """The rows of :meth:`blocks` cut into ``batch``-row mini-batches; the last of the
        epoch may be shorter (``ceil(n_rows / batch)`` of them, as in memory)."""
        carry: np.ndarray | None = None
        for block in self.blocks(epoch):
            if carry is not None and len(carry):
                block = np.concatenate([carry, block])
                self._note(len(block))
            full = len(block) // batch * batch
            for i in range(0, full, batch):
                yield block[i:i + batch]
            carry = block[full:].copy()
            del block
        if carry is not None and len(carry):
            yield carry

    def _note(self, n_rows: int) -> None:
        self.max_rows_held = max(self.max_rows_held, int(n_rows))


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

    def epoch_matrices(self, rng: np.random.Generator, transformer: TableTransformer
                       ) -> Iterator[np.ndarray]:
        """Every row once as float32 matrices, one read batch at a time (see
        :meth:`ParquetSource.epoch_batches`)."""
        for batch in self.source.epoch_batches(rng):
            yield transformer.transform(batch).astype(np.float32)

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

    def epoch_matrices(self, rng: np.random.Generator, transformer: TableTransformer
                       ) -> Iterator[np.ndarray]:
        """Every row once, transformed, through Ray Data: the dataset is the list of files in
        an order drawn from ``rng`` (``ray.data.from_items``, one block per file); workers
        read each file with pyarrow in batches of ``batch_rows`` rows and transform them
        (``map_batches`` with a generator, so a worker holds one batch at a time), and
        ``iter_batches`` streams the float32 matrices to this process, where training runs.
        Blocks keep their order (``preserve_order``): an epoch's order depends on the seed.

        (``ray.data.read_parquet`` is not used: with the fsspec installed beside Ray 2.60 it
        fails on local paths, and reading with pyarrow gives the dtypes the schema checked.)
        """
        from ray.data import DataContext

        source = self.source

        def read(rows: pd.DataFrame) -> Iterator[dict[str, np.ndarray]]:
            for path in rows["path"]:
                one = ParquetSource(Path(path), batch_rows=source.batch_rows,
                                    columns=source.columns)
                for batch in one.batches():
                    yield {"x": transformer.transform(batch).astype(np.float32)}

        context = DataContext.get_current()
        before = context.execution_options.preserve_order
        context.execution_options.preserve_order = True
        try:
            items = [{"path": str(source.files[int(i)])}
                     for i in rng.permutation(len(source.files))]
            files = self.ray.data.from_items(items, override_num_blocks=len(items))
            dataset = files.map_batches(read, batch_format="pandas", batch_size=1)
            # batch_rows per batch even where Ray coalesces worker outputs into larger blocks
            for batch in dataset.iter_batches(batch_size=source.batch_rows,
                                              batch_format="numpy", prefetch_batches=1):
                if len(batch["x"]):
                    yield np.ascontiguousarray(batch["x"], dtype=np.float32)
        finally:
            context.execution_options.preserve_order = before

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
