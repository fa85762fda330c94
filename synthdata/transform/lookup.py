"""Search a fixed sorted table for many values: ``np.searchsorted`` in a few vectorised passes.

Sampling maps millions of scores through the same small tables (quantile knots, category
edges, per-component cumulative probabilities). ``np.searchsorted`` pays a branchy binary
search per value (about 80 ns per value on a 900-knot table, 1M values: 85 ms per column).
A *guide table* (indexed search) splits the table's range into equal cells and stores, per
cell, how many table entries lie below it; a value then starts from its cell's count and
steps up while the next entry is still below it. Each step is one gather and one compare
over all values, and the number of steps is the most entries any three neighbouring cells
hold (computed once, bounded by refining the cells). The result equals ``np.searchsorted``
exactly for every finite value, infinities and values outside the table included (tested
against it); NaN falls back to ``np.searchsorted``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

MAX_STEPS = 6          # refine the cells until no value needs more steps than this
MAX_CELLS = 1 << 16    # cells per row at most (the table then takes rows x 512 KB)
NUMPY_STEPS = 24       # more steps than this (many tied entries): np.searchsorted is faster
DIRECT_WIDTH = 8       # a row this short: count the entries below each value directly


class GuideTable:
    """``np.searchsorted(table[r], values, side)`` for values each searched in a row ``r``.

    Parameters
    ----------
    table:
        Sorted (non-decreasing) finite rows, shape ``(rows, width)``; a 1-D table is one row.
    side:
        ``"left"`` (the count of entries ``< v``) or ``"right"`` (entries ``<= v``), as in
        ``np.searchsorted``.
    """

    def __init__(self, table: np.ndarray, *, side: Literal["left", "right"] = "left") -> None:
        rows = np.atleast_2d(np.asarray(table, dtype=np.float64))
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        if rows.size and (not np.isfinite(rows).all() or (np.diff(rows, axis=1) < 0).any()):
            raise ValueError("a guide table needs finite, sorted rows")
        self.side, self.rows, self.width = side, rows, rows.shape[1]
        k, w = rows.shape
        self.low = rows[:, 0].copy() if w else np.zeros(k)
        span = (rows[:, -1] - self.low) if w else np.zeros(k)
        cells = 1 << max(2, int(np.ceil(np.log2(max(2 * w, 2)))))
        while True:
            self.cells = min(cells, MAX_CELLS)
            self._build(span)
            if self.steps <= MAX_STEPS or cells >= MAX_CELLS or k * cells * 2 > 1 << 22:
                break
            cells *= 4
        # entry after each row's last: NaN, never below any value (not even +inf), so a
        # step never runs past its row
        self.padded = np.concatenate([rows, np.full((k, 1), np.nan)], axis=1).ravel()

    def _build(self, span: np.ndarray) -> None:
        k, w = self.rows.shape
        g = self.cells
        # cells far finer than the table's magnitude would lose the cell arithmetic to
        # rounding: such a row gets one cell (its values then step through the whole row)
        magnitude = np.maximum(np.abs(self.low), np.abs(self.low + span))
        width = span / g
        fine = (width > 1e-9 * magnitude) & (width > 1e-300)
        width = np.where(fine, width, np.maximum(span, 1.0) * 2.0 ** 60)
        self.scale = 1.0 / width
        # counts[r, j]: entries below the nominal boundary low + (j - 1) * width (j = 0: none)
        bounds = self.low[:, None] + np.arange(-1, g + 2)[None, :] * width[:, None]
        counts = np.empty((k, g + 3), dtype=np.int64)
        for r in range(k):
            counts[r] = np.searchsorted(self.rows[r], bounds[r], side=self.side)
        counts[:, 0] = 0          # values below the table (cell 0) start at 0
        counts[:, -1] = w         # values above it (last cell) may reach the end
        # a value in (computed) cell c lies between boundaries c - 1 and c + 2: rounding in
        # the cell arithmetic moves it by far less than one cell
        start = counts[:, :g]
        self.steps = int((counts[:, 3:g + 3] - start).max()) if w else 0
        self.start = (start + (np.arange(k) * (w + 1))[:, None]).astype(np.int64).ravel()

    def search(self, values: np.ndarray, row: np.ndarray | int = 0) -> np.ndarray:
        """Indices as ``np.searchsorted(table[row], values, side)`` (``row`` per value or
        one row for all), dtype ``intp``."""
        values = np.asarray(values)
        if self.width == 0:
            return np.zeros(values.shape, dtype=np.intp)
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        if self.steps > NUMPY_STEPS or np.isnan(values).any():
            return self._fallback(values, row)
        if self.width <= DIRECT_WIDTH and not np.ndim(row):
            return self._count_below(values, self.rows[int(row)])
        wide = values.astype(np.float64, copy=False)
        with np.errstate(over="ignore"):  # huge values: the last cell
            cell = wide - self.low[row]
            cell *= self.scale[row]
        np.clip(cell, 0, self.cells - 1, out=cell)
        index = cell.astype(np.intp)
        if np.ndim(row):
            index += np.asarray(row, dtype=np.intp) * self.cells
        elif row:
            index += int(row) * self.cells
        pos = self.start.take(index, mode="clip")  # in range: "clip" skips a buffered copy
        below = np.empty(values.shape, dtype=bool)
        entry = np.empty(values.shape, dtype=np.float64)
        for _ in range(self.steps):
            self.padded.take(pos, out=entry, mode="clip")
            if self.side == "left":
                np.less(entry, wide, out=below)
            else:
                np.less_equal(entry, wide, out=below)
            pos += below
        if np.ndim(row) or row:
            pos -= (np.asarray(row, dtype=np.intp) if np.ndim(row) else int(row)) * (self.width + 1)
        return pos

    def _count_below(self, values: np.ndarray, entries: np.ndarray) -> np.ndarray:
        wide = values.astype(np.float64, copy=False)
        count = np.zeros(values.shape, dtype=np.intp)
        below = np.empty(values.shape, dtype=bool)
        for entry in entries:
            if self.side == "left":
                np.greater(wide, entry, out=below)
            else:
                np.greater_equal(wide, entry, out=below)
            count += below
        return count

    def _fallback(self, values: np.ndarray, row: np.ndarray | int) -> np.ndarray:
        if not np.ndim(row):
            return np.searchsorted(self.rows[int(row)], values, side=self.side)
        out = np.empty(values.shape, dtype=np.intp)
        row = np.asarray(row)
        for r in np.unique(row):
            at = row == r
            out[at] = np.searchsorted(self.rows[r], values[at], side=self.side)
        return out


def interp_table(x: np.ndarray, y: np.ndarray) -> tuple[GuideTable, np.ndarray]:
    """The pieces of :func:`interp` for knots ``x`` (increasing) and values ``y``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    slopes = np.zeros(len(x))
    with np.errstate(over="ignore", divide="ignore"):  # knots closer than y can rise: inf
        slopes[:-1] = (y[1:] - y[:-1]) / (x[1:] - x[:-1])
    return GuideTable(x, side="right"), slopes


def interp(z: np.ndarray, x: np.ndarray, y: np.ndarray, guide: GuideTable,
           slopes: np.ndarray) -> np.ndarray:
    """``np.interp(z, x, y)`` for finite ``z`` (same arithmetic, so the same floats)."""
    index = guide.search(z)
    index -= 1
    np.clip(index, 0, len(x) - 1, out=index)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.subtract(z, x[index], dtype=np.float64)
        out *= slopes[index]
        out += y[index]
    bad = np.isnan(out)  # an infinite slope: np.interp's fall-backs, in its order
    if bad.any():
        j, at = index[bad], np.asarray(z, dtype=np.float64)[bad]
        nxt = np.minimum(j + 1, len(x) - 1)
        with np.errstate(invalid="ignore", over="ignore"):
            other = slopes[j] * (at - x[nxt]) + y[nxt]
        other = np.where(np.isnan(other) & (y[j] == y[nxt]), y[j], other)
        out[bad] = np.where(at == x[j], y[j], other)
    # np.interp: below the first knot the first value, above the last the last
    out[z < x[0]] = y[0]
    return out
