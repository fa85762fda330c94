"""Sequence generator (``"ar"``): an autoregressive model over each patient's ordered rows.

A child table (visits, labs) is a set of *histories*: the rows of one parent (patient) in time
order. The model reads a history one row at a time, so row k is drawn given rows < k and the
parent row, never as an independent row matched to a parent afterwards:

- **Encoding.** Rows go through the usual :class:`~synthdata.transform.table.TableTransformer`
  with ``numeric="quantile"``: every number becomes one normal score (a VALUE span) plus a
  missing indicator when nullable; categories, booleans and indicators are one-hot spans.
  The parent row (``context``) has its own quantile transformer. The time column
  (``order_column``, numeric) is learned as the *gap* to the previous row of the same history
  (the first row's gap is its own value), and restored by a cumulative sum: times never go
  backwards within a history.
- **Network.** A GRU (``hidden_dim`` units) whose initial state is an MLP of the encoded parent
  row; its input at step k is the previous row's encoding (zeros at the start), a start flag,
  the elapsed time (the previous row's time, scaled), the step number, the history's budget
  (time left until its ``time_limit``, rows left, time left per row left; each with a flag,
  hidden for a share of the training histories) and the parent encoding again. From the state at step k, one head gives: an end-of-history logit (so the number of
  rows per parent is learned), logits for every softmax span of row k, and for every number a
  mixture of ``n_mixture`` Gaussians over its normal score. Columns of one row are independent
  *given* the state (which carries the patient's past and parent).
- **Training.** Teacher forcing: the real previous row is the input; the loss per history is
  the end-of-history cross-entropy at every step up to its length, plus the row NLL
  (cross-entropy of the softmax spans, mixture NLL of the observed numbers — a missing number
  adds only its indicator's term). Adam, ``epochs`` passes over shuffled histories in batches of
  ``batch_size`` histories.
- **Sampling.** All histories of a call advance together, one step at a time (a batched tensor
  op per step, never a loop over patients): draw end-of-history, then every span of the row;
  histories that ended are masked. ``max_length`` (default: the longest training history) caps
  a history. ``min_length=1`` forbids an empty history (the relational synthesizer uses it:
  whether a parent has children is decided with the parent row, how many by this model).
  With ``calibrate``, a logit bias per code keeps the code mix of a long-format table (fitted
  on the model's own samples, and one more round from a pilot draw of the requested
  histories). Histories still past their limit are compressed to a share of their time to
  it drawn from the training histories', and time values that hold many training rows (an
  index date) keep their share of each code's rows. In an event table (rows of different
  codes rarely on one day), each history is also shifted in time as a whole toward its codes'
  training times (gaps and order kept).

Use on its own: ``fit(rows, groups=ids)`` (rows sorted by group then time) learns histories
without a parent; ``sample(n)`` then returns ``n`` histories (the group column, if in the
schema, numbered 1..n). Without ``groups`` every row is a history of length one and
``sample(n)`` returns ``n`` rows (a plain table generator). With a parent, the relational
synthesizer calls :meth:`SequenceGenerator.fit` with ``context=`` parent rows and
:meth:`SequenceGenerator.sample_histories` with the synthetic parents.

Differential privacy is refused (``ConfigError``): it would need DP-SGD with one clipped
gradient per *patient* through a recurrent network, which is not implemented yet; use the gmm
generator (DP-EM with patient-level accounting) for linked tables under privacy.
Conditional sampling on column values is not supported (``ConfigError``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from synthdata._rng import make_rng
from synthdata.errors import ConfigError, DataError
from synthdata.models.base import MIN_TRAINING_ROWS, BaseGenerator, Progress, no_progress
from synthdata.schema.model import ColumnKind, Schema
from synthdata.transform.table import TableTransformer

logger = logging.getLogger(__name__)

SAMPLE_CHUNK = 16_384      # histories advanced together per sampling pass
BUCKET_BATCHES = 16        # training batches per pool sorted by history length ...
BUCKET_MIN_LENGTH = 64     # ... when the longest history is longer than this (below, batches
# mixing short and long histories learned the length better: a 25-epoch fit on 2-or-6-row
# histories gave 3.2 rows to the 2-row kind with sorted batches)
# Batches of a few dozen histories gain nothing from a second intra-op thread, and on a busy
# 2-core machine fork-join made a GRU step 30x slower (measured: 11 ms with 1 thread, 360 ms
# with 2, batch 64 x 9 steps); a fixed count also keeps fits reproducible whatever the load.
FIT_THREADS = 1
SAMPLE_THREADS = 1
MIN_LOG_SCALE, MAX_LOG_SCALE = math.log(0.02), math.log(2.0)
# A number gets a "same as the previous row" head when at least this share of its rows repeat
# the previous row's value (nafld labs: hdl and chol of one visit carry one value, 49% of rows)
REPEAT_MIN_SHARE = 0.02
# A discrete value that at most this share of the histories holding it hold more than once
# (nafld's fib4 test: 0.7% of patients) is drawn at most once per synthetic history
ONCE_MAX_SHARE = 0.02
CALIBRATION_QUANTILES = 1001  # per number and code: quantiles of the real normal scores ...
MIN_CALIBRATION_ROWS = 30     # ... used when both sides have at least this many rows
MAX_CALIBRATION_CODES = 50    # the code column of the calibration has at most this many levels
# temperatures tried per code (fit_temperature), on a sample of this many training histories
TEMPERATURE_GRID = (0.4, 0.55, 0.7, 0.85, 1.0)
TEMPERATURE_HISTORIES = 4000
# the time gaps (calibrate): quantiles of the model's own gaps on a sample of the training
# histories mapped onto the training gaps' quantiles, per bucket of rows (GAP_BUCKETS: "step"
# = row index 0 (the first time), 1, 2-3, 4-7, ..., 32+; "code" = a history's first row,
# then the row's code level). Full nafld, one run each: step gave nafld2 history detection
# 0.715, nafld3 shapes 0.957; code 0.716, 0.948 (no map: 0.750, 0.956)
GAP_QUANTILES = 201
GAP_BUCKETS = "step"
GAP_STEP_BUCKETS = 7
# the numbers' calibration per code is also split by occurrence (a history's first row of a
# code vs its later ones; nafld: a first smoking flag is 1 in 38%, a later one in 43%)
VALUE_BY_OCCURRENCE = True
# the step input holds the history's budget: the time left until its limit (``time_limit``,
# e.g. futime for ``day <= futime``) and the rows left (the given length). Each is hidden
# (its flag 0) for this share of the training histories, so that sampling without a limit or
# without lengths stays on the training distribution. Without them 36% of the synthetic full
# nafld lab histories ended exactly on futime (real 5.6%): the gaps were drawn without
# knowing how much time was left, and histories that ran past it were compressed onto it.
BUDGET_HIDE_SHARE = 0.2
 # the code mix (calibrate): a logit bias per level of a long-format table's code column, so
# that the model's histories for a sample of the training parents (their lengths and limits)
# draw each code as often as the training rows (full nafld before: smoking rows 2.75% of the
# synthetic labs vs 1.75% real, stroke 7.6% of the events vs 6.0%); this many rounds
CODE_BIAS_ROUNDS = 2
# ... and, when sampling, a pilot draw for the synthetic parents themselves: the bias fitted on
# the training parents left the events' mix TV at 0.019 on the synthetic ones (dyslipidemia
# 28.9% vs 30.5%); the pilot's shares give one more round of the bias, then the rows are drawn
MIX_PILOT = True
PILOT_HISTORIES = 4000     # the pilot draws at most this many of the histories (random)
BUDGET_WIDTH = 6            # time left (scaled, log), has-limit flag, log rows left, flag, and
# log time left per row left (the typical gap that still fits)
# histories that still run past their limit are compressed toward their first time; the share
# of the time to the limit they then use is drawn from the top of the training histories'
# shares (as many of the top as overran), not set to 1 (every one on the limit: 27% of the
# synthetic full nafld lab histories with the budget input, real 5.6%)
USED_QUANTILES = 101
BUDGET_PER_ROW = True       # the time left per row left is an input (else that slot is 0)
# anchors: a time value holding at least this share of the training rows (nafld events: day 0,
# the index date, 10% of the rows, the 'nafld' diagnosis in 91% of its rows); the histories are
# drawn as gaps, which hit such a value by chance only (2.6% of the synthetic event rows).
# Per code, the rows nearest it are moved onto it where the history's order allows, as many
# as the code's training share at the anchor
ANCHOR_MIN_SHARE = 0.05
# history placement (calibrate): in a long-format table whose code is an event type (rows of
# different codes rarely share a time: at most this share of the rows after a history's first
# are at the previous row's time; nafld events 7.6%, nafld labs 52%: a visit's tests), each
# synthetic history is shifted in time as a whole by the median, over its rows, of the move
# that would put each row on its code's training times (the row's rank among its code's
# sampled times mapped onto that code's training quantiles), TIME_SHIFT_ROUNDS times. The
# gaps were calibrated per row index, not the absolute times: full nafld events had afib /
# ang/isc / heart failure dated 150-280 days late at the median, too many events in the three
# years after the index date. A whole-history shift keeps every gap, the order and same-day
# rows; moving each row onto its code's times (a rank map per code) matched the codes' times
# but tripled the gaps' KS distance (0.016 -> 0.058)
TIME_MAP_MAX_SAME_TIME = 0.25
TIME_SHIFT_ROUNDS = 4
# the targets are per code and history length (1, 2, 3+ rows; the code's all-lengths times
# where a cell has too few rows): with one map per code, the one-row histories took the whole
# move onto their code's times over all histories, and their time's KS distance to the real
# one-row histories grew from 0.058 to 0.087 (nafld events fitted alone, seed 0); per length,
# 0.034, and the whole-patient detection 0.539 (per code 0.553, no shift 0.558)
TIME_MAP_LENGTHS = 3


class SequenceGenerator(BaseGenerator):
    """Autoregressive GRU over each parent's ordered child rows (see the module docstring).

    Parameters
    ----------
    schema:
        The child table's learned columns (no key or foreign-key column).
    order_column:
        A numeric column holding each row's time; learned as gaps within a history. ``None``:
        rows keep the order they were given in.
    epochs, batch_size, lr:
        Passes over the histories, histories per step, Adam learning rate.
    max_steps:
        At most about this many optimisation steps (fewer epochs on large tables: nafld labs,
        11k histories, would take 26k steps at 150 epochs); ``None``: ``epochs`` passes.
    hidden_dim:
        GRU state and MLP width.
    n_mixture:
        Gaussian components per number (over its normal score).
    max_length:
        Longest history sampled; ``None``: the longest seen in training.
    calibrate:
        Map the sampled numbers onto the training marginals, per code of a long-format table
        and per occurrence of the code (quantile mapping of the normal scores; ranks within a
        code kept), and the time gaps onto the training gaps per row-index bucket (a map
        from the model's own gaps, :meth:`_fit_gap_calibration`). Not under DP (the
        generator refuses DP anyway).
    fit_temperature:
        With ``calibrate``: choose the temperature of the numbers per code (from
        ``TEMPERATURE_GRID``) so that a patient's consecutive values of one code step as far
        apart as in the training histories; ``value_temperature`` is then unused.
    value_temperature:
        Scale on the spread of every Gaussian of the numbers' mixtures when sampling, with
        ``calibrate`` (the calibration restores each number's marginal; a narrower draw
        keeps a patient's values closer together: on 3,000 nafld patients 0.7 gave history
        detection 0.78 against 0.81 at 1.0). Without ``calibrate`` the draw is not scaled.
    privacy:
        Must be ``None`` (DP is refused, see the module docstring).
    seed:
        Seed of every random draw of fit and sampling (local generators only).
    """

    name: ClassVar[str] = "ar"
    numeric_encoding = "quantile"

    def __init__(self, schema: Schema, *, order_column: str | None = None, epochs: int = 150,
                 batch_size: int = 64, lr: float = 3e-3, hidden_dim: int = 96, n_mixture: int = 3,
                 max_length: int | None = None, max_steps: int | None = 4000,
                 calibrate: bool = True, value_temperature: float = 0.7,
                 fit_temperature: bool = True,
                 privacy: Any = None, seed: int | None = 0) -> None:
        self.schema, self.order_column = schema, order_column
        self.calibrate, self.value_temperature = calibrate, value_temperature
        self.fit_temperature = fit_temperature
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.max_steps = max_steps
        self.hidden_dim, self.n_mixture, self.max_length = hidden_dim, n_mixture, max_length
        self.privacy, self.seed = privacy, seed

    # -- params -------------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        if self.privacy is not None:
            raise ConfigError(
                "ar: differential privacy is not available for the sequence generator (DP-SGD "
                "would need one clipped gradient per patient through the recurrent network, "
                "which is not implemented); run without privacy, or use generator 'gmm' "
                "(DP-EM with patient-level accounting) for linked tables under privacy")
        for key in ("epochs", "batch_size", "hidden_dim", "n_mixture"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ConfigError(f"ar: parameter {key} must be a positive integer, got {value!r}")
        for key in ("max_length", "max_steps"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, np.integer)) or value <= 0):
                raise ConfigError(f"ar: parameter {key} must be a positive integer or null, got "
                                  f"{value!r}")
        self._positive(lr=self.lr)
        self._positive(value_temperature=self.value_temperature)
        for key in ("calibrate", "fit_temperature"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"ar: parameter {key} must be true or false, got "
                                  f"{getattr(self, key)!r}")
        if self.order_column is not None:
            if self.order_column not in self.schema:
                raise ConfigError(f"ar: order_column {self.order_column!r} is not a column of "
                                  f"table {self.schema.name!r}; columns are {self.schema.names}")
            if self.schema[self.order_column].kind not in (ColumnKind.INTEGER, ColumnKind.CONTINUOUS):
                raise ConfigError(f"ar: order_column {self.order_column!r} must be an integer or "
                                  f"continuous column (a time in days, say), got "
                                  f"{self.schema[self.order_column].kind.value}")

    # -- fit ----------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, *, groups: Any = None, context: pd.DataFrame | None = None,
            context_schema: Schema | None = None, time_limit: np.ndarray | None = None,
            ledger: Any = None, progress: Progress = no_progress) -> Self:
        """Learn the histories in ``data``; returns self.

        ``groups``: each row's history (any labels; rows of one history must be contiguous
        and in time order — sorted by ``order_column`` when it is set). ``context``: one
        parent row per history, in order of first appearance of each group, described by
        ``context_schema``. ``time_limit``: one value per history (``inf``/NaN for none), the
        latest time its rows may take (the relational synthesizer passes the parent's end of
        follow-up for a declared ``day <= futime``); the model learns the gaps given the time
        left, as :meth:`sample_histories` gives it. Without ``groups`` each row is a history
        of length one.
        """
        from synthdata.models._torch import torch_threads

        self._validate_params()
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"fit() expects a pandas DataFrame, got {type(data).__name__}")
        self.schema.validate(data, where="training data")
        if len(data) < MIN_TRAINING_ROWS:
            raise DataError(f"the training data has {len(data)} row(s); at least "
                            f"{MIN_TRAINING_ROWS} are needed to fit a generator")
        data = data.reset_index(drop=True)
        lengths = self._lengths(data, groups)
        if context is not None:
            if context_schema is None:
                raise ConfigError("ar: fit(context=...) needs context_schema= describing its columns")
            if len(context) != len(lengths):
                raise DataError(f"ar: context has {len(context)} row(s) but the data has "
                                f"{len(lengths)} histories (one parent row per history)")
        limits = self._limits(time_limit, len(lengths))
        rng = make_rng(self.seed)
        self.ledger_ = self._make_ledger(ledger, len(data))
        self.constraints_ = None
        from synthdata.constraints.enforce import fit_enforcer

        self.enforcer_ = fit_enforcer(self.schema, data)  # rules over this table's own columns
        inner = data if self.enforcer_ is None else self.enforcer_.forward(data).reset_index(drop=True)
        starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
        times = None
        if self.order_column is not None and self.order_column in inner:
            times = pd.to_numeric(inner[self.order_column], errors="coerce").to_numpy(dtype=float)
            if np.any(np.diff(times)[np.diff(np.repeat(np.arange(len(lengths)), lengths)) == 0] < 0):
                raise DataError(f"ar: rows must be sorted by {self.order_column!r} within each "
                                "history; sort them before fit()")
            inner = inner.copy()
            inner[self.order_column] = _gaps(times, starts, lengths)
        self.transformer_ = TableTransformer(self._inner_schema(), numeric="quantile")
        self.transformer_.fit(inner, rng=rng, progress=progress)
        matrix = self.transformer_.transform(inner)
        self.has_context_ = context is not None
        self.context_schema_ = context_schema
        if context is not None:
            self.context_transformer_ = TableTransformer(context_schema, numeric="quantile")
            self.context_transformer_.fit(context.reset_index(drop=True), rng=rng)
            ctx = self.context_transformer_.transform(context.reset_index(drop=True))
        else:
            ctx = np.ones((len(lengths), 1))
        self.ledger_.record_not_private(
            "transform.fit", reason="bounds, categories and encodings learned from the training "
            "data without privacy", shapes_release=True)
        finite = times[~np.isnan(times)] if times is not None else np.array([])
        self.time_scale_ = float(np.std(finite)) if finite.size > 1 and np.std(finite) > 0 else 1.0
        self.max_length_ = int(lengths.max())
        self.time_used_ = _time_used(times, starts, lengths, limits) if times is not None else None
        self.is_single_ = groups is None
        self.n_train_rows_ = len(data)
        self.n_train_histories_ = len(lengths)
        self.repeat_columns_ = _repeat_columns(inner, self._inner_schema(), self.order_column,
                                               lengths)
        self._build_plan()
        self.time_anchors_ = (self._fit_anchors(times, matrix) if times is not None
                              and groups is not None else [])
        self.time_map_ = (self._fit_time_map(times, matrix, lengths) if times is not None
                          and groups is not None and self.calibrate else None)
        hist = np.repeat(np.arange(len(lengths)), lengths)
        self.once_slots_ = _once_slots(matrix, hist, self.plan_) if groups is not None else []
        self.once_mask_[self.once_slots_] = True
        repeat = self._repeats(matrix, hist)
        self.no_repeat_codes_ = self._no_repeat_codes(matrix, hist, repeat)
        self.calibration_ = (self._fit_calibration(matrix, repeat, hist if groups is not None
                                                    else None) if self.calibrate else None)
        self.code_temperature_: list[float] | None = None
        self.code_bias_: list[float] | None = None
        self.code_share_: list[float] | None = None
        with torch_threads(FIT_THREADS):
            self._train(matrix, ctx, lengths, starts, times, repeat, limits, rng, progress)
        if self.calibration_ is not None and self.fit_temperature and groups is not None:
            self.code_temperature_ = self._fit_temperature(matrix, ctx, lengths, limits, rng)
        self.gap_calibration_: dict[str, Any] | None = None
        if self.calibration_ is not None and groups is not None and self.order_value_ >= 0:
            self.gap_calibration_ = self._fit_gap_calibration(matrix, ctx, lengths, limits, rng)
        if self.calibration_ is not None and groups is not None and self.code_span_ >= 0:
            # last: the mix is measured as sampling draws it (temperatures, gap map)
            self.code_bias_ = self._fit_code_bias(matrix, ctx, lengths, limits, rng)
            width = self.plan_.soft[self.code_span_].width
            self.code_share_ = (np.bincount(self._codes_of(matrix), minlength=width)
                                / len(matrix)).tolist()
        self.time_map_check_: dict[str, float] | None = None
        if self.time_map_ is not None:   # last: measured on the histories as sampled
            self.time_map_ = self._check_time_map(times, matrix, ctx, lengths, limits, rng)
        self.ledger_.record_not_private(f"model.{self.name}.fit", reason="model parameters "
                                        "learned without privacy", shapes_release=True)
        self.sample_seed_ = int(rng.integers(0, 2**63 - 1))
        self._sample_rng = np.random.default_rng(self.sample_seed_)
        return self

    def _limits(self, time_limit: np.ndarray | None, n_hist: int) -> np.ndarray:
        """One time limit per history (``inf`` for none) from ``time_limit``."""
        if time_limit is None:
            return np.full(n_hist, np.inf)
        try:
            out = np.asarray(time_limit, dtype=float).reshape(-1)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"ar: time_limit must be numbers (one per history): {err}") from err
        if len(out) != n_hist:
            raise ConfigError(f"ar: time_limit has {len(out)} values for {n_hist} histories "
                              "(one per history)")
        return np.nan_to_num(out, nan=np.inf)

    def _repeats(self, matrix: np.ndarray, hist: np.ndarray) -> np.ndarray:
        """``(rows, values)``: 1 where a number repeats the previous row's of its history
        (both present, the number has a repeat head), else 0."""
        z = matrix[:, self.plan_.value_cols.numpy()]
        miss = self._missing(matrix)
        same = np.zeros_like(z, dtype=bool)
        if len(z) > 1:
            same[1:] = (hist[1:] == hist[:-1])[:, None] & (z[1:] == z[:-1]) & ~miss[1:] & ~miss[:-1]
        return (same & self.repeat_cols_.numpy()[None, :]).astype(np.float32)

    def _no_repeat_codes(self, matrix: np.ndarray, hist: np.ndarray, repeat: np.ndarray
                         ) -> list[int]:
        """Code levels (of a long-format table's code column) whose training rows, after a
        history's first, repeat the previous row's number in less than ``REPEAT_MIN_SHARE``
        of cases (the threshold of a number's repeat head): sampling never lets them repeat.
        The hurdle is learned over all rows, and on nafld labs its rare draws copied an hdl
        value into a smoking row (flags of 45 or 84 in 5-10% of the patients with two
        smoking rows; real smoking rows repeat the previous row in 1.6%)."""
        if self.code_span_ < 0 or not bool(self.repeat_cols_.any()):
            return []
        level = self._codes_of(matrix)
        later = np.r_[False, hist[1:] == hist[:-1]]
        any_repeat = repeat.max(axis=1) > 0.5
        out = []
        for c in range(self.plan_.soft[self.code_span_].width):
            sel = later & (level == c)
            # fewer later rows than that: no evidence of repeats, none drawn either (a code
            # only ever first in the training histories copied an 'a' value when drawn later)
            if sel.sum() < MIN_CALIBRATION_ROWS or any_repeat[sel].mean() < REPEAT_MIN_SHARE:
                out.append(c)
        return out

    def _missing(self, matrix: np.ndarray) -> np.ndarray:
        """``(rows, values)``: the number is missing (its indicator slot is on)."""
        slots = self.value_missing_.numpy()
        if not (slots >= 0).any():
            return np.zeros((len(matrix), len(slots)), dtype=bool)
        return (matrix[:, np.clip(slots, 0, None)] > 0.5) & (slots >= 0)[None, :]

    def _codes_of(self, matrix: np.ndarray) -> np.ndarray:
        """Each row's level of the calibration code span (0 when there is none)."""
        if self.code_span_ < 0:
            return np.zeros(len(matrix), dtype=np.int64)
        soft = self.plan_.soft[self.code_span_]
        return np.argmax(matrix[:, soft.start:soft.start + soft.width], axis=1)

    def _fit_calibration(self, matrix: np.ndarray, repeat: np.ndarray,
                         hist: np.ndarray | None = None) -> dict[str, Any]:
        """Per number (the time column aside) and code level, quantiles of the training
        rows' normal scores that do not repeat the previous row; level ``n_codes`` is all
        codes together (the fallback). NaN where fewer than ``MIN_CALIBRATION_ROWS`` rows.
        With a code column and ``hist``, also per occurrence (``"first"``: a history's first
        row of its code, ``"later"``: the code's later rows; :func:`_first_of_code`)."""
        z = matrix[:, self.plan_.value_cols.numpy()]
        ok = ~self._missing(matrix) & (repeat < 0.5)
        codes = self._codes_of(matrix)
        n_codes = self.plan_.soft[self.code_span_].width if self.code_span_ >= 0 else 0
        probs = np.linspace(0.0, 1.0, CALIBRATION_QUANTILES)

        def table(rows: np.ndarray) -> np.ndarray:
            q = np.full((self.n_values_, n_codes + 1, len(probs)), np.nan)
            for j in range(self.n_values_):
                if j == self.order_value_:
                    continue
                for c in range(n_codes + 1):
                    sel = rows & ok[:, j] & (codes == c if c < n_codes else True)
                    if sel.sum() >= MIN_CALIBRATION_ROWS:   # real values only (no interpolation)
                        q[j, c] = np.quantile(z[sel, j], probs, method="inverted_cdf")
            return q

        q = table(np.ones(len(z), dtype=bool))
        out: dict[str, Any] = {"probs": probs.tolist(), "quantiles": np.nan_to_num(q, nan=0.0).tolist(),
                               "fitted": (~np.isnan(q[..., 0])).tolist()}
        if n_codes and hist is not None and VALUE_BY_OCCURRENCE:
            first = _first_of_code(hist, codes)
            for name, rows in (("first", first), ("later", ~first)):
                qo = table(rows)
                out[name] = {"quantiles": np.nan_to_num(qo, nan=0.0).tolist(),
                             "fitted": (~np.isnan(qo[..., 0])).tolist()}
        return out

    def _calibrate(self, matrix: np.ndarray, owner: np.ndarray, repeat: np.ndarray) -> np.ndarray:
        """Quantile-map every number's sampled normal scores (per code level) onto the
        training rows' (:meth:`_fit_calibration`): the ranks of the synthetic values are
        kept, their marginal per code is the real one. Repeats then copy the previous row's
        calibrated value again, so a repeated value stays equal to the one it repeats."""
        cal = self.calibration_
        if cal is None or not len(matrix):
            return matrix
        probs = np.asarray(cal["probs"])
        cols = self.plan_.value_cols.numpy()
        miss = self._missing(matrix)
        codes = self._codes_of(matrix)
        maps = [(np.ones(len(matrix), dtype=bool), np.asarray(cal["quantiles"]),
                 np.asarray(cal["fitted"], dtype=bool))]
        if "first" in cal:   # per occurrence first; rows left over: the all-rows map
            first = _first_of_code(owner, codes)
            maps = [(first, np.asarray(cal["first"]["quantiles"]),
                     np.asarray(cal["first"]["fitted"], dtype=bool)),
                    (~first, np.asarray(cal["later"]["quantiles"]),
                     np.asarray(cal["later"]["fitted"], dtype=bool)), *maps]
        n_codes = maps[0][1].shape[1] - 1
        out = matrix.astype(np.float64)  # a copy; the stored scores are float64, and in
        # float32 they came back as 47.99999994 for a real 48 (0 of nafld's whole-number labs)
        for j in range(self.n_values_):
            if j == self.order_value_:
                continue
            todo = ~miss[:, j] & (repeat[:, j] < 0.5)
            for c in [*range(n_codes), n_codes]:
                for rows, q, fitted in maps:
                    sel = todo & rows & (codes == c) if c < n_codes else todo & rows
                    if not fitted[j, c] or sel.sum() < MIN_CALIBRATION_ROWS:
                        continue
                    z = matrix[sel, cols[j]]
                    u = (pd.Series(z).rank(method="average").to_numpy() - 0.5) / len(z)
                    # the nearest stored quantile: a real row's score, so values keep the
                    # real support (0/1 smoking flags, whole-number labs); interpolating
                    # between them gave 0.37 smokers once the value column had too many
                    # distinct values for a stepwise quantile map (full nafld: history
                    # detection 0.99, smoke features)
                    at = np.clip(np.rint(u * (len(probs) - 1)).astype(np.int64), 0, len(probs) - 1)
                    out[sel, cols[j]] = q[j, c][at]
                    todo &= ~sel
            if (repeat[:, j] > 0.5).any():   # repeats copy the (calibrated) value they repeat
                z = pd.Series(np.where(repeat[:, j] > 0.5, np.nan, out[:, cols[j]]))
                out[:, cols[j]] = z.groupby(owner).ffill().fillna(0.0).to_numpy()
        return out

    def _inner_schema(self) -> Schema:
        return self.schema if self.enforcer_ is None else self.enforcer_.inner_schema_

    def _lengths(self, data: pd.DataFrame, groups: Any) -> np.ndarray:
        if groups is None:
            return np.ones(len(data), dtype=np.int64)
        labels = pd.Series(np.asarray(groups)).reset_index(drop=True)
        if len(labels) != len(data):
            raise DataError(f"ar: groups has {len(labels)} entries for {len(data)} rows")
        if labels.isna().any():
            raise DataError(f"ar: {int(labels.isna().sum())} row(s) have no group (missing key)")
        change = np.r_[True, labels.to_numpy()[1:] != labels.to_numpy()[:-1]]
        if change.sum() != labels.nunique():
            raise DataError("ar: the rows of each group must be contiguous; sort the data by "
                            "group (then time) before fit()")
        return np.diff(np.r_[np.flatnonzero(change), len(labels)]).astype(np.int64)

    def _build_plan(self) -> None:
        """Index tensors over the layout: softmax spans, value columns and their missing slots."""
        import torch

        from synthdata.models._torch import SpanPlan
        from synthdata.transform.columns import SpanRole

        self.plan_ = plan = SpanPlan(self.transformer_.layout_)
        value_missing = []   # per value column: matrix column of its "missing" slot, or -1
        order_value = -1     # position among value columns of the (gap) time column
        pos = 0
        missing_at: dict[str, int] = {}
        for span in self.transformer_.layout_:
            if span.role == SpanRole.MISSING:
                missing_at[span.column] = pos + 1
            pos += span.width
        value_names = []
        pos = 0
        for span in self.transformer_.layout_:
            if span.role == SpanRole.VALUE:
                value_names.append(span.column)
                value_missing.append(missing_at.get(span.column, -1))
            pos += span.width
        if self.order_column in value_names:
            order_value = value_names.index(self.order_column)
        self.value_missing_ = torch.tensor(value_missing, dtype=torch.long)
        self.value_names_ = value_names
        self.repeat_cols_ = torch.tensor([c in self.repeat_columns_ for c in value_names],
                                         dtype=torch.bool)
        # the code span of a long-format table (its only categorical column, e.g. nafld labs'
        # test): numbers are calibrated per code
        self.code_span_ = -1
        cats = [c.name for c in self._inner_schema().columns if c.kind == ColumnKind.CATEGORICAL]
        for i, soft in enumerate(plan.soft):
            if len(cats) == 1 and soft.column == cats[0] and soft.role == SpanRole.CATEGORY \
                    and 2 <= soft.width <= MAX_CALIBRATION_CODES:
                self.code_span_ = i
        self.once_mask_ = torch.zeros(plan.n_features, dtype=torch.bool)
        self.once_mask_[list(getattr(self, "once_slots_", []))] = True
        self.soft_mask_ = torch.ones(plan.n_features)
        self.soft_mask_[plan.value_cols] = 0.0
        self.order_value_ = order_value
        self.n_values_ = int(plan.value_cols.numel())
        if order_value >= 0:
            state = self.transformer_.encoder(self.order_column).get_state()
            self.gap_knots_ = torch.tensor(state["knots"], dtype=torch.float32)
            self.gap_zmid_ = torch.tensor(state["zmid"], dtype=torch.float32)
            self.gap_range_ = (float(state["min"]), float(state["max"]))

    def _n_context(self) -> int:
        return self.context_transformer_.n_features_ if self.has_context_ else 1

    def _build(self, generator: Any) -> Any:
        from synthdata.models._torch import build_module

        n_features, n_ctx = self.plan_.n_features, self._n_context()
        hidden, k = int(self.hidden_dim), int(self.n_mixture)
        n_mix = (3 * k + 1) * self.n_values_
        n_out = n_features + 1 + n_mix
        n_mem = self._n_memory()
        n_count = int(self.plan_.soft_cols.numel())
        _, cw, _, mw = self._code_memory_span()
        n_in = n_features + n_count + cw * mw + 3 + BUDGET_WIDTH + n_ctx
        return build_module(lambda: _ARNet(n_in, n_ctx, hidden, n_out,
                                           n_mix, n_mem, n_features, self._code_memory_span()),
                            generator)

    def _code_memory_span(self) -> tuple[int, int, int, int]:
        """Where the per-code memory term reads (:meth:`ARNet.cond`): the code span's first
        matrix column and width, and its block of the code memory (start, width); zeros
        without a code span (a long-format table's test column)."""
        if self.code_span_ < 0 or not self.n_values_:
            return 0, 0, 0, 0
        soft = self.plan_.soft[self.code_span_]
        return soft.start, soft.width, self.code_span_ * (self.n_values_ + 1), self.n_values_ + 1

    def _n_memory(self) -> int:
        """Width of the code memory: per softmax span, the last numbers and a seen flag."""
        return max(1, self.plan_.n_soft * (self.n_values_ + 1)) if self.n_values_ else 1

    def _step_inputs(self, prev: Any, elapsed: Any, step: Any, budget: Any, ctx: Any = None
                     ) -> Any:
        """The input at each step: previous row with the history's code counts so far
        (:func:`_code_counts`), start flag, elapsed time, step number, the budget
        (:meth:`_budget`) and (last, so that sampling can project it once) the parent row."""
        import torch

        start = (step == 0).to(prev.dtype)
        parts = [prev, start.unsqueeze(-1), (elapsed / self.time_scale_).unsqueeze(-1),
                 (torch.log1p(step.to(prev.dtype)) / 3.0).unsqueeze(-1), budget]
        return torch.cat(parts if ctx is None else [*parts, ctx], dim=-1)

    def _budget(self, elapsed: Any, limit: Any, rows_left: Any) -> Any:
        """``(..., BUDGET_WIDTH)``: the time left until the history's limit (``limit -
        elapsed``, scaled, clipped, and as a log), a flag that there is a limit, ``log1p`` of
        the rows left including this step's, and a flag that the length is known. ``limit``:
        ``inf`` for none; ``rows_left``: negative for unknown. Last, ``log1p`` of the time left
        per row left (with both known): the gap that still fits."""
        import torch

        has_limit = torch.isfinite(limit)
        left = torch.where(has_limit, limit - elapsed.double(), torch.zeros_like(limit)).float()
        left = left / float(self.time_scale_)
        has_rows = rows_left >= 0
        rows = torch.where(has_rows, torch.log1p(rows_left.clamp(min=0).float()) / 3.0,
                           torch.zeros_like(left))
        per_row = torch.where(has_rows & has_limit & BUDGET_PER_ROW,
                              left.clamp(min=0.0) / rows_left.clamp(min=1), torch.zeros_like(left))
        return torch.stack([left.clamp(-3.0, 10.0), torch.log1p(20.0 * left.clamp(min=0.0)) / 3.0,
                            has_limit.float(), rows, has_rows.float(),
                            torch.log1p(20.0 * per_row) / 3.0], dim=-1)

    def _split_heads(self, out: Any) -> tuple[Any, Any, Any, Any, Any]:
        """eos logit, span logits, mixture logits / means / log-scales ``(..., values, k)``
        and the repeat logit of every number ``(..., values)`` (masked off, ``-inf``, for
        numbers without a repeat head)."""
        import torch

        nf, v, k = self.plan_.n_features, self.n_values_, int(self.n_mixture)
        eos = out[..., 0]
        logits = out[..., 1:1 + nf]
        mix = out[..., 1 + nf:].reshape(*out.shape[:-1], v, 3 * k + 1)
        w, mu, raw = mix[..., :k], mix[..., k:2 * k], mix[..., 2 * k:3 * k]
        log_scale = MIN_LOG_SCALE + (MAX_LOG_SCALE - MIN_LOG_SCALE) * torch.sigmoid(raw)
        repeat = torch.where(self.repeat_cols_, mix[..., 3 * k], -torch.inf)
        return eos, logits, w, mu, log_scale, repeat

    def _train(self, matrix: np.ndarray, ctx: np.ndarray, lengths: np.ndarray, starts: np.ndarray,
               times: np.ndarray | None, repeat: np.ndarray, limits: np.ndarray,
               rng: np.random.Generator, progress: Progress) -> None:
        import torch

        from synthdata._rng import make_torch_generator
        from synthdata.models._torch import Adam

        gen = make_torch_generator(rng)
        net = self._build(gen)
        n_hist = len(lengths)
        hist = np.repeat(np.arange(n_hist), lengths)
        # rows stay flat (rows, features); each batch is padded to its own longest history
        # (:func:`_padded`), not the whole table to the longest one (nafld labs: 513 rows)
        flat = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        codes = self.plan_.codes(flat)
        known = np.zeros(len(matrix), dtype=np.float32)
        if times is not None:  # a missing time keeps the last known one of its history
            known = pd.Series(times).groupby(hist).ffill().fillna(0.0).to_numpy(dtype=np.float32)
        x_known = torch.from_numpy(known)
        mem = torch.from_numpy(_code_memory(codes.numpy(), matrix[:, self.plan_.value_cols.numpy()],
                                            hist, self._n_memory()))
        counts = _code_counts(matrix[:, self.plan_.soft_cols.numpy()], hist)
        _, cw, _, _ = self._code_memory_span()
        if cw:   # the step input also holds the latest numbers of every code (see _latest_values)
            counts = np.concatenate([counts, _latest_values(
                codes.numpy()[:, self.code_span_], matrix[:, self.plan_.value_cols.numpy()],
                hist, cw)], axis=1)
        counts = torch.from_numpy(counts)
        x_rep = torch.from_numpy(repeat)
        x_ctx = torch.from_numpy(np.ascontiguousarray(ctx, dtype=np.float32))
        x_len = torch.from_numpy(lengths)
        x_start = torch.from_numpy(starts.astype(np.int64))
        x_limit = torch.from_numpy(limits.astype(np.float64))
        opt = Adam(net.parameters(), lr=float(self.lr))
        batch = min(int(self.batch_size), n_hist)
        steps = math.ceil(n_hist / batch)
        epochs = int(self.epochs)
        if self.max_steps is not None:  # large tables: a budget of optimisation steps
            epochs = max(1, min(epochs, math.ceil(int(self.max_steps) / steps)))
        self.epochs_run_ = epochs
        self.history_: list[dict[str, float]] = []
        started = time.perf_counter()
        net.train()
        pool = BUCKET_BATCHES if int(lengths.max()) > BUCKET_MIN_LENGTH else 1
        for epoch in range(epochs):
            batches = _length_batches(torch.randperm(n_hist, generator=gen).numpy(), lengths,
                                      batch, pool, torch.randperm(steps, generator=gen).numpy())
            total = 0.0
            for idx in batches:
                time_b, (rows_b, codes_b, mem_b, count_b, rep_b) = _padded(
                    x_known, (flat, codes, mem, counts, x_rep), x_start[idx], x_len[idx])
                # the budget is hidden for a share of the histories (BUDGET_HIDE_SHARE)
                hide = torch.rand((len(idx), 2), generator=gen) < BUDGET_HIDE_SHARE
                lim_b = torch.where(hide[:, 0], torch.full_like(x_limit[idx], math.inf),
                                    x_limit[idx])
                loss = self._history_loss(net, rows_b, codes_b, time_b, x_ctx[idx],
                                          x_len[idx], mem_b, count_b, rep_b,
                                          lim_b, hide[:, 1]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
            self.history_.append({"epoch": epoch + 1, "loss": total / steps})
            progress("ar.fit", epoch + 1, epochs)
        logger.debug("ar fit: %d epochs, last loss %.4f", epochs, self.history_[-1]["loss"])
        self.fit_seconds_ = time.perf_counter() - started
        net.eval()
        self.net_ = net

    def _history_loss(self, net: Any, rows: Any, codes: Any, elapsed: Any, ctx: Any,
                      lengths: Any, mem: Any, counts: Any, repeat: Any, limit: Any,
                      no_rows: Any) -> Any:
        """Per-history NLL: end-of-history at steps 0..len, rows 0..len-1 (teacher forcing).
        A number is a hurdle: "repeats the previous row's value" (a Bernoulli, where the
        number has a repeat head and the previous row has it) or, if not, the mixture."""
        import torch

        b, _, nf = rows.shape
        t_run = int(lengths.max())
        rows, codes = rows[:, :t_run], codes[:, :t_run]
        steps = t_run + 1
        prev = torch.cat([rows.new_zeros((b, 1, nf + counts.shape[-1])),
                          torch.cat([rows, counts[:, :t_run]], dim=-1)], dim=1)
        step = torch.arange(steps).expand(b, steps)
        rows_left = torch.where(no_rows.unsqueeze(1), torch.full_like(step, -1),
                                lengths.unsqueeze(1) - step)
        budget = self._budget(elapsed[:, :steps], limit.unsqueeze(1).expand(b, steps), rows_left)
        inp = self._step_inputs(prev, elapsed[:, :steps], step, budget,
                                ctx.unsqueeze(1).expand(b, steps, ctx.shape[1]))
        out = net(inp, ctx)                                                   # (b, steps, n_out)
        cur = torch.cat([rows, rows.new_zeros((b, 1, nf))], dim=1) * self.soft_mask_
        mem = torch.cat([mem, mem.new_zeros((b, 1, mem.shape[-1]))], dim=1)
        eos, logits, w, mu, log_scale, rep_logit = self._split_heads(net.cond(out, cur, mem))
        k_idx = torch.arange(steps).unsqueeze(0)
        live = k_idx <= lengths.unsqueeze(1)                                  # eos term exists
        is_row = k_idx < lengths.unsqueeze(1)                                 # a row is emitted
        target = (~is_row).to(eos.dtype)
        eos_nll = torch.nn.functional.binary_cross_entropy_with_logits(eos, target, reduction="none")
        loss = (eos_nll * live).sum(dim=1)
        r_logits = logits[:, :t_run].reshape(b * t_run, nf)
        r_rows = rows.reshape(b * t_run, nf)
        nll = self.plan_.cross_entropy(r_logits, codes.reshape(b * t_run, -1))
        if self.n_values_:
            x = r_rows[:, self.plan_.value_cols].unsqueeze(-1)                  # (n, v, 1)
            ls = log_scale[:, :t_run].reshape(b * t_run, self.n_values_, -1)
            m = mu[:, :t_run].reshape(b * t_run, self.n_values_, -1)
            lw = torch.log_softmax(w[:, :t_run].reshape(b * t_run, self.n_values_, -1), dim=-1)
            comp = lw - 0.5 * ((x - m) * torch.exp(-ls)).square() - ls - 0.5 * math.log(2 * math.pi)
            value_nll = -torch.logsumexp(comp, dim=-1)                          # (n, v)
            has_missing = self.value_missing_ >= 0
            observed = torch.ones_like(value_nll)
            if has_missing.any():
                miss = r_rows[:, self.value_missing_.clamp(min=0)] > 0.5
                observed = (~(miss & has_missing)).to(value_nll.dtype)
            if bool(self.repeat_cols_.any()):
                r = rep_logit[:, :t_run].reshape(b * t_run, self.n_values_)
                eligible = self._repeat_eligible(prev[:, :t_run].reshape(b * t_run, -1)[:, :nf],
                                                 torch.arange(t_run).repeat(b))
                rep = repeat[:, :t_run].reshape(b * t_run, -1)
                r = torch.where(eligible, r, torch.zeros_like(r))
                hurdle = torch.nn.functional.binary_cross_entropy_with_logits(
                    r, rep, reduction="none") * eligible
                value_nll = value_nll * (1.0 - rep) + hurdle
            nll = nll + (value_nll * observed).sum(dim=1)
        loss = loss + (nll.reshape(b, t_run) * is_row[:, :t_run]).sum(dim=1)
        return loss

    def _log_temperature(self, level: Any = None) -> Any:
        """Per number, the log of the scale on its mixture's spread when sampling: for the
        calibrated numbers the fitted temperature of the row's code level (``level``, one
        per row; :meth:`_fit_temperature`) or ``value_temperature``; 1 for the time gap (not
        calibrated: a narrower draw made nafld histories too regular, the gaps' spread and
        longest gap were the whole-patient detector's best features) and without
        calibration. Shape ``(values, 1)``, or ``(rows, values, 1)`` with fitted levels."""
        import torch

        out = torch.zeros(self.n_values_)
        if self.calibration_ is None:
            return out.unsqueeze(-1)
        temps = getattr(self, "code_temperature_", None)
        if temps is not None and level is not None:
            out = torch.log(torch.tensor(temps, dtype=torch.float32))[level.clamp(
                max=len(temps) - 1)].unsqueeze(1).repeat(1, self.n_values_)
        else:
            out[:] = math.log(float(self.value_temperature))
        if self.order_value_ >= 0:
            out[..., self.order_value_] = 0.0
        return out.unsqueeze(-1)

    def _repeat_eligible(self, prev: Any, step: Any) -> Any:
        """``(rows, values)``: a row may repeat the previous row's number (not the first row,
        the previous row has the number, the number has a repeat head)."""
        ok = self.repeat_cols_.unsqueeze(0) & (step > 0).unsqueeze(1)
        has_missing = self.value_missing_ >= 0
        if bool(has_missing.any()):
            ok = ok & ~((prev[:, self.value_missing_.clamp(min=0)] > 0.5) & has_missing)
        return ok

    # -- sample -------------------------------------------------------------------------
    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None,
               seed: int | None = None) -> pd.DataFrame:
        """``n`` histories (``n`` rows when fitted without groups), rows in history order.

        A generator fitted with a parent ``context`` samples through
        :meth:`sample_histories` (it needs the parent rows).
        """
        self.check_is_fitted()
        if conditions:
            raise ConfigError("ar: conditional sampling on column values is not supported by the "
                              "sequence generator; condition through the parent rows instead")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ConfigError(f"number of histories to sample must be a positive integer, got {n!r}")
        if self.has_context_:
            raise ConfigError("ar: this generator was fitted with parent rows; call "
                              "sample_histories(context=parent rows) instead of sample(n)")
        out, _ = self.sample_histories(n=int(n), min_length=1, seed=seed)  # no empty history
        return out

    def sample_histories(self, context: pd.DataFrame | None = None, *, n: int | None = None,
                         min_length: int = 0, time_limit: np.ndarray | None = None,
                         lengths: np.ndarray | None = None,
                         seed: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """One history per parent row of ``context`` (or ``n`` histories without a parent).

        Returns the rows (schema columns, history after history, in time order) and each
        row's history index (0-based position in ``context``). ``min_length=1`` gives every
        parent at least one row. ``lengths`` (one positive integer per history): the number
        of rows of each history, drawn elsewhere (the relational synthesizer takes the child
        count sampled with the parent row); the end-of-history step is then not drawn (capped
        by ``max_length`` when that parameter is set). ``time_limit`` (one value per history,
        ``inf`` or NaN for none, e.g. the end of follow-up): without ``lengths`` a history
        ends before its first row whose ``order_column`` time would pass the limit (rows
        within ``min_length`` are kept); with ``lengths`` the times of a history that passes
        it are compressed toward its first time (:func:`_fit_times`). ``sample_histories()`` continues the stream; ``seed=s`` makes it
        reproducible.
        """


        self.check_is_fitted()
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        if self.has_context_:
            if context is None:
                raise ConfigError("ar: this generator was fitted with parent rows; pass context=")
            ctx = self.context_transformer_.transform(context.reset_index(drop=True))
        else:
            if n is None:
                raise ConfigError("ar: pass n= (the number of histories) when there is no parent")
            ctx = np.ones((int(n), 1))
        n_hist = len(ctx)
        max_len = int(self.max_length or self.max_length_)
        if self.is_single_:
            min_length, max_len = 1, 1
        limit = np.full(n_hist, np.inf) if time_limit is None else \
            np.nan_to_num(np.asarray(time_limit, dtype=float), nan=np.inf)
        if len(limit) != n_hist:
            raise ConfigError(f"ar: time_limit has {len(limit)} values for {n_hist} histories")
        if lengths is not None:
            want = np.asarray(lengths)
            if len(want) != n_hist or not np.issubdtype(want.dtype, np.integer) or \
                    (want.size and want.min() < 1):
                raise ConfigError(f"ar: lengths must be {n_hist} positive integers (one per "
                                  "history)")
            want = want.astype(np.int64)
            if self.max_length is not None:
                want = np.minimum(want, int(self.max_length))
            if self.is_single_:
                want = np.ones(n_hist, dtype=np.int64)
            max_len = int(want.max()) if want.size else 0
        want_len = None if lengths is None else want
        bias = None
        if MIX_PILOT and getattr(self, "code_share_", None) is not None and n_hist:
            pick = np.sort(rng.choice(n_hist, min(n_hist, PILOT_HISTORIES), replace=False))
            pilot, _ = self._sample_matrix(ctx[pick], rng, min_length, max_len, limit[pick],
                                           None if want_len is None else want_len[pick])
            bias = self._pilot_bias(pilot)
        kept = self.code_bias_
        if bias is not None:   # one more round of the code bias on these parents
            self.code_bias_ = bias
        try:
            matrix, owner = self._sample_matrix(ctx, rng, min_length, max_len, limit, want_len)
        finally:
            self.code_bias_ = kept
        inner = self.transformer_.inverse_transform(matrix.astype(np.float64))
        if self.order_value_ >= 0:  # gaps back to times: cumulative sum within each history
            gaps = pd.to_numeric(inner[self.order_column], errors="coerce").to_numpy(dtype=float)
            times = self._times(gaps, self._codes_of(matrix), owner, limit, lengths is not None,
                                rng, self.time_map_)
            inner[self.order_column] = times
            col = self._inner_schema()[self.order_column]
            if col.dtype.startswith("int") and not np.isnan(inner[self.order_column]).any():
                inner[self.order_column] = inner[self.order_column].round().astype(col.dtype)
        out = inner if self.enforcer_ is None else self.enforcer_.inverse(inner)
        return out[self.schema.names].reset_index(drop=True), owner

    def _times(self, gaps: np.ndarray, level: np.ndarray, owner: np.ndarray, limit: np.ndarray,
               given: bool, rng: np.random.Generator, time_map: Mapping[str, Any] | None
               ) -> np.ndarray:
        """The sampled rows' times from their drawn gaps (``level``: each row's code; rows in
        history order). ``time_map``: shift each history (:func:`_shift_histories`).
        ``given``: the histories' lengths were given (those that pass their limit are
        compressed to a drawn share of it, :func:`_fit_times`)."""
        # one quantile map holds the first rows' times (negative before an index date) and
        # the later gaps (>= 0): a gap drawn below 0 is a same-time row, never a step back
        later = np.r_[False, owner[1:] == owner[:-1]]
        times = _cumulate(np.where(later & (gaps < 0), 0.0, gaps), owner)
        if time_map is not None:   # each history placed so that its codes fall on their times
            times = _shift_histories(times, owner, level, limit, time_map, rng)
        if given or time_map is not None:  # the rows must fit before the limit
            times = _fit_times(times, owner, limit, self.time_used_ if given else None,
                               rng if given else None)
        for anchor in self.time_anchors_:
            times = _snap_to_anchor(times, owner, level, limit, anchor)
        return times

    def _check_time_map(self, times: np.ndarray, matrix: np.ndarray, ctx: np.ndarray,
                        lengths: np.ndarray, limits: np.ndarray, rng: np.random.Generator
                        ) -> dict[str, Any] | None:
        """Keep the history shift (:meth:`_fit_time_map`, :func:`_shift_histories`) only
        where it brings the model's histories closer to the training ones: on a sample of the
        training parents (their lengths and limits), the mean over codes (weighted by their
        training rows) of the KS distance of each code's times plus that of its rows' gaps to
        the previous row, with and without the shift. The shift moves the first toward the
        training times and keeps the gaps, except where it leaves a history past its limit
        (compressed, :func:`_fit_times`) or a time anchor moves a row; ``time_map_check_``
        holds both distances (nafld events fitted alone, seed 0: 0.110 without, 0.094 with)."""
        hist = np.repeat(np.arange(len(lengths)), lengths)
        pick = np.sort(rng.choice(len(lengths), min(len(lengths), TEMPERATURE_HISTORIES),
                                  replace=False))
        seed = int(rng.integers(0, 2**63 - 1))
        synth, owner = self._sample_matrix(ctx[pick], np.random.default_rng(seed), 1,
                                           int(lengths[pick].max()), limits[pick], lengths[pick])
        gaps = pd.to_numeric(self.transformer_.inverse_transform(synth.astype(np.float64))[
            self.order_column], errors="coerce").to_numpy(dtype=float)
        mine = np.isin(hist, pick)
        real = (times[mine], self._codes_of(matrix[mine]), hist[mine])
        level = self._codes_of(synth)
        scores = {}
        for name, candidate in (("without", None), ("with", self.time_map_)):
            t = self._times(gaps, level, owner, limits[pick], True, np.random.default_rng(seed),
                            candidate)
            scores[name] = _time_distance(real, (t, level, owner))
        logger.debug("ar: history shift, time distance without %.4f, with %.4f",
                     scores["without"], scores["with"])
        self.time_map_check_ = scores
        return self.time_map_ if scores["with"] < scores["without"] else None

    def _sample_matrix(self, ctx: np.ndarray, rng: np.random.Generator, min_length: int,
                       max_len: int, limit: np.ndarray, want: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The encoded rows of one history per row of ``ctx`` (calibrated) and each row's
        history index."""
        import torch

        from synthdata._rng import make_torch_generator
        from synthdata.models._torch import torch_threads

        gen = make_torch_generator(rng)
        mats, owners, repeats = [], [], []
        with torch_threads(SAMPLE_THREADS), torch.inference_mode():
            for lo in range(0, len(ctx), SAMPLE_CHUNK):
                c = torch.from_numpy(np.ascontiguousarray(ctx[lo:lo + SAMPLE_CHUNK], dtype=np.float32))
                lim = torch.from_numpy(limit[lo:lo + SAMPLE_CHUNK].astype(np.float64))
                chunk_len = None if want is None else torch.from_numpy(want[lo:lo + SAMPLE_CHUNK])
                m, owner, again = self._sample_chunk(c, gen, min_length, max_len, lim, chunk_len)
                mats.append(m)
                owners.append(owner + lo)
                repeats.append(again)
        matrix = np.concatenate(mats) if mats else np.zeros((0, self.plan_.n_features))
        owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        if repeats:
            matrix = self._calibrate(matrix, owner, np.concatenate(repeats))
        return matrix, owner

    def _fit_temperature(self, matrix: np.ndarray, ctx: np.ndarray, lengths: np.ndarray,
                         limits: np.ndarray, rng: np.random.Generator) -> list[float] | None:
        """Per code level (one level without a code column), the sampling temperature of the
        calibrated numbers from ``TEMPERATURE_GRID`` whose histories step like the training
        histories: the mean absolute change of a number's normal score between consecutive
        rows of one history with the same code (a patient's hdl to their next hdl). The
        calibration fixes each code's marginal; this fixes how far a patient's values wander
        (nafld labs: blood pressure within-patient std 15.9 vs 12.7 real at 0.7)."""
        hist = np.repeat(np.arange(len(lengths)), lengths)
        real = self._step_sizes(matrix, hist)
        if np.isnan(real).all():
            return None
        pick = rng.choice(len(lengths), min(len(lengths), TEMPERATURE_HISTORIES), replace=False)
        pick.sort()
        seed = int(rng.integers(0, 2**63 - 1))
        best = np.full(len(real), float(self.value_temperature))
        err = np.full(len(real), np.inf)
        for temp in TEMPERATURE_GRID:
            self.code_temperature_ = [float(temp)] * len(real)
            synth, owner = self._sample_matrix(
                ctx[pick], np.random.default_rng(seed), 1, int(lengths[pick].max()),
                limits[pick], lengths[pick])
            gap = np.abs(self._step_sizes(synth, owner) - real)
            better = gap < err   # NaN (too few pairs) never wins
            best[better], err[better] = temp, gap[better]
        self.code_temperature_ = None
        return best.tolist()

    def _fit_anchors(self, times: np.ndarray, matrix: np.ndarray) -> list[dict[str, Any]]:
        """Time values holding at least ``ANCHOR_MIN_SHARE`` of the training rows, each with
        the share of every code level's rows at it (one level without a code column)."""
        ok = ~np.isnan(times)
        if not ok.any():
            return []
        values, counts = np.unique(times[ok], return_counts=True)
        level = self._codes_of(matrix)
        width = self.plan_.soft[self.code_span_].width if self.code_span_ >= 0 else 1
        out = []
        for v in values[counts >= ANCHOR_MIN_SHARE * ok.sum()]:
            at = np.bincount(level[times == v], minlength=width)
            rows = np.maximum(np.bincount(level[ok], minlength=width), 1)
            out.append({"value": float(v), "share": (at / rows).tolist()})
        return out

    def _fit_time_map(self, times: np.ndarray, matrix: np.ndarray, lengths: np.ndarray
                      ) -> dict[str, Any] | None:
        """The targets of the history shift (:func:`_shift_histories`): per level of the
        code column, ``CALIBRATION_QUANTILES`` quantiles of the training rows' absolute times
        (``None`` for a level with fewer than ``MIN_CALIBRATION_ROWS`` rows), over all rows
        (``quantiles``) and per history length 1, 2, ... ``TIME_MAP_LENGTHS``+ rows
        (``by_length``). ``None``: no code
        column, or rows share their previous row's time too often (``TIME_MAP_MAX_SAME_TIME``:
        the tests of one lab visit, whose code does not set the visit's time)."""
        if self.code_span_ < 0 or len(times) < 2:
            return None
        hist = np.repeat(np.arange(len(lengths)), lengths)
        later = hist[1:] == hist[:-1]
        if not later.any() or np.mean(times[1:][later] == times[:-1][later]) \
                > TIME_MAP_MAX_SAME_TIME:
            return None
        level = self._codes_of(matrix)
        probs = np.linspace(0.0, 1.0, CALIBRATION_QUANTILES)
        bucket = np.minimum(lengths[hist], TIME_MAP_LENGTHS) - 1
        ok = ~np.isnan(times)

        def per_code(rows: np.ndarray) -> list[list[float] | None]:
            out: list[list[float] | None] = []
            for c in range(self.plan_.soft[self.code_span_].width):
                t = times[rows & (level == c) & ok]
                out.append(np.quantile(t, probs, method="inverted_cdf").tolist()
                           if len(t) >= MIN_CALIBRATION_ROWS else None)
            return out

        quantiles = per_code(np.ones(len(times), dtype=bool))
        if all(q is None for q in quantiles):
            return None
        return {"probs": probs.tolist(), "quantiles": quantiles, "rounds": TIME_SHIFT_ROUNDS,
                "by_length": [per_code(bucket == b) for b in range(TIME_MAP_LENGTHS)]}

    def _fit_code_bias(self, matrix: np.ndarray, ctx: np.ndarray, lengths: np.ndarray,
                       limits: np.ndarray, rng: np.random.Generator) -> list[float] | None:
        """Per level of the code column, a logit bias added when sampling so that the model's
        histories for a sample of the training parents (their lengths and time limits) hold
        each code as often as those parents' training rows (``CODE_BIAS_ROUNDS`` rounds of
        ``log(real share / synthetic share)``). The model drew nafld's smoking rows 1.6x as
        often as the real labs (whose TV was 8x gmm's)."""
        width = self.plan_.soft[self.code_span_].width
        hist = np.repeat(np.arange(len(lengths)), lengths)
        pick = rng.choice(len(lengths), min(len(lengths), TEMPERATURE_HISTORIES), replace=False)
        pick.sort()
        seed = int(rng.integers(0, 2**63 - 1))
        mine = np.isin(hist, pick)
        real = np.bincount(self._codes_of(matrix[mine]), minlength=width) / max(1, mine.sum())
        bias = np.zeros(width)
        for _ in range(CODE_BIAS_ROUNDS):
            self.code_bias_ = bias.tolist()
            synth, _ = self._sample_matrix(ctx[pick], np.random.default_rng(seed), 1,
                                           int(lengths[pick].max()), limits[pick], lengths[pick])
            got = np.bincount(self._codes_of(synth), minlength=width) / max(1, len(synth))
            ok = (real > 0) & (got > 0)
            bias[ok] += np.log(real[ok] / got[ok])
        self.code_bias_ = None
        return bias.tolist()

    def _gap_buckets(self, level: np.ndarray, step: np.ndarray, mode: str) -> np.ndarray:
        """Each row's bucket of the gap calibration: ``"code"``: 0 for a history's first row
        (its time), 1 + the code level after; ``"step"``: 0, 1, 2-3, 4-7, ... by row index."""
        if mode == "code":
            return np.where(step == 0, 0, 1 + level)
        return np.minimum(np.floor(np.log2(np.maximum(step, 1))).astype(np.int64) + (step > 0),
                          GAP_STEP_BUCKETS - 1)

    def _fit_gap_calibration(self, matrix: np.ndarray, ctx: np.ndarray, lengths: np.ndarray,
                             limits: np.ndarray, rng: np.random.Generator
                             ) -> dict[str, Any] | None:
        """The time gaps' quantile map, per bucket (:meth:`_gap_buckets`): the model samples
        histories for a sample of the training parents (their lengths), and the quantiles of
        its gaps' normal scores are mapped onto the training gaps'. Applied inside the
        sampling loop (:meth:`_map_gaps`), so later rows see the mapped elapsed time. The
        gap was the one sampled number not calibrated, and the gaps were the whole-patient
        detector's best features on full nafld labs (a patient's gap spread, longest gap)
        and pbcseq. The map sees no time limit: histories compressed to fit before one
        (:func:`_fit_times`) keep the compression. ``None`` when no bucket has
        ``MIN_CALIBRATION_ROWS`` gaps on both sides."""
        mode = GAP_BUCKETS if self.code_span_ >= 0 else "step"   # "code" needs a code column
        n_buckets = (1 + self.plan_.soft[self.code_span_].width) if mode == "code" \
            else GAP_STEP_BUCKETS
        pick = rng.choice(len(lengths), min(len(lengths), TEMPERATURE_HISTORIES), replace=False)
        pick.sort()
        synth, owner = self._sample_matrix(
            ctx[pick], np.random.default_rng(int(rng.integers(0, 2**63 - 1))), 1,
            int(lengths[pick].max()), limits[pick], lengths[pick])
        hist = np.repeat(np.arange(len(lengths)), lengths)
        probs = np.linspace(0.0, 1.0, GAP_QUANTILES)
        model = np.zeros((n_buckets + 1, len(probs)))
        real = np.zeros_like(model)
        fitted = np.zeros(n_buckets + 1, dtype=bool)
        sides = []
        for m, h in ((synth, owner), (matrix, hist)):
            step = np.arange(len(h)) - np.searchsorted(h, h)   # row index within its history
            ok = ~self._missing(m)[:, self.order_value_]
            z = m[:, self.plan_.value_cols.numpy()[self.order_value_]]
            sides.append((z, ok, self._gap_buckets(self._codes_of(m), step, mode), step))
        for b in range(n_buckets + 1):   # the last bucket: every row after a history's first
            sel = [ok & (bk == b if b < n_buckets else st > 0) for _, ok, bk, st in sides]
            if min(int(x.sum()) for x in sel) < MIN_CALIBRATION_ROWS:
                continue
            model[b] = np.quantile(sides[0][0][sel[0]], probs)
            real[b] = np.quantile(sides[1][0][sel[1]], probs)
            fitted[b] = True
        if not fitted.any():
            return None
        return {"mode": mode, "model": model.tolist(), "real": real.tolist(),
                "fitted": fitted.tolist()}

    def _map_gaps(self, z: Any, level: Any, k: int) -> Any:
        """The gap scores ``z`` (one per row at row index ``k``) through the fitted quantile
        map of their bucket (a bucket without enough rows: the pooled later rows', or none)."""
        import torch

        cal = getattr(self, "gap_calibration_", None)
        if cal is None:
            return z
        if getattr(self, "_gap_map", (None,))[0] is not cal:   # tensors once per map
            self._gap_map = (cal, torch.tensor(cal["model"], dtype=torch.float32),
                             torch.tensor(cal["real"], dtype=torch.float32),
                             torch.tensor(cal["fitted"], dtype=torch.bool))
        _, model, real, fitted = self._gap_map
        n_buckets = model.shape[0] - 1
        step = np.full(z.shape[0], k)
        bucket = torch.from_numpy(self._gap_buckets(level.numpy(), step, cal["mode"]))
        bucket = torch.where(fitted[bucket], bucket, torch.full_like(bucket, n_buckets))
        use = fitted[bucket] & ((bucket < n_buckets) | (k > 0))
        xs, ys = model[bucket], real[bucket]                       # (rows, quantiles)
        i = torch.searchsorted(xs, z.unsqueeze(1).contiguous()).squeeze(1).clamp(1, xs.shape[1] - 1)
        x0, x1 = xs.gather(1, (i - 1)[:, None])[:, 0], xs.gather(1, i[:, None])[:, 0]
        y0, y1 = ys.gather(1, (i - 1)[:, None])[:, 0], ys.gather(1, i[:, None])[:, 0]
        frac = ((z - x0) / (x1 - x0).clamp(min=1e-9)).clamp(0.0, 1.0)
        return torch.where(use, y0 + frac * (y1 - y0), z)

    def _step_sizes(self, matrix: np.ndarray, hist: np.ndarray) -> np.ndarray:
        """Per code level: mean absolute change of the calibrated numbers' normal scores
        between consecutive same-code rows of a history (NaN with too few pairs)."""
        level = self._codes_of(matrix)
        n_levels = max(1, self.plan_.soft[self.code_span_].width if self.code_span_ >= 0 else 1)
        cols = [j for j in range(self.n_values_) if j != self.order_value_]
        out = np.full(n_levels, np.nan)
        if not cols:
            return out
        z = pd.DataFrame(matrix[:, self.plan_.value_cols.numpy()[cols]])
        z = z.mask(self._missing(matrix)[:, cols])
        step = (z.groupby([hist, level], sort=False).diff().abs()).mean(axis=1)
        for c in range(n_levels):
            d = step[level == c].dropna()
            if len(d) >= MIN_CALIBRATION_ROWS:
                out[c] = float(d.mean())
        return out

    def _sample_chunk(self, ctx: Any, gen: Any, min_length: int, max_len: int, limit: Any,
                      lengths: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of ``len(ctx)`` histories, one batched step per row position. Histories that
        ended leave the batch (their state rows are dropped), so a few long histories do not
        keep the whole batch stepping; rows are collected per step and put back in history
        order at the end. Also returns which numbers repeat the previous row's."""
        import torch

        net, plan = self.net_, self.plan_
        b, nf = ctx.shape[0], plan.n_features
        h = net.initial(ctx)[0]
        prepared = net.prepare(ctx)
        prev = torch.zeros((b, nf))
        soft_cols = plan.soft_cols
        counts = torch.zeros((b, int(soft_cols.numel())))   # code counts so far
        use_repeat = bool(self.repeat_cols_.any())
        once = self.once_mask_ if bool(self.once_mask_.any()) else None
        taken = torch.zeros((b, nf), dtype=torch.bool)   # once-only values already drawn
        code_bias = self._code_bias_logits()
        elapsed = torch.zeros(b)
        idx = torch.arange(b)                 # history of each row of the live state
        has_missing = self.value_missing_ >= 0
        n_values = self.n_values_
        last = torch.zeros((b, nf, n_values))  # code memory: last numbers per one-hot slot
        code_0, code_w, _, _ = self._code_memory_span()
        seen = torch.zeros((b, nf))
        rows, owners = [], []
        for k in range(max_len):
            n = idx.numel()
            if n == 0:
                break
            step = torch.full((n,), k, dtype=torch.long)
            prev_in = torch.cat([prev, torch.log1p(counts)], dim=1)
            if code_w:   # the latest numbers of every code (rows < k), as in training
                prev_in = torch.cat([prev_in, torch.cat(
                    [last[:, code_0:code_0 + code_w], seen[:, code_0:code_0 + code_w, None]],
                    dim=-1).reshape(n, -1)], dim=1)
            rows_left = lengths[idx] - k if lengths is not None else torch.full((n,), -1)
            budget = self._budget(elapsed, limit[idx], rows_left)
            out, h = net.step(self._step_inputs(prev_in, elapsed, step, budget), h, prepared)
            eos, logits = self._split_heads(out)[:2]
            logits = logits + code_bias
            if once is not None:
                logits = logits.masked_fill(taken & once, -torch.inf)
            if lengths is not None:   # the number of rows is given: no end-of-history draw
                alive = lengths[idx] > k
            elif k >= min_length:
                alive = ~(torch.rand(n, generator=gen) < torch.sigmoid(eos))
            else:
                alive = torch.ones(n, dtype=torch.bool)
            row = torch.zeros((n, nf))
            slots = None
            if plan.n_soft:
                hot = plan.sample_codes(logits, gen)
                slots = plan.starts.unsqueeze(0) + hot                       # (n, spans)
                row.scatter_(1, slots, 1.0)
            if self.n_values_:   # numbers given the state and this row's discrete values
                mem = torch.zeros((n, self._n_memory()))
                if slots is not None:
                    rows_at = torch.arange(n).unsqueeze(1)
                    mem = torch.cat([last[rows_at, slots], seen[rows_at, slots].unsqueeze(-1)],
                                    dim=-1).reshape(n, -1)
                _, _, w, mu, log_scale, rep_logit = self._split_heads(net.cond(out, row, mem))
                level = hot[:, self.code_span_] if self.code_span_ >= 0 and slots is not None \
                    else torch.zeros(n, dtype=torch.long)
                z = _draw_mixture(w, mu, log_scale + self._log_temperature(level), gen)
                if use_repeat:   # "same as the previous row" where the hurdle says so
                    again = self._repeat_eligible(prev, step) & (
                        torch.rand(z.shape, generator=gen) < torch.sigmoid(rep_logit))
                    if self.no_repeat_codes_:   # codes whose rows never repeat the previous
                        again = again & ~torch.isin(level, torch.tensor(
                            self.no_repeat_codes_)).unsqueeze(1)
                    z = torch.where(again, prev[:, plan.value_cols], z)
                if has_missing.any():
                    miss = (row[:, self.value_missing_.clamp(min=0)] > 0.5) & has_missing
                    z = torch.where(miss, torch.zeros_like(z), z)
                    if use_repeat:
                        again = again & ~miss
                if self.order_value_ >= 0:
                    z[:, self.order_value_] = self._map_gaps(z[:, self.order_value_], level, k)
                    gap = self._gap_value(z[:, self.order_value_])
                    elapsed = elapsed + (gap if k == 0 else gap.clamp(min=0.0))
                    if lengths is None and k >= min_length:  # past the limit: it has ended
                        alive = alive & (elapsed.double() <= limit[idx])
                row[:, plan.value_cols] = z
                if slots is not None:
                    last[rows_at, slots] = z.unsqueeze(1).expand(-1, slots.shape[1], -1)
                    seen[rows_at, slots] = 1.0
            counts = counts + row[:, soft_cols]
            if once is not None:
                taken = taken | (row > 0.5) & once
            flags = again.to(row.dtype) if use_repeat and self.n_values_ else \
                torch.zeros((n, n_values))
            if bool(alive.all()):
                rows.append(torch.cat([row, flags], dim=1))
                owners.append(idx)
                prev = row
                continue
            keep = torch.nonzero(alive).squeeze(1)
            row, idx = row[keep], idx[keep]
            rows.append(torch.cat([row, flags[keep]], dim=1))
            owners.append(idx)
            h, prev, elapsed, counts = h[keep], row, elapsed[keep], counts[keep]
            taken = taken[keep]
            last, seen = last[keep], seen[keep]
            prepared = (prepared[0][keep], prepared[1][keep], *prepared[2:])
        if not rows:
            return (np.zeros((0, nf), dtype=np.float32), np.zeros(0, dtype=np.int64),
                    np.zeros((0, n_values), dtype=np.float32))
        owner = torch.cat(owners).numpy().astype(np.int64)
        order = np.argsort(owner, kind="stable")   # rows were appended step by step
        both = torch.cat(rows).numpy()[order]
        return both[:, :nf], owner[order], both[:, nf:]

    def _pilot_bias(self, pilot: np.ndarray) -> list[float] | None:
        """The code bias plus one round of ``log(training share / pilot share)`` per code
        level (levels with at least ``MIN_CALIBRATION_ROWS`` pilot and expected rows), or
        ``None`` when there is no fitted code mix or it is already within 1% (in log terms)."""
        share = getattr(self, "code_share_", None)
        if share is None or self.code_span_ < 0 or not len(pilot):
            return None
        real = np.asarray(share, dtype=float)
        got = np.bincount(self._codes_of(pilot), minlength=len(real))[:len(real)]
        ok = (got >= MIN_CALIBRATION_ROWS) & (real * len(pilot) >= MIN_CALIBRATION_ROWS)
        if not ok.any():
            return None
        step = np.zeros(len(real))
        step[ok] = np.log(real[ok] / (got[ok] / len(pilot)))
        if np.abs(step).max() < 0.01:
            return None
        base = np.asarray(self.code_bias_ if self.code_bias_ is not None else np.zeros(len(real)))
        return (base + step).tolist()

    def _code_bias_logits(self) -> Any:
        """The code mix's logit bias (:meth:`_fit_code_bias`) over the whole row, zeros
        outside the code span and without a fitted bias."""
        import torch

        out = torch.zeros(self.plan_.n_features)
        if getattr(self, "code_bias_", None) is not None:
            soft = self.plan_.soft[self.code_span_]
            out[soft.start:soft.start + soft.width] = torch.tensor(self.code_bias_,
                                                                   dtype=torch.float32)
        return out

    def _gap_value(self, z: Any) -> Any:
        """A gap's normal score back to time units (piecewise-linear quantile map)."""
        import torch

        knots, zmid = self.gap_knots_, self.gap_zmid_
        if knots.numel() == 1:
            return torch.full_like(z, float(knots[0]))
        i = torch.searchsorted(zmid, z.contiguous()).clamp(1, knots.numel() - 1)
        z0, z1, k0, k1 = zmid[i - 1], zmid[i], knots[i - 1], knots[i]
        x = k0 + (z - z0) * (k1 - k0) / (z1 - z0).clamp(min=1e-9)
        return x.clamp(*self.gap_range_)

    # -- state --------------------------------------------------------------------------
    def _get_extra(self) -> dict[str, Any]:
        return {"has_context": self.has_context_, "is_single": self.is_single_,
                "max_length": self.max_length_, "time_scale": self.time_scale_,
                "context_schema": self.context_schema_.to_dict() if self.has_context_ else None,
                "context_transformer": (self.context_transformer_.get_state()
                                        if self.has_context_ else None),
                "enforcer": self.enforcer_.get_state() if self.enforcer_ is not None else None,
                "n_train_histories": self.n_train_histories_,
                "repeat_columns": list(self.repeat_columns_), "calibration": self.calibration_,
                "once_slots": list(self.once_slots_),
                "code_temperature": self.code_temperature_,
                "gap_calibration": self.gap_calibration_,
                "no_repeat_codes": list(self.no_repeat_codes_),
                "budget_input": BUDGET_WIDTH, "code_bias": self.code_bias_,
                "code_share": self.code_share_,
                "time_used": self.time_used_, "time_anchors": self.time_anchors_,
                "time_map": self.time_map_, "time_map_check": self.time_map_check_,
                "history": self.history_, "fit_seconds": self.fit_seconds_}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        from synthdata.constraints.enforce import ConstraintEnforcer

        if extra.get("budget_input") != BUDGET_WIDTH:
            raise DataError("this 'ar' model archive was written by an older synthdata whose "
                            "sequence model did not take the time and rows left as inputs; "
                            "refit the model and save it again")
        self.has_context_, self.is_single_ = bool(extra["has_context"]), bool(extra["is_single"])
        self.max_length_, self.time_scale_ = int(extra["max_length"]), float(extra["time_scale"])
        self.n_train_histories_ = extra.get("n_train_histories")
        self.repeat_columns_ = list(extra.get("repeat_columns", []))
        self.calibration_ = extra.get("calibration")
        self.once_slots_ = [int(i) for i in extra.get("once_slots", [])]
        self.code_temperature_ = extra.get("code_temperature")
        self.code_bias_ = extra.get("code_bias")
        self.code_share_ = extra.get("code_share")
        self.time_used_ = extra.get("time_used")
        self.time_anchors_ = list(extra.get("time_anchors", []))
        self.time_map_ = extra.get("time_map")   # absent in older archives: no map
        self.time_map_check_ = extra.get("time_map_check")
        self.gap_calibration_ = extra.get("gap_calibration")   # absent in older archives
        self.no_repeat_codes_ = [int(c) for c in extra.get("no_repeat_codes", [])]
        self.history_, self.fit_seconds_ = extra.get("history", []), extra.get("fit_seconds")
        self.enforcer_ = None
        if extra.get("enforcer") is not None:
            self.enforcer_ = ConstraintEnforcer.from_state(self.schema, extra["enforcer"])
        self.context_schema_ = None
        if self.has_context_:
            self.context_schema_ = Schema.from_dict(extra["context_schema"], where="ar archive")
            self.context_transformer_ = TableTransformer.from_state(self.context_schema_,
                                                                    extra["context_transformer"])
        # load_generator built the transformer on the table schema: rebuild it on the schema
        # the rules reparameterise (the same columns when there are none)
        self.transformer_ = TableTransformer.from_state(self._inner_schema(),
                                                        self.transformer_.get_state())
        self._build_plan()

    def _get_torch_state(self) -> dict[str, Any]:
        return {"net": self.net_.state_dict()}

    def _set_torch_state(self, state: dict[str, Any]) -> None:
        import torch

        net = self._build(torch.Generator().manual_seed(0))  # weights overwritten below
        net.load_state_dict(state["net"])
        net.eval()
        self.net_ = net


def _net_class() -> type:
    import torch
    from torch import nn

    class ARNet(nn.Module):
        """GRU over steps; the parent row gives the initial state and is an input at every step."""

        def __init__(self, n_in: int, n_ctx: int, hidden: int, n_out: int, n_mix: int,
                     n_mem: int, n_features: int,
                     code_at: tuple[int, int, int, int] = (0, 0, 0, 0)) -> None:
            super().__init__()
            self.init = nn.Linear(n_ctx, hidden)
            self.gru = nn.GRU(n_in, hidden, batch_first=True)
            self.body = nn.Linear(hidden + n_ctx, hidden)
            self.out = nn.Linear(hidden, n_out)
            # the numbers of a row given its discrete values (a lab value given its test): an
            # additive term on the mixture parameters from the row's one-hot codes
            self.vcond = nn.Linear(n_features, n_mix, bias=False)
            # ... and on the last numbers of earlier rows with the same discrete value (the
            # patient's previous hdl when this row is an hdl test: :func:`_code_memory`)
            self.vmem = nn.Linear(n_mem, n_mix, bias=False)
            # ... and on the code span's memory with one weight per code (a long-format lab
            # table: the previous smoking flag predicts the next the other way round, a
            # previous hdl the next the same way; one shared weight could not do both)
            self.code_at = code_at
            self.vcode = nn.Linear(code_at[1] * code_at[3], n_mix, bias=False) \
                if code_at[1] else None

        def cond(self, out: torch.Tensor, codes: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
            """``out`` with the mixture parameters shifted by the row's discrete one-hots
            (``codes``: a row with its value columns zero) and its code memory ``mem``."""
            if self.vcond.out_features == 0:
                return out
            extra = self.vcond(codes) + self.vmem(mem)
            if self.vcode is not None:
                c0, cw, m0, mw = self.code_at
                code = codes[..., c0:c0 + cw].unsqueeze(-1) * mem[..., m0:m0 + mw].unsqueeze(-2)
                extra = extra + self.vcode(code.flatten(-2))
            return torch.cat([out[..., :-extra.shape[-1]], out[..., -extra.shape[-1]:] + extra], dim=-1)

        def initial(self, ctx: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.init(ctx)).unsqueeze(0)

        def heads(self, h: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.body(torch.cat([h, ctx], dim=-1))))

        def forward(self, inp: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
            hs, _ = self.gru(inp, self.initial(ctx))
            return self.heads(hs, ctx.unsqueeze(1).expand(-1, hs.shape[1], -1))

        def prepare(self, ctx: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """For sampling: the parent row's share of the input and head projections, computed
            once per batch instead of at every step (the parent is half the input width)."""
            n_ctx, hidden = self.init.in_features, self.gru.hidden_size
            w_ih = self.gru.weight_ih_l0
            gi_ctx = torch.addmm(self.gru.bias_ih_l0, ctx, w_ih[:, -n_ctx:].T)
            body_ctx = torch.addmm(self.body.bias, ctx, self.body.weight[:, hidden:].T)
            return (gi_ctx, body_ctx, w_ih[:, :-n_ctx].T.contiguous(),
                    self.gru.weight_hh_l0.T.contiguous(), self.body.weight[:, :hidden].T.contiguous())

        def step(self, x: torch.Tensor, h: torch.Tensor, prepared: tuple[torch.Tensor, ...]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
            """One GRU step (torch's gate equations) and the heads; ``x`` without the parent
            columns, ``h`` of shape ``(batch, hidden)``."""
            gi_ctx, body_ctx, w_x, w_hh, w_body = prepared
            gi = torch.addmm(gi_ctx, x, w_x)
            gh = torch.addmm(self.gru.bias_hh_l0, h, w_hh)
            i_r, i_z, i_n = gi.chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = n + z * (h - n)
            return self.out(torch.relu(torch.addmm(body_ctx, h, w_body))), h

    return ARNet


def _ARNet(*args: Any) -> Any:  # a factory: torch stays out of import time
    return _net_class()(*args)


def _draw_mixture(w: Any, mu: Any, log_scale: Any, gen: Any) -> Any:
    """One normal score per number from its Gaussian mixture ``(rows, values, k)``."""
    import torch

    g = -torch.log(-torch.log(torch.rand(w.shape, generator=gen).clamp_(1e-10, 1 - 1e-7)))
    comp = (w + g).max(dim=-1, keepdim=True).indices
    m = mu.gather(-1, comp).squeeze(-1)
    sd = log_scale.gather(-1, comp).squeeze(-1).exp()
    return m + sd * torch.randn(m.shape, generator=gen)


def _padded(known: Any, per_row: tuple[Any, ...], starts: Any, lengths: Any
            ) -> tuple[Any, tuple[Any, ...]]:
    """One batch of histories padded to its longest: the elapsed time before each step
    ``(b, t + 1)`` (0 at the start: the previous row's time), and every per-row tensor of
    ``per_row`` as ``(b, t, ...)`` (zeros past a history's end)."""
    import torch

    t_run = int(lengths.max())
    k = torch.arange(t_run).unsqueeze(0)
    valid = k < lengths.unsqueeze(1)
    pos = torch.where(valid, starts.unsqueeze(1) + k, torch.zeros_like(k))
    elapsed = torch.cat([known.new_zeros((len(lengths), 1)), known[pos] * valid], dim=1)
    return elapsed, tuple(x[pos] * valid.reshape(*valid.shape, *([1] * (x.dim() - 1)))
                          for x in per_row)


def _code_counts(onehots: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Per row, ``log1p`` of how many rows of its history up to and including it had each
    discrete value (the input of the next step: the model sees that a one-off test such as
    nafld's fib4 was already taken; the GRU state alone repeated it in 22% of histories
    against 0.7% in the real data)."""
    if not onehots.shape[1]:
        return np.zeros((len(onehots), 0), dtype=np.float32)
    total = pd.DataFrame(onehots).groupby(hist, sort=False).cumsum().to_numpy(dtype=np.float32)
    return np.log1p(total)


def _latest_values(level: np.ndarray, values: np.ndarray, hist: np.ndarray, n_levels: int
                   ) -> np.ndarray:
    """Per row and code level (``level``: each row's code), the numbers (normal scores) of
    the latest row of the history up to and including this one with that code, and a flag
    that there was one: ``(rows, n_levels * (values + 1))``.

    The next step's input: whether a patient gets another smoking row depends on the last
    smoking flag, fifty lab rows back (nafld: patients with two smoking rows mostly go
    1 -> 0; the model drew 0 -> 1 and 0 -> 0 from the GRU state alone)."""
    n, n_values = values.shape
    out = np.zeros((n, n_levels, n_values + 1), dtype=np.float32)
    for c in range(n_levels):
        sel = level == c
        if not sel.any():
            continue
        frame = pd.DataFrame(np.where(sel[:, None], values, np.nan))
        out[:, c, :n_values] = frame.groupby(hist, sort=False).ffill().fillna(0.0).to_numpy()
        out[:, c, n_values] = pd.Series(sel.astype(np.float32)).groupby(hist).cummax().to_numpy()
    return out.reshape(n, -1)


def _once_slots(matrix: np.ndarray, hist: np.ndarray, plan: Any) -> list[int]:
    """Matrix columns of the discrete values that (almost) never occur twice in one history:
    at most ``ONCE_MAX_SHARE`` of the histories holding the value hold it more than once.
    A span keeps at least one slot that may repeat (a history must go on)."""
    out: list[int] = []
    for soft in plan.soft:
        block = matrix[:, soft.start:soft.start + soft.width] > 0.5
        per = pd.DataFrame(block).groupby(hist, sort=False).sum().to_numpy()
        holding = (per > 0).sum(axis=0)
        twice = (per > 1).sum(axis=0)
        once = [soft.start + j for j in range(soft.width)
                if holding[j] >= MIN_CALIBRATION_ROWS and twice[j] <= ONCE_MAX_SHARE * holding[j]]
        if len(once) < soft.width:
            out.extend(once)
    return out


def _repeat_columns(inner: pd.DataFrame, schema: Schema, order_column: str | None,
                    lengths: np.ndarray) -> list[str]:
    """Numbers (the time column aside) where at least ``REPEAT_MIN_SHARE`` of the rows after
    a history's first repeat the previous row's value exactly."""
    later = np.ones(len(inner), dtype=bool)
    later[np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)] = False
    if not later.any():
        return []
    out = []
    for col in schema.columns:
        if col.name == order_column or col.kind not in (ColumnKind.INTEGER, ColumnKind.CONTINUOUS) \
                or col.name not in inner:
            continue
        x = pd.to_numeric(inner[col.name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        same = np.r_[False, (x[1:] == x[:-1])] & later
        if same.sum() >= REPEAT_MIN_SHARE * later.sum():
            out.append(col.name)
    return out


def _code_memory(codes: np.ndarray, values: np.ndarray, hist: np.ndarray, width: int
                 ) -> np.ndarray:
    """Per row and softmax span: the numbers (normal scores) of the latest earlier row of
    the same history with the same value in that span, and a flag that there was one.

    On long-format labs (a test column and one value column) this is the patient's previous
    result of the same test, ten or more rows back: the GRU state alone let a patient's
    fib4 wander (within-patient spread was the detector's best feature on nafld)."""
    out = np.zeros((len(codes), width), dtype=np.float32)
    n_values = values.shape[1]
    if not n_values:
        return out
    for s in range(codes.shape[1]):
        key = hist.astype(np.int64) * (int(codes[:, s].max()) + 1) + codes[:, s]
        prev = pd.DataFrame(values).groupby(key, sort=False).shift(1)
        seen = prev.notna().all(axis=1).to_numpy()
        lo = s * (n_values + 1)
        out[:, lo:lo + n_values] = prev.fillna(0.0).to_numpy(dtype=np.float32)
        out[:, lo + n_values] = seen
    return out


def _length_batches(perm: np.ndarray, lengths: np.ndarray, batch: int, n_pool: int,
                    order: np.ndarray) -> list[Any]:
    """One epoch's batches: the shuffled histories ``perm`` cut into pools of ``n_pool``
    batches, each pool sorted by history length before it is cut into
    batches (a batch is padded to its longest history: on nafld labs, lengths 1-513 with
    median 18, random batches of 64 ran ~4x more padded steps), batches then visited in the
    random ``order`` (a permutation of the batch count)."""
    import torch

    pool = batch * n_pool
    out = []
    for lo in range(0, len(perm), pool):
        chunk = perm[lo:lo + pool]
        if n_pool > 1:
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(torch.from_numpy(np.ascontiguousarray(chunk[i:i + batch]))
                   for i in range(0, len(chunk), batch))
    return [out[i] for i in order]


def _gaps(times: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each row's time minus the previous row's of its history (the first row keeps its time);
    a missing time gives a missing gap and the next gap is measured from the last known time."""
    known = pd.Series(times).ffill().to_numpy()
    prev = np.r_[np.nan, known[:-1]]
    first = np.zeros(len(times), dtype=bool)
    first[starts] = True
    base = np.where(first, 0.0, prev)
    # before the first known time of a history the base is 0
    hist = np.repeat(np.arange(len(lengths)), lengths)
    seen = pd.Series(~np.isnan(times)).groupby(hist).cummax().shift(1, fill_value=False).to_numpy().copy()
    seen[first] = False
    base = np.where(seen, base, 0.0)
    return times - base


def _time_used(times: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
               limits: np.ndarray) -> list[float] | None:
    """Quantiles (``USED_QUANTILES``) of the share of the time from a history's first row to
    its limit that the history spans (``(last - first) / (limit - first)``), over the training
    histories of two or more rows with a limit after their first time; ``None`` with fewer
    than ``MIN_CALIBRATION_ROWS`` such histories."""
    hist = np.repeat(np.arange(len(lengths)), lengths)
    grouped = pd.Series(times).groupby(hist)
    first, last = grouped.first().to_numpy(dtype=float), grouped.max().to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (last - first) / (limits - first)
    ok = (lengths > 1) & np.isfinite(limits) & (limits > first) & np.isfinite(share)
    if ok.sum() < MIN_CALIBRATION_ROWS:
        return None
    return np.quantile(np.clip(share[ok], 0.0, 1.0), np.linspace(0, 1, USED_QUANTILES)).tolist()


def _fit_times(times: np.ndarray, owner: np.ndarray, limit: np.ndarray,
               used: list[float] | None = None, rng: np.random.Generator | None = None
               ) -> np.ndarray:
    """Times of histories that pass their limit, scaled toward their first time so that the
    last one is the limit (a history whose first time is already past it is pinned there).
    With ``used`` (:func:`_time_used`, quantiles of the training histories' used share of
    their time to the limit) and ``rng``, the last one is placed at a share of the time to the
    limit drawn from the top ``p`` of those quantiles instead, ``p`` the share of histories
    (with a limit after their first time) that passed it: the histories that ran out of time
    are matched to the real ones that used the most of theirs.

    The histories were drawn with their own elapsed times, so every row stays consistent
    with its past; only the clock is compressed. Cutting such histories lost 18% of
    pbcseq's rows (children-per-parent TV 0.13 vs 0.09); squeezing the late gaps instead
    pushed the model off its training data (bili and missing labs drifted after visit 7)."""
    lim = limit[owner]
    grouped = pd.Series(times).groupby(owner)
    first = grouped.transform("first").to_numpy(dtype=float)
    last = grouped.transform("max").to_numpy(dtype=float)
    target = lim
    with np.errstate(invalid="ignore", divide="ignore"):
        over = last > lim
        room = lim > first
        if used is not None and rng is not None:
            h_first, h_last = grouped.first().to_numpy(dtype=float), grouped.max().to_numpy(dtype=float)
            h_lim = limit[grouped.first().index.to_numpy()]
            h_room = np.isfinite(h_lim) & (h_lim > h_first)
            h_over = h_room & (h_last > h_lim)
            if h_over.any():
                p = h_over.sum() / h_room.sum()
                u = rng.uniform(1.0 - p, 1.0, len(h_over))
                share = np.interp(u, np.linspace(0, 1, len(used)), np.asarray(used))
                full = pd.Series(share, index=grouped.first().index).reindex(owner).to_numpy()
                target = np.where(over & room, first + full * (lim - first), lim)
        scaled = first + (times - first) * (target - first) / (last - first)
    out = np.where(over & room, scaled, times)
    out = np.where(over & ~room & ~np.isnan(times), np.minimum(times, lim), out)
    return out


def _snap_to_anchor(times: np.ndarray, owner: np.ndarray, level: np.ndarray, limit: np.ndarray,
                    anchor: Mapping[str, Any]) -> np.ndarray:
    """Move rows onto the time ``anchor["value"]`` (:meth:`SequenceGenerator._fit_anchors`):
    per code level, up to its training share of the level's rows are at the anchor; the
    nearest rows are moved whose history's previous and next times enclose the anchor (the
    order within the history is kept), at most one per history and level, and only where the
    anchor is within the history's limit."""
    v = float(anchor["value"])
    out = times.copy()
    same = np.r_[False, owner[1:] == owner[:-1]]
    prev = np.where(same, np.r_[-np.inf, times[:-1]], -np.inf)
    nxt = np.where(np.r_[same[1:], False], np.r_[times[1:], np.inf], np.inf)
    for c, share in enumerate(anchor["share"]):
        rows = level == c
        want = int(round(share * rows.sum())) - int((rows & (times == v)).sum())
        if want <= 0:
            continue
        taken = pd.Series(owner[rows & (times == v)]).unique()
        cand = np.flatnonzero(rows & (times != v) & ~np.isnan(times) & (prev <= v) & (nxt >= v)
                              & (limit[owner] >= v) & ~np.isin(owner, taken))
        if not cand.size:
            continue
        cand = cand[np.argsort(np.abs(times[cand] - v), kind="stable")]
        cand = cand[~pd.Series(owner[cand]).duplicated().to_numpy()][:want]
        out[cand] = v
    return out


def _shift_histories(times: np.ndarray, owner: np.ndarray, level: np.ndarray, limit: np.ndarray,
                     time_map: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Each history's times shifted as a whole (gaps, order and same-time rows kept) toward
    its codes' training times (:meth:`SequenceGenerator._fit_time_map`), ``rounds`` times: a
    row's target is the training quantile of its code (among histories of its length, else
    all) at the row's rank among the sampled rows of that code and length (ties share a
    rank), and the history moves by the median of its rows' moves to their targets. A
    history within its limit whose shift would take its last time past it moves by a uniform
    share of its room instead (capped at the room, 1.4% of the full nafld event histories
    ended exactly on futime, real 0.2%)."""
    probs = np.asarray(time_map["probs"])

    def arrays(qs: list[Any]) -> list[np.ndarray | None]:
        return [None if q is None else np.asarray(q) for q in qs]

    every = arrays(time_map["quantiles"])
    by_length = [arrays(qs) for qs in time_map.get("by_length", [])]
    length = pd.Series(owner).groupby(owner).transform("size").to_numpy()
    bucket = np.minimum(length, max(len(by_length), 1)) - 1
    in_bucket = [bucket == b for b in range(len(by_length))]
    every_row = np.ones(len(times), dtype=bool)
    known = ~np.isnan(times)
    lim = limit[owner]
    last = pd.Series(times).groupby(owner).transform("max").to_numpy()
    room = np.where(np.isfinite(lim), np.maximum(lim - last, 0.0), np.inf)
    share = rng.uniform(size=int(owner.max()) + 1 if len(owner) else 0)[owner]
    total = np.zeros(len(times))
    for _ in range(int(time_map.get("rounds", 1))):
        now = times + total
        target = np.full(len(times), np.nan)
        for c in range(len(every)):
            todo = (level == c) & known
            cells = [(rows, qs[c]) for rows, qs in zip(in_bucket, by_length, strict=True)]
            for rows, q in [*cells, (every_row, every[c])]:
                sel = todo & rows
                if q is None or sel.sum() < MIN_CALIBRATION_ROWS:
                    continue
                u = (pd.Series(now[sel]).rank(method="average").to_numpy() - 0.5) / sel.sum()
                target[sel] = q[np.clip(np.rint(u * (len(probs) - 1)).astype(np.int64), 0,
                                        len(probs) - 1)]
                todo &= ~sel
        move = pd.Series(target - now).groupby(owner).transform("median").to_numpy()
        total = total + np.nan_to_num(move, nan=0.0)
        total = np.where(total > room, room * share, total)
    return times + total


def _time_distance(real: tuple[np.ndarray, np.ndarray, np.ndarray],
                   synth: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """Mean over code levels, weighted by their ``real`` rows, of the KS distance of the
    level's times plus that of its rows' gaps to the previous row of their history (rows
    after a history's first); each side is ``(times, level, history)``, rows in history and
    time order."""
    def parts(t: np.ndarray, level: np.ndarray, hist: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        later = np.r_[False, hist[1:] == hist[:-1]]
        return t, level, np.where(later, t - np.r_[np.nan, t[:-1]], np.nan)

    from synthdata.evaluate.fidelity import ks_statistic  # fit only: keeps imports light

    def ks(a: np.ndarray, b: np.ndarray) -> float:  # 0 when either side is empty
        return ks_statistic(a, b) if len(a) and len(b) else 0.0

    (rt, rl, rg), (st, sl, sg) = parts(*real), parts(*synth)
    total, weight = 0.0, 0
    for c in np.unique(rl):
        n = int((rl == c).sum())
        d = sum(ks(a[(rl == c) & ~np.isnan(a)], b[(sl == c) & ~np.isnan(b)])
                for a, b in ((rt, st), (rg, sg)))
        total, weight = total + n * d, weight + n
    return total / max(weight, 1)


def _first_of_code(hist: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Each row: the first row of its code level in its history (rows in history order)."""
    return ~pd.DataFrame({"h": hist, "c": level}).duplicated().to_numpy()


def _cumulate(gaps: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Cumulative sum of gaps within each history (missing gaps add nothing, stay missing)."""
    filled = np.where(np.isnan(gaps), 0.0, gaps)
    total = pd.Series(filled).groupby(owner).cumsum().to_numpy()
    return np.where(np.isnan(gaps), np.nan, total)
