"""Marginal-based generator (``aim``): noisy low-order marginals, a Bayesian network, sampling.

The table is first mapped by the (private, under DP) quantile transformer; every column then
becomes one discrete *attribute*: a category column keeps its codes, a number falls into at
most ``n_bins`` bins cut at the transformer's quantile knots (DP knots under DP: the bins
are DP-chosen and read no extra data) plus a "missing" code when the column has one.

Fit
    1. every attribute's 1-way histogram is measured (one Gaussian release);
    2. the structure grows one attribute at a time: each round scores every candidate
       clique (a new attribute plus one parent -- ``mode="mst"`` -- or up to
       ``max_parents`` parents already in the network -- ``mode="aim"``) by how badly the
       current model gets that marginal wrong (L1 distance between the true counts and the
       model's, minus the noise a measurement of that size would add), picks one with the
       exponential mechanism, and measures its counts with the Gaussian mechanism. With one
       parent this is a Prim-style private maximum spanning tree (the structure of MST,
       McKenna et al. 2021); with two, the adaptive, error-driven and size-aware selection of
       AIM (McKenna et al. 2022) restricted to cliques that form a Bayesian network of
       degree two, so the model can be sampled exactly without a graphical-model solver;
    3. each attribute's conditional distribution given its parents is estimated from its
       noisy clique (negative counts clipped, shrunk towards its 1-way marginal, then raked
       so the child's marginal matches the inverse-variance combination of its 1-way and
       clique measurements).

Sample
    ancestral sampling through the network; a numeric bin is *de-binned* by choosing one of
    its knot intervals by the interval's (DP) quantile mass and a uniform position inside
    it, so values follow the DP piecewise-linear CDF rather than sitting at bin midpoints;
    the transformer's inverse then applies declared rounding/precision and bounds, and the
    base class enforces declared constraints.

Every measurement and selection is on the ledger (``model.aim.*``); all noise comes from
OpenDP's samplers fed by OS entropy (``gaussian_mechanism``; OpenDP's noisy max for the
exponential mechanism), never from ``seed``. The budget split is fixed before any data is
read. See docs/marginal.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any, ClassVar

import numpy as np
from scipy.special import ndtr

from synthdata.errors import ConditionTooRareError, ConfigError
from synthdata.models.base import BaseGenerator, Progress, no_progress
from synthdata.schema.model import Schema
from synthdata.transform.columns import CategoryEncoder, NumericEncoder, SpanRole

__all__ = ["MarginalGenerator"]

# Fixed shares of the training ρ (chosen before any data is read).
ONE_WAY_SHARE = 0.15
WITHIN_SHARE = 0.1            # fine histograms of numbers, for de-binning
SELECT_SHARE = 0.1
MEASURE_SHARE = 0.65
MAX_FINE = 8                   # sub-cells per knot interval in the within-bin histogram
FINE_MIN_COUNT = 3.0           # ...as many as keep ~3σ expected rows per sub-cell
MODEL_ROWS = 20_000            # rows drawn from the partial model to score candidates
MAX_REJECTION_ROUNDS = 50
_SMOOTHING = 0.5               # pseudo-counts per cell, in units of the clique's noise σ·k


@dataclass(frozen=True)
class _Attribute:
    """One column as a discrete variable of the network."""

    column: str
    size: int                        # number of codes
    numeric: bool
    missing_code: int                # -1 when the column has no missing code
    group: np.ndarray                # numeric: knot-bin index -> bin code
    low: np.ndarray                  # numeric: knot-bin z-interval for de-binning
    high: np.ndarray
    mass: np.ndarray                 # numeric: quantile mass of each knot-bin
    edges: np.ndarray                # numeric: z between knot-bins (the encoder's zedge_)


def _numeric_attribute(enc: NumericEncoder, n_bins: int) -> _Attribute:
    zmid = np.asarray(enc.zmid_, dtype=float)
    m = zmid.size
    inner = np.asarray(enc.zedge_, dtype=np.float64)
    if m <= 1:
        group, low, high, mass = np.zeros(1, int), np.zeros(1), np.zeros(1), np.ones(1)
    else:
        low = np.concatenate([[2 * zmid[0] - inner[0]], inner])
        high = np.concatenate([inner, [2 * zmid[-1] - inner[-1]]])
        cdf = np.concatenate([[0.0], ndtr(inner), [1.0]])
        mass = np.maximum(np.diff(cdf), 1e-12)
        # equal-mass groups of adjacent knot-bins (the quantile mass is public: DP knots)
        mid = np.cumsum(mass) - mass / 2
        group = np.minimum((mid * n_bins).astype(int), n_bins - 1)
        group = np.unique(group, return_inverse=True)[1].astype(int)
    n_codes = int(group.max()) + 1
    has_missing = bool(enc.has_missing_)
    return _Attribute(enc.column.name, n_codes + int(has_missing), True,
                      n_codes if has_missing else -1, group, low, high, mass, inner)


def _category_attribute(enc: CategoryEncoder) -> _Attribute:
    empty = np.zeros(0)
    return _Attribute(enc.column.name, max(int(enc.width), 1), False, -1,
                      empty.astype(int), empty, empty, empty, empty)


class MarginalGenerator(BaseGenerator):
    """Marginal-based generator: a Bayesian network fitted from (noisy) low-order marginals.

    Parameters
    ----------
    schema:
        The table's schema.
    mode:
        ``"aim"`` (default): adaptive, error-driven selection of cliques of up to
        ``max_parents + 1`` attributes; ``"mst"``: a maximum spanning tree of 2-way
        marginals (one parent each).
    n_bins:
        At most this many bins per numeric column (cut at quantile knots).
    max_parents:
        Parents per attribute in ``"aim"`` mode (1 or 2); ``"mst"`` always uses 1.
    privacy:
        A ``DPConfig`` (or mapping); ``None`` for a non-private fit (exact marginals,
        greedy selection).
    seed:
        Seed for the non-private random choices (model draws used for scoring, sampling).
    """

    name: ClassVar[str] = "aim"
    numeric_encoding: str = "quantile"
    dp_training: ClassVar[str | None] = "zcdp"

    def __init__(self, schema: Schema, *, mode: str = "aim", n_bins: int = 16,
                 max_parents: int = 2, privacy: Any = None, seed: int | None = 0) -> None:
        self.schema, self.mode, self.n_bins, self.max_parents = schema, mode, n_bins, max_parents
        self.privacy, self.seed = privacy, seed

    def _transformer_options(self) -> dict[str, Any]:
        return {"discrete": "onehot"}

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.mode not in ("aim", "mst"):
            raise ConfigError(f"aim: parameter mode must be 'aim' or 'mst', got {self.mode!r}")
        for key, value, low, high in (("n_bins", self.n_bins, 2, 256),
                                      ("max_parents", self.max_parents, 1, 2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or not low <= value <= high:
                raise ConfigError(f"aim: parameter {key} must be an integer from {low} to "
                                  f"{high}, got {value!r}")

    # -- attributes ---------------------------------------------------------------------
    def _attributes(self) -> list[_Attribute]:
        out = []
        for name, enc in self.transformer_.encoders_.items():
            if isinstance(enc, NumericEncoder):
                out.append(_numeric_attribute(enc, int(self.n_bins)))
            elif isinstance(enc, CategoryEncoder):
                out.append(_category_attribute(enc))
        return out

    def _encode(self, matrix: np.ndarray, attrs: list[_Attribute]
                ) -> tuple[np.ndarray, np.ndarray]:
        """Integer codes (n, d) of the transformed rows, and for numbers the position in
        knot intervals (interval index + fraction; -1 for categories and missing values)."""
        spans: dict[tuple[str, SpanRole], slice] = {
            (sp.column, sp.role): sl for sp, sl in self.transformer_.span_slices()}
        codes = np.empty((len(matrix), len(attrs)), dtype=np.int64)
        where = np.full((len(matrix), len(attrs)), -1.0)
        for j, a in enumerate(attrs):
            if a.numeric:
                z = matrix[:, spans[(a.column, SpanRole.VALUE)]][:, 0]
                knot_bin = np.searchsorted(a.edges, z) \
                    if a.group.size > 1 else np.zeros(len(z), dtype=int)
                codes[:, j] = a.group[knot_bin]
                width = np.maximum(a.high[knot_bin] - a.low[knot_bin], 1e-12)
                frac = np.clip((z - a.low[knot_bin]) / width, 0.0, 1.0 - 1e-9)
                where[:, j] = knot_bin + frac
                if a.missing_code >= 0:
                    miss = matrix[:, spans[(a.column, SpanRole.MISSING)]][:, 1] > 0.5
                    codes[miss, j] = a.missing_code
                    where[miss, j] = -1.0
            else:
                codes[:, j] = np.argmax(matrix[:, spans[(a.column, SpanRole.CATEGORY)]], axis=1)
        return codes, where

    def _decode(self, codes: np.ndarray, attrs: list[_Attribute],
                rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((len(codes), self.transformer_.n_features_))
        spans: dict[tuple[str, SpanRole], slice] = {
            (sp.column, sp.role): sl for sp, sl in self.transformer_.span_slices()}
        rows = np.arange(len(codes))
        for j, a in enumerate(attrs):
            c = codes[:, j]
            if not a.numeric:
                out[rows, spans[(a.column, SpanRole.CATEGORY)].start + c] = 1.0
                continue
            miss = c == a.missing_code if a.missing_code >= 0 else np.zeros(len(c), bool)
            z = np.zeros(len(c))
            if a.group.size > 1:
                weights = self.within_.get(j)
                per = 1 if weights is None else weights.size // a.mass.size
                for g in np.unique(c[~miss]):
                    idx = np.flatnonzero((c == g) & ~miss)
                    members = np.flatnonzero(a.group == g)
                    cells = (members[:, None] * per + np.arange(per)[None, :]).ravel()
                    p = a.mass[members] if weights is None else weights[cells]
                    pick = cells[rng.choice(cells.size, size=idx.size, p=p / p.sum())]
                    kb, sub = pick // per, pick % per
                    width = (a.high[kb] - a.low[kb]) / per
                    z[idx] = a.low[kb] + (sub + rng.random(idx.size)) * width
            out[:, spans[(a.column, SpanRole.VALUE)].start] = z
            if a.missing_code >= 0:
                start = spans[(a.column, SpanRole.MISSING)].start
                out[rows, start + miss.astype(int)] = 1.0
        return out

    # -- fit ----------------------------------------------------------------------------
    def _fit(self, matrix: np.ndarray, rng: np.random.Generator,
             progress: Progress = no_progress) -> None:
        attrs = self._attributes()
        sizes = np.array([a.size for a in attrs], dtype=np.int64)
        codes, where = self._encode(matrix, attrs)
        d = len(attrs)
        private = self.privacy is not None
        if private:
            rho = float(self.dp_plan_.training_rho or 0.0)
            rho_one = rho if d == 1 else ONE_WAY_SHARE * rho
            rho_select = 0.0 if d == 1 else SELECT_SHARE * rho / (d - 1)
            rho_measure = 0.0 if d == 1 else MEASURE_SHARE * rho / (d - 1)
            sigma_one = math.sqrt(d / (2 * rho_one))
            sigma = math.sqrt(1 / (2 * rho_measure)) if d > 1 else 0.0
        else:
            rho_select = rho_measure = 0.0
            sigma_one = sigma = 0.0
        # 1-way marginals: one row adds 1 to one cell of each of d histograms (L2: √d)
        true_one = np.concatenate([np.bincount(codes[:, j], minlength=a.size)
                                   for j, a in enumerate(attrs)])
        if private:
            from synthdata.privacy.mechanisms import gaussian_mechanism

            noisy_one = np.asarray(gaussian_mechanism(
                true_one, math.sqrt(d), rho_one, self.ledger_, "model.aim.one_way",
                attributes=d, cells=int(true_one.size)), dtype=float)
        else:
            noisy_one = true_one.astype(float)
        # n is not public under DP: the run's released count (data.count), or, when the
        # caller's ledger made none, the mean total of the noisy 1-way histograms
        n_hat = float(len(codes))
        if private:
            n_hat = float(self.dp_rows_) if self.dp_rows_ is not None \
                else max(float(np.maximum(noisy_one, 0).sum()) / d, 1.0)
        self.within_ = self._within_bins(attrs, where, private, n_hat)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        one_way = [noisy_one[offsets[j]:offsets[j + 1]] for j in range(d)]
        p_one = [_normalise(np.maximum(h, 0.0) + 1e-3) for h in one_way]
        max_parents = 1 if self.mode == "mst" else int(self.max_parents)
        max_cells = n_hat / 4 if not private else min(4 * n_hat / sigma, n_hat / 4)
        order: list[int] = []
        parents: dict[int, tuple[int, ...]] = {}
        cond: dict[int, np.ndarray] = {}
        steps = max(d - 1, 1)
        for step in range(d - 1):
            sample = self._draw(MODEL_ROWS, order, parents, cond, p_one, sizes, rng) \
                if order else None
            cands: list[tuple[int, tuple[int, ...]]] = []
            scores: list[float] = []
            model_cache: dict[tuple[int, ...], np.ndarray] = {}
            for child in range(d):
                if child in parents or child in order:
                    continue
                if not order:  # first round: any pair (a → b)
                    sets: list[tuple[int, ...]] = [(a,) for a in range(d) if a != child]
                else:
                    sets = [(a,) for a in order]
                    if max_parents >= 2:
                        sets += [p for p in combinations(order, 2)
                                 if int(np.prod(sizes[list(p)])) * sizes[child] <= max_cells]
                for pset in sets:
                    if pset not in model_cache:
                        model_cache[pset] = _model_marginal(pset, sample, p_one, sizes)
                    q = np.multiply.outer(model_cache[pset], p_one[child]).ravel()
                    true = _counts(codes, (*pset, child), sizes)
                    score = float(np.abs(true - n_hat * q).sum()) - _chance_l1(
                        q, n_hat, sigma, MODEL_ROWS if sample is not None else 0)
                    cands.append((child, pset))
                    scores.append(score)
            pick = self._select(np.asarray(scores), rho_select, step, len(cands)) if private \
                else int(np.argmax(scores))
            child, pset = cands[pick]
            if not order:
                order.append(pset[0])
            order.append(child)
            parents[child] = pset
            true = _counts(codes, (*pset, child), sizes)
            if private:
                names = [attrs[i].column for i in (*pset, child)]
                noisy = np.asarray(gaussian_mechanism(
                    true, 1.0, rho_measure, self.ledger_,
                    f"model.aim.measure[{'|'.join(names)}]", cells=int(true.size)), dtype=float)
            else:
                noisy = true.astype(float)
            cond[child] = _conditional(noisy, one_way[child], p_one[child], int(sizes[child]),
                                       sigma, sigma_one)
            progress("aim.fit", step + 1, steps)
        if d == 1 or not order:
            order = list(range(d)) if not order else order
        self.order_ = np.asarray(order, dtype=np.int64)
        self.parents_ = np.full((d, 2), -1, dtype=np.int64)
        for child, pset in parents.items():
            self.parents_[child, :len(pset)] = pset
        self.one_way_ = [p for p in p_one]
        self.cond_ = {child: c for child, c in cond.items()}

    def _within_bins(self, attrs: list[_Attribute], where: np.ndarray, private: bool,
                     n_hat: float) -> dict[int, np.ndarray]:
        """Sampling weights of the fine cells of every numeric attribute (de-binning).

        Each knot interval is cut into as many equal sub-cells (1..``MAX_FINE``) as keep
        about ``FINE_MIN_COUNT``·σ expected rows per sub-cell (from n̂ and the planned σ:
        no data read); one noisy histogram over all of them (L2 sensitivity √(number of
        numbers)), less σ/2 and clipped at 0, smoothed towards the knots' quantile mass by
        σ/20 per cell."""
        numeric = [j for j, a in enumerate(attrs) if a.numeric and a.group.size > 1]
        if not numeric:
            return {}
        rho = WITHIN_SHARE * float(self.dp_plan_.training_rho or 0.0) if private else 0.0
        sigma = math.sqrt(len(numeric) / (2 * rho)) if private else 0.0
        per = {j: MAX_FINE if not private else int(max(1, min(
            MAX_FINE, n_hat / (FINE_MIN_COUNT * sigma * attrs[j].mass.size)))) for j in numeric}
        n_cells = [attrs[j].mass.size * per[j] for j in numeric]
        parts = []
        for j, k in zip(numeric, n_cells, strict=True):
            w = where[where[:, j] >= 0, j]
            kb = np.floor(w).astype(np.int64)
            cell = kb * per[j] + np.minimum(((w - kb) * per[j]).astype(np.int64), per[j] - 1)
            parts.append(np.bincount(cell, minlength=k))
        true = np.concatenate(parts)
        if private:
            from synthdata.privacy.mechanisms import gaussian_mechanism

            noisy = np.asarray(gaussian_mechanism(
                true, math.sqrt(len(numeric)), rho, self.ledger_, "model.aim.within_bins",
                columns=len(numeric), cells=int(true.size)), dtype=float)
        else:
            noisy = true.astype(float)
        out, pos = {}, 0
        for j, k in zip(numeric, n_cells, strict=True):
            prior = np.repeat(attrs[j].mass, per[j]) / per[j]   # sums to 1
            # less σ/2: an empty cell's clipped noise would otherwise weigh ~0.4σ, spreading
            # values over empty stretches of a bin (e.g. years 0..1978 below a public min 0)
            out[j] = np.maximum(noisy[pos:pos + k] - sigma / 2, 0.0) + 0.05 * sigma * k * prior \
                + 1e-9 * prior
            pos += k
        return out

    def _select(self, scores: np.ndarray, rho: float, step: int, n_candidates: int) -> int:
        """The exponential mechanism (OpenDP's noisy max, OS entropy); score sensitivity 1."""
        # the submodules, not opendp.prelude (which also imports its scikit-learn extras)
        import opendp.domains as domains
        import opendp.measurements as measurements
        import opendp.measures as measures
        import opendp.metrics as metrics
        import opendp.mod as mod

        mod.enable_features("contrib")
        scale = 1.0 / math.sqrt(2 * rho)
        space = (domains.vector_domain(domains.atom_domain(T=float, nan=False), size=n_candidates),
                 metrics.linf_distance(T=float))
        meas = measurements.make_noisy_max(*space, measures.zero_concentrated_divergence(),
                                           scale=scale)
        spent = float(meas.map(1.0))  # OpenDP's own zCDP map: (2Δ/β)²/8 = ρ
        self.ledger_.charge(f"model.aim.select[round={step + 1}]", "exponential",
                            sigma=scale, sensitivity=1.0, rho=max(spent, rho),
                            note="exponential mechanism (OpenDP noisy max, Gumbel noise), "
                                 "score sensitivity 1",
                            candidates=n_candidates)
        return int(meas([float(s) for s in scores]))

    def _draw(self, n: int, order: list[int], parents: Mapping[int, tuple[int, ...]],
              cond: Mapping[int, np.ndarray], p_one: list[np.ndarray], sizes: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """Codes (n, d) by ancestral sampling; attributes outside ``order`` stay -1."""
        out = np.full((n, len(sizes)), -1, dtype=np.int64)
        for j in order:
            pset = parents.get(j, ())
            if not pset:
                out[:, j] = _inverse_cdf(np.broadcast_to(p_one[j], (1, sizes[j])),
                                         np.zeros(n, dtype=np.int64), rng)
            else:
                idx = np.ravel_multi_index(tuple(out[:, p] for p in pset),
                                           tuple(int(sizes[p]) for p in pset))
                out[:, j] = _inverse_cdf(cond[j], idx, rng)
        return out

    # -- sample -------------------------------------------------------------------------
    def _sample_matrix(self, n: int, rng: np.random.Generator,
                       conditions: dict[str, int] | None) -> np.ndarray:
        attrs = self._attributes()
        sizes = np.array([a.size for a in attrs], dtype=np.int64)
        parents = {j: tuple(int(p) for p in row if p >= 0) for j, row in enumerate(self.parents_)}
        order = [int(j) for j in self.order_]
        wanted = {next(j for j, a in enumerate(attrs) if a.column == col): code
                  for col, code in (conditions or {}).items()}
        parts, have, drawn = [], 0, 0
        for _ in range(MAX_REJECTION_ROUNDS):
            m = n if not wanted else max(2 * (n - have), 1024)
            codes = self._draw(m, order, parents, self.cond_, self.one_way_, sizes, rng)
            drawn += m
            keep = np.ones(m, dtype=bool)
            for j, code in wanted.items():
                keep &= codes[:, j] == code
            parts.append(codes[keep])
            have += int(keep.sum())
            if have >= n:
                return self._decode(np.concatenate(parts)[:n], attrs, rng)
        shown = {attrs[j].column: c for j, c in wanted.items()}
        raise ConditionTooRareError(
            f"aim: conditions {shown} are too rare under the fitted model to sample {n} rows "
            f"by rejection: {have} of {drawn} draws matched in {MAX_REJECTION_ROUNDS} rounds; "
            "ask for fewer rows or condition on fewer columns")

    # -- state --------------------------------------------------------------------------
    def _get_arrays(self) -> dict[str, np.ndarray]:
        d = len(self.one_way_)
        arrays = {"order": self.order_, "parents": self.parents_,
                  "one_way": np.concatenate(self.one_way_) if d else np.zeros(0),
                  "one_way_sizes": np.array([p.size for p in self.one_way_], dtype=np.int64)}
        for child, table in self.cond_.items():
            arrays[f"cond_{child}"] = table
        for j, weights in self.within_.items():
            arrays[f"within_{j}"] = weights
        return arrays

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.order_ = np.asarray(arrays["order"], dtype=np.int64)
        self.parents_ = np.asarray(arrays["parents"], dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(arrays["one_way_sizes"])])
        flat = np.asarray(arrays["one_way"], dtype=float)
        self.one_way_ = [flat[bounds[j]:bounds[j + 1]] for j in range(len(bounds) - 1)]
        self.cond_ = {int(k.split("_", 1)[1]): np.asarray(v, dtype=float)
                      for k, v in arrays.items() if k.startswith("cond_")}
        self.within_ = {int(k.split("_", 1)[1]): np.asarray(v, dtype=float)
                        for k, v in arrays.items() if k.startswith("within_")}

    def _get_extra(self) -> dict[str, Any]:
        learned = [a.column for a in self._attributes()]
        cliques = [[learned[int(p)] for p in row if p >= 0] + [learned[j]]
                   for j, row in enumerate(self.parents_) if (row >= 0).any()]
        return {"cliques": cliques}


# -- helpers (pure) ----------------------------------------------------------------------
def _normalise(p: np.ndarray) -> np.ndarray:
    total = p.sum()
    return p / total if total > 0 else np.full(p.shape, 1.0 / max(p.size, 1))


def _counts(codes: np.ndarray, cols: tuple[int, ...], sizes: np.ndarray) -> np.ndarray:
    """Counts of the joint codes of ``cols`` (flattened, C order, int64)."""
    shape = tuple(int(sizes[c]) for c in cols)
    idx = np.ravel_multi_index(tuple(codes[:, c] for c in cols), shape)
    return np.bincount(idx, minlength=int(np.prod(shape))).astype(np.int64)


def _model_marginal(pset: tuple[int, ...], sample: np.ndarray | None,
                    p_one: list[np.ndarray], sizes: np.ndarray) -> np.ndarray:
    """The current model's distribution over ``pset`` (flattened)."""
    if sample is None or (sample[:, list(pset)] < 0).any():
        out = np.ones(1)
        for p in pset:
            out = np.multiply.outer(out, p_one[p]).ravel()
        return out
    return _normalise(_counts(sample, pset, sizes).astype(float))


def _chance_l1(q: np.ndarray, n: float, sigma: float, model_rows: int) -> float:
    """The L1 distance a candidate clique would show by chance alone if the model were
    right: per cell, E|X| ≈ √(2/π)·sd for the measurement noise σ, the real rows' sampling
    (n·q(1-q)) and, when the model's marginal is estimated from ``model_rows`` draws, that
    estimate's error (n²·q(1-q)/model_rows). Subtracted from the score, it keeps large
    cliques from winning on noise (AIM subtracts only the σ part). It reads no data: q is
    the model's, n the DP count, so the score's sensitivity stays 1."""
    var = q * (1 - q) * n * (1 + (n / model_rows if model_rows else 0.0))
    return float(math.sqrt(2 / math.pi) * np.sqrt(sigma**2 + var).sum())


def _inverse_cdf(table: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per entry of ``rows`` from the distribution in that row of ``table``."""
    cum = np.cumsum(table, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(rows))
    return np.minimum((u[:, None] > cum[rows]).sum(axis=1), table.shape[1] - 1)


def _conditional(noisy: np.ndarray, one_way: np.ndarray, p_child: np.ndarray, k: int,
                 sigma: float, sigma_one: float) -> np.ndarray:
    """P(child | parents) from a noisy clique table, as rows (parent configuration, k)."""
    table = np.maximum(noisy.reshape(-1, k), 0.0)
    n_parent = table.shape[0]
    # child marginal: inverse-variance combination of the 1-way and the clique's margin
    margin = noisy.reshape(-1, k).sum(axis=0)
    if sigma > 0 and sigma_one > 0:
        w_one, w_clique = 1 / sigma_one**2, 1 / (sigma**2 * n_parent)
        margin = (w_one * one_way + w_clique * margin) / (w_one + w_clique)
    target = _normalise(np.maximum(margin, 0.0) + 1e-3)
    table = table + _SMOOTHING * sigma * k * p_child[None, :] + 1e-6
    # the parents' distribution: the clique's own parent margin (noisy, clipped)
    weight = _normalise(table.sum(axis=1))
    cond_table = table / table.sum(axis=1, keepdims=True)
    for _ in range(5):  # rake the columns so the implied child margin meets the target
        implied = weight @ cond_table
        cond_table = cond_table * (target / np.maximum(implied, 1e-12))[None, :]
        cond_table /= cond_table.sum(axis=1, keepdims=True)
    return cond_table
