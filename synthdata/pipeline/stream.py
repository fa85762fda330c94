"""Chunked sampling: a synthetic table of any size, one chunk in memory at a time.

Reproducibility rule (non-DP and DP alike: sampling is post-processing and uses the run's
``seed``, never the DP noise): chunk 0 is ``gen.sample(m, seed=seed)`` — exactly what an
unchunked run draws, so a table that fits in one chunk is unchanged — and chunk ``i > 0``
is ``gen.sample(m, seed=chunk_seed(seed, i))``. The same fitted model, seed and
``sample.chunk_rows`` therefore give the same rows; a different ``chunk_rows`` gives
different rows (same distribution), so ``chunk_rows`` is part of the recipe (it is in the
manifest's config). Regenerated ids continue across chunks (1..n, never restarting).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_CHUNK_ROWS = 100_000


def chunk_seed(seed: int, index: int) -> int:
    """The sampling seed of chunk ``index`` (chunk 0 keeps the run's seed)."""
    if index == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def chunk_sizes(n: int, chunk_rows: int) -> list[int]:
    """Row counts of the chunks of an ``n``-row table."""
    full, rest = divmod(int(n), int(chunk_rows))
    return [int(chunk_rows)] * full + ([rest] if rest else [])


def sample_chunks(gen: Any, n: int, chunk_rows: int, *, seed: int | None,
                  conditions: Mapping[str, Any] | None = None,
                  first: pd.DataFrame | None = None) -> Iterator[pd.DataFrame]:
    """Yield ``n`` synthetic rows in chunks of ``chunk_rows`` (the last may be shorter).

    ``first``: chunk 0 when the caller already drew it (the runner evaluates it).
    ``seed=None``: every chunk continues the model's own sampling stream (``gen.sample(m)``),
    as repeated unseeded calls do.
    """
    start = 0
    for index, m in enumerate(chunk_sizes(n, chunk_rows)):
        if index == 0 and first is not None:
            chunk = first
        else:
            chunk = gen.sample(m, conditions=conditions or None,
                               seed=None if seed is None else chunk_seed(seed, index))
            chunk = _continue_ids(gen, chunk, start)
        yield chunk
        start += m


def _continue_ids(gen: Any, chunk: pd.DataFrame, start: int) -> pd.DataFrame:
    """Regenerated id columns number on from ``start`` (each chunk would restart at 1)."""
    from synthdata.schema.model import ColumnKind
    from synthdata.transform.columns import RegeneratedEncoder

    encoders = getattr(getattr(gen, "transformer_", None), "encoders_", {}) or {}
    for name, enc in encoders.items():
        if (isinstance(enc, RegeneratedEncoder) and name in chunk.columns
                and enc.column.kind != ColumnKind.TEXT):
            chunk[name] = enc.generate(len(chunk), start=start + 1).to_numpy()
    return chunk
