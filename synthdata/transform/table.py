"""TableTransformer: the whole table to a float matrix with a typed layout, and back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthdata._rng import make_rng
from synthdata.errors import DataError, NotFittedError
from synthdata.schema.model import ColumnKind, Schema
from synthdata.transform.columns import (
    CategoryEncoder,
    NumericEncoder,
    NumericMethod,
    RegeneratedEncoder,
    Span,
    SpanRole,
)
from synthdata.transform.private import PrivateBudget, fit_private_encoders
from synthdata.types import Progress, no_progress

Encoder = NumericEncoder | CategoryEncoder | RegeneratedEncoder



class TableTransformer:
    """Reversible transformer for one table.

    ``fit`` learns one encoder per column; ``transform`` returns a float matrix whose
    column blocks are described by ``layout_`` (a tuple of :class:`Span`);
    ``inverse_transform`` returns a DataFrame with the schema's columns, values and dtypes.
    Ids are regenerated and free text is left empty: neither is learned.

    Parameters
    ----------
    schema:
        The table's schema.
    numeric:
        ``"mode"`` (mode-specific normalisation, for neural models) or ``"quantile"``
        (a monotone map to normal scores, for the mixture model).
    max_modes:
        Upper bound on mixture modes per column under ``"mode"``.
    """

    def __init__(self, schema: Schema, *, numeric: str = "mode", max_modes: int = 10,
                 discrete: str = "onehot") -> None:
        if discrete not in ("onehot", "ordinal", "auto"):
            raise DataError(f"discrete encoding must be 'onehot', 'ordinal' or 'auto', "
                            f"got {discrete!r}")
        self.schema, self.numeric, self.max_modes = schema, numeric, max_modes
        self.discrete = discrete

    def _make_encoder(self, name: str) -> Encoder:
        col = self.schema[name]
        if col.kind in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER, ColumnKind.DATETIME):
            return NumericEncoder(col, NumericMethod(self.numeric), self.max_modes)
        if col.kind.is_discrete:
            return CategoryEncoder(col, ordinal=self._is_ordinal(col))
        return RegeneratedEncoder(col)

    def _is_ordinal(self, col: Any) -> bool:
        """``"auto"``: ordinal scores for two-valued and numerically coded (ordered)
        categories, one-hot for nominal categories with more than two values."""
        if self.discrete != "auto":
            return self.discrete == "ordinal"
        cats = col.categories
        if cats is None or len(cats) <= 2 or col.kind.value == "boolean":
            return True
        return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cats)

    def fit(self, data: pd.DataFrame, *, rng: np.random.Generator | int | None = 0,
            progress: Progress = no_progress, ledger: Any = None,
            private: PrivateBudget | None = None) -> TableTransformer:
        """Learn every column's encoder.

        With ``private`` (a DP preprocessing budget) and a ``ledger``, encoders use only
        public schema facts and DP estimates charged to the ledger (see
        :mod:`synthdata.transform.private`); numbers then always use the quantile map.
        Without it, the fit is not private and the caller records that on its ledger.
        """
        self._check_columns(data)
        rng = make_rng(rng)
        if private is not None:
            if ledger is None:
                raise DataError("a private transformer fit needs the privacy ledger")
            self.numeric = "quantile"
            self.encoders_ = fit_private_encoders(self.schema, data, ledger, private,
                                                  ordinal=self.discrete == "ordinal")
            progress("transform.fit", 1, 1)
            self._build_layout()
            return self
        encoders: dict[str, Encoder] = {}
        names = self.schema.names
        for i, name in enumerate(names):
            encoders[name] = self._make_encoder(name).fit(data[name], rng)
            progress("transform.fit", i + 1, len(names))
        self.encoders_ = encoders
        self._build_layout()
        return self

    def make_encoder(self, name: str) -> Encoder:
        """A new, unfitted encoder for column ``name`` (as :meth:`fit` makes them)."""
        return self._make_encoder(name)

    def set_encoders(self, encoders: dict[str, Encoder]) -> TableTransformer:
        """Install fitted encoders, one per schema column in schema order (a fit made
        elsewhere, e.g. from a streaming summary); returns self."""
        if list(encoders) != self.schema.names:
            raise DataError(f"encoders for {list(encoders)} do not match the schema's columns "
                            f"{self.schema.names}")
        self.encoders_ = dict(encoders)
        self._build_layout()
        return self

    def _build_layout(self) -> None:
        spans: list[Span] = []
        for enc in self.encoders_.values():
            spans.extend(enc.spans())
        self.layout_: tuple[Span, ...] = tuple(spans)
        self.n_features_ = sum(s.width for s in spans)

    def _check_columns(self, data: pd.DataFrame) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(data).__name__}")
        missing = [c for c in self.schema.names if c not in data.columns]
        if missing:
            raise DataError(f"column(s) {missing} of schema {self.schema.name!r} are missing "
                            f"from the data; it has {list(data.columns)}")

    def _fitted(self) -> dict[str, Encoder]:
        if not hasattr(self, "encoders_"):
            raise NotFittedError("this TableTransformer is not fitted; call fit() first")
        return self.encoders_

    # -- layout helpers ------------------------------------------------------------------
    def span_slices(self) -> list[tuple[Span, slice]]:
        """Each span with its column slice in the transformed matrix."""
        out, pos = [], 0
        for span in self.layout_:
            out.append((span, slice(pos, pos + span.width)))
            pos += span.width
        return out

    def discrete_columns(self) -> list[str]:
        """Names of learned discrete (categorical/boolean) columns, in layout order."""
        return [s.column for s in self.layout_ if s.role == SpanRole.CATEGORY]

    def encoder(self, name: str) -> Encoder:
        encoders = self._fitted()
        if name not in encoders:
            raise DataError(f"no column {name!r}; columns are {list(encoders)}")
        return encoders[name]

    # -- transform ----------------------------------------------------------------------
    def transform(self, data: pd.DataFrame) -> np.ndarray:
        encoders = self._fitted()
        self._check_columns(data)
        blocks = [enc.transform(data[name]) for name, enc in encoders.items() if enc.width]
        if not blocks:
            return np.zeros((len(data), 0))
        return np.concatenate(blocks, axis=1)

    def inverse_transform(self, matrix: np.ndarray, *, coded: bool = False) -> pd.DataFrame:
        """The table from a transformed matrix.

        ``coded=True``: the matrix has one column per span of ``layout_`` instead, a
        one-hot (SOFTMAX) span given as the index of its hot slot (a model that draws
        codes need not build and argmax a one-hot block; float32 is accepted).
        """
        matrix = np.asarray(matrix)
        return self.frame_from_arrays(self.inverse_arrays(matrix, coded=coded), len(matrix))

    def inverse_arrays(self, matrix: np.ndarray, *, coded: bool = False) -> dict[str, np.ndarray]:
        """The learned columns from a transformed matrix as plain arrays, before their dtypes
        are restored: numbers as float64 (NaN when missing, days for datetimes), discrete
        columns as integer codes (``len(categories_)``: missing). Ids and text are not
        included. Rows map to rows, so a large sample can be inverted in blocks of rows and
        the blocks' arrays joined; :meth:`frame_from_arrays` then builds the table."""
        encoders = self._fitted()
        matrix = np.asarray(matrix)
        if not coded or matrix.dtype not in (np.float32, np.float64):
            matrix = matrix.astype(float, copy=False)
        width = len(self.layout_) if coded else self.n_features_
        if matrix.ndim != 2 or matrix.shape[1] != width:
            raise DataError(f"expected a matrix with {width} columns, got shape "
                            f"{matrix.shape}")
        pos, out = 0, {}
        for name, enc in encoders.items():
            if isinstance(enc, RegeneratedEncoder):
                continue
            step = len(enc.spans()) if coded else enc.width
            block = matrix[:, pos:pos + step]
            if isinstance(enc, CategoryEncoder):
                out[name] = enc.inverse_codes(block, coded=coded)
            else:
                out[name] = enc.inverse_values(block, coded=coded)
            pos += step
        return out

    def frame_from_arrays(self, arrays: dict[str, np.ndarray], n: int, *,
                          threads: int = 1) -> pd.DataFrame:
        """The table (schema columns, values and dtypes) from :meth:`inverse_arrays`' output
        for ``n`` rows; ids are numbered 1..n and free text left empty. ``threads > 1``
        builds the columns on that many threads (text columns are built by pyarrow, which
        releases the GIL); the frame is the same."""
        encoders = self._fitted()

        def build(name: str) -> pd.Series:
            enc = encoders[name]
            if isinstance(enc, RegeneratedEncoder):
                return enc.generate(n)
            if isinstance(enc, CategoryEncoder):
                return enc.from_codes(arrays[name]).reset_index(drop=True)
            return enc.restore(arrays[name]).reset_index(drop=True)

        if threads > 1 and len(encoders) > 1:
            from synthdata._threads import shared_pool

            out = dict(zip(encoders, shared_pool(threads).map(build, encoders), strict=True))
        else:
            out = {name: build(name) for name in encoders}
        # copy=False: one block per column, not copied into blocks by dtype (the columns
        # are new arrays nobody else holds)
        return pd.DataFrame(out, columns=self.schema.names, copy=False)

    # -- state --------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "max_modes": self.max_modes, "discrete": self.discrete,
                "encoders": {n: e.get_state() for n, e in self._fitted().items()}}

    @classmethod
    def from_state(cls, schema: Schema, state: dict[str, Any]) -> TableTransformer:
        tt = cls(schema, numeric=state["numeric"], max_modes=state["max_modes"],
                 discrete=state.get("discrete", "onehot"))
        tt.encoders_ = {n: tt._make_encoder(n).set_state(s) for n, s in state["encoders"].items()}
        tt._build_layout()
        return tt
