"""GMM generator: a mixture of (Gaussian × categorical) components fitted by EM.

Numbers are first mapped to normal scores by the quantile transformer (so every
marginal is reproduced closely); each mixture component then holds a full-covariance
Gaussian over those scores and one categorical distribution per discrete span
(categories, missing indicators). The number of components is chosen by BIC over a
small grid unless given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from synthdata._rng import child_seed
from synthdata.errors import ConfigError
from synthdata.models.base import BaseGenerator, Progress, no_progress
from synthdata.schema.model import Schema
from synthdata.transform.columns import Activation, SpanRole

_COMPONENT_GRID = (1, 4, 8, 16, 24, 32)


class GMMGenerator(BaseGenerator):
    """Mixture model over the transformed table, the fast baseline.

    Parameters
    ----------
    schema:
        The table's schema.
    n_components:
        Number of mixture components, or ``"auto"`` to choose by BIC on a grid capped
        by ``max_components`` and by one component per ``min_rows_per_component`` rows.
    max_iter, tol:
        EM iterations and convergence tolerance on the mean log-likelihood.
    reg_covar:
        Added to covariance diagonals (the scores are unit-scale).
    alpha:
        Additive smoothing of the categorical distributions.
    privacy:
        A ``DPConfig`` for DP-EM (see the privacy issue); ``None`` for a non-private fit.
    seed:
        Seed for every random choice of fit and sampling.
    """

    name: ClassVar[str] = "gmm"
    numeric_encoding: ClassVar[str] = "quantile"

    def __init__(self, schema: Schema, *, n_components: int | str = "auto", max_components: int = 32,
                 min_rows_per_component: int = 50, max_iter: int = 100, tol: float = 1e-4,
                 reg_covar: float = 1e-3, alpha: float = 0.01, privacy: Any = None,
                 seed: int | None = 0) -> None:
        self.schema, self.n_components, self.max_components = schema, n_components, max_components
        self.min_rows_per_component, self.max_iter, self.tol = min_rows_per_component, max_iter, tol
        self.reg_covar, self.alpha, self.privacy, self.seed = reg_covar, alpha, privacy, seed

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.n_components != "auto":
            self._positive(n_components=self.n_components)
        self._positive(max_components=self.max_components, max_iter=self.max_iter, tol=self.tol,
                       reg_covar=self.reg_covar, alpha=self.alpha,
                       min_rows_per_component=self.min_rows_per_component)

    # -- layout -------------------------------------------------------------------------
    def _split_layout(self) -> tuple[list[int], list[tuple[int, int]]]:
        """Indices of continuous columns, and (start, width) of discrete spans."""
        cont, disc = [], []
        for span, sl in self.transformer_.span_slices():
            if span.kind == Activation.SOFTMAX:
                disc.append((sl.start, span.width))
            else:
                cont.extend(range(sl.start, sl.stop))
        return cont, disc

    # -- fit ----------------------------------------------------------------------------
    def _fit(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress = no_progress) -> None:
        cont, disc = self._split_layout()
        x = matrix[:, cont]
        onehot = matrix[:, [i for s, w in disc for i in range(s, s + w)]]
        n = len(matrix)
        if self.n_components == "auto":
            cap = max(1, min(self.max_components, n // self.min_rows_per_component))
            grid = [k for k in _COMPONENT_GRID if k <= cap] or [1]
        else:
            grid = [int(self.n_components)]
        # Choose k by BIC after a short EM per candidate, then run the winner to convergence.
        best = None
        short = min(self.max_iter, 25) if len(grid) > 1 else self.max_iter
        for i, k in enumerate(grid):
            fit = _em(x, onehot, disc, k, rng=rng, max_iter=short, tol=self.tol,
                      reg=self.reg_covar, alpha=self.alpha)
            bic = -2 * fit["loglik"] * n + _n_params(k, x.shape[1], disc) * np.log(n)
            if best is None or bic < best[0]:
                best = (bic, fit)
            progress("gmm.fit", i + 1, len(grid) + 1)
        assert best is not None
        fit = best[1]
        if short < self.max_iter:
            fit = _em(x, onehot, disc, len(fit["weights"]), rng=rng, max_iter=self.max_iter - short,
                      tol=self.tol, reg=self.reg_covar, alpha=self.alpha, init=fit)
            best = (-2 * fit["loglik"] * n + _n_params(len(fit["weights"]), x.shape[1], disc)
                    * np.log(n), fit)
        progress("gmm.fit", len(grid) + 1, len(grid) + 1)
        self.weights_, self.means_, self.covariances_ = fit["weights"], fit["means"], fit["covs"]
        self.log_theta_ = fit["log_theta"]
        self.n_components_ = len(self.weights_)
        self.bic_ = float(best[0])
        self.loglik_ = float(fit["loglik"])

    # -- sample -------------------------------------------------------------------------
    def _sample_matrix(self, n: int, rng: np.random.Generator,
                       conditions: dict[str, int] | None) -> np.ndarray:
        cont, disc = self._split_layout()
        spans = self.transformer_.span_slices()
        fixed: dict[int, int] = {}  # discrete-span index -> code
        disc_starts = [s for s, _ in disc]
        for column, code in (conditions or {}).items():
            start = next(sl.start for sp, sl in spans
                         if sp.column == column and sp.role == SpanRole.CATEGORY)
            fixed[disc_starts.index(start)] = code
        log_w = np.log(self.weights_)
        offsets = np.cumsum([0] + [w for _, w in disc])
        for j, code in fixed.items():
            log_w = log_w + self.log_theta_[:, offsets[j] + code]
        post = np.exp(log_w - log_w.max())
        post /= post.sum()
        comp = rng.choice(len(post), size=n, p=post)
        members = [np.flatnonzero(comp == k) for k in range(self.n_components_)]
        out = np.zeros((n, self.transformer_.n_features_))
        if cont:
            z = rng.standard_normal((n, len(cont)))
            values = np.empty((n, len(cont)))
            chol = np.linalg.cholesky(self.covariances_)
            for k, idx in enumerate(members):
                if idx.size:
                    values[idx] = self.means_[k] + z[idx] @ chol[k].T
            out[:, cont] = values
        theta = np.exp(self.log_theta_)
        for j, (start, width) in enumerate(disc):
            codes = np.full(n, fixed.get(j, 0))
            if j not in fixed:
                for k, idx in enumerate(members):
                    if idx.size:
                        p = theta[k, offsets[j]:offsets[j] + width]
                        codes[idx] = rng.choice(width, size=idx.size, p=p / p.sum())
            out[np.arange(n), start + codes] = 1.0
        return out

    # -- state --------------------------------------------------------------------------
    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, "means": self.means_, "covariances": self.covariances_,
                "log_theta": self.log_theta_}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.weights_, self.means_ = arrays["weights"], arrays["means"]
        self.covariances_, self.log_theta_ = arrays["covariances"], arrays["log_theta"]
        self.n_components_ = len(self.weights_)

    def _get_extra(self) -> dict[str, Any]:
        return {"bic": self.bic_, "loglik": self.loglik_}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        self.bic_, self.loglik_ = extra.get("bic", float("nan")), extra.get("loglik", float("nan"))


def _n_params(k: int, d: int, disc: list[tuple[int, int]]) -> int:
    return (k - 1) + k * d + k * d * (d + 1) // 2 + k * sum(w - 1 for _, w in disc)


def _gaussian_logpdf(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log N(x_i; mu_k, Sigma_k) for every row and component, shape (n, k)."""
    n, d = x.shape
    if d == 0:
        return np.zeros((n, len(means)))
    chol = np.linalg.cholesky(covs)                     # (k, d, d), batched
    prec = np.linalg.inv(chol)                          # inverse Cholesky factors
    out = np.empty((n, len(means)))
    for j in range(len(means)):
        diff = (x - means[j]) @ prec[j].T
        out[:, j] = -0.5 * np.einsum("ij,ij->i", diff, diff)
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return out - log_det[None, :] - 0.5 * d * np.log(2 * np.pi)


def _em(x: np.ndarray, onehot: np.ndarray, disc: list[tuple[int, int]], k: int, *,
        rng: np.random.Generator, max_iter: int, tol: float, reg: float,
        alpha: float, init: dict[str, Any] | None = None) -> dict[str, Any]:
    n, d = x.shape
    widths = [w for _, w in disc]
    if init is not None:
        resp = init["resp"]
    else:
        resp = _initial_resp(x, onehot, k, rng)
    prev = -np.inf
    loglik = -np.inf
    for _ in range(max_iter):
        weights, means, covs, log_theta = _m_step(x, onehot, resp, widths, reg, alpha)
        log_p = np.log(weights)[None, :] + _gaussian_logpdf(x, means, covs)
        if onehot.shape[1]:
            log_p += onehot @ log_theta.T
        top = log_p.max(axis=1, keepdims=True)
        log_norm = top + np.log(np.exp(log_p - top).sum(axis=1, keepdims=True))
        resp = np.exp(log_p - log_norm)
        loglik = float(log_norm.mean())
        if loglik - prev < tol:
            break
        prev = loglik
    weights, means, covs, log_theta = _m_step(x, onehot, resp, widths, reg, alpha)
    return {"weights": weights, "means": means, "covs": covs, "log_theta": log_theta,
            "loglik": loglik, "resp": resp}


def _initial_resp(x: np.ndarray, onehot: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Hard responsibilities from k-means on all features (one cluster when k == 1)."""
    from sklearn.cluster import KMeans

    n = len(x)
    if k == 1 or n <= k:
        return np.ones((n, 1))
    features = np.concatenate([x, onehot], axis=1)
    labels = KMeans(n_clusters=k, n_init=1, max_iter=50,
                    random_state=child_seed(rng)).fit_predict(features)
    resp = np.zeros((n, k))
    resp[np.arange(n), labels] = 1.0
    return resp


def _m_step(x: np.ndarray, onehot: np.ndarray, resp: np.ndarray, widths: list[int],
            reg: float, alpha: float) -> tuple[np.ndarray, ...]:
    n, d = x.shape
    nk = resp.sum(axis=0) + 1e-10
    weights = nk / nk.sum()
    means = (resp.T @ x) / nk[:, None]
    covs = np.empty((len(nk), d, d))
    second = np.einsum("nk,ni,nj->kij", resp, x, x, optimize=True) if d else covs
    for j in range(len(nk)):
        covs[j] = second[j] / nk[j] - np.outer(means[j], means[j]) + reg * np.eye(d)
    counts = resp.T @ onehot  # (k, total discrete width)
    log_theta = np.empty_like(counts)
    pos = 0
    for w in widths:
        block = counts[:, pos:pos + w] + alpha
        log_theta[:, pos:pos + w] = np.log(block / block.sum(axis=1, keepdims=True))
        pos += w
    return weights, means, covs, log_theta


def check_conditions_supported(conditions: Mapping[str, Any] | None) -> None:
    if conditions is not None and not isinstance(conditions, Mapping):
        raise ConfigError("conditions must be a mapping {column: value}")
