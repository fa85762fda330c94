"""Fidelity: how closely synthetic data follows the real distribution.

All metrics are computed on :class:`~synthdata.evaluate._data.Prepared` tables:

- per column: KS statistic (numeric and datetime, missing cells dropped), total-variation
  distance (discrete, missing counted as a category), missing-rate difference. ``shapes``
  is the mean of ``1 - distance`` (SDMetrics' "Column Shapes", except that SDMetrics also
  drops missing cells before TV); ``column_distance_mean`` is the mean distance (lower is
  better).
- pairs: each pair's similarity is ``1 - |r_real - r_synth| / 2`` (Pearson, numeric pairs)
  or ``1 - TV`` of the joint distribution (other pairs, numbers cut into 10 equal-width bins
  of the real range, applied to both tables). ``pair_trends`` averages the pairs that have a
  trend to keep in the real data — ``|r| > 0.5`` for numeric pairs, Cramér's V of the
  (binned) contingency table ``> 0.3`` otherwise — or every pair when none has one; the
  same thresholds as SDMetrics' QualityReport "Column Pair Trends" (0.32), which the
  cross-check compares with (``benchmarks/results/crosscheck.md``). Unassociated pairs are
  near 1 for any generator that gets the margins right, so averaging them in hides lost
  trends; ``pair_trends_all`` is the mean over every pair.
  ``correlation_difference`` is the mean absolute difference of the association matrix
  (Pearson r for numeric pairs, Cramér's V for discrete pairs, correlation ratio for mixed).
- detection: gradient boosting separates real from synthetic rows (k-fold ROC AUC).
- utility: train-on-synthetic/test-on-real vs train-on-real on a declared target.
- coverage: share of real categories and of the real numeric range the synthetic data covers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthdata._rng import child_seed
from synthdata.evaluate._data import HGB_PARAMS, Prepared, Table, model_matrix, subsample

logger = logging.getLogger(__name__)

N_BINS = 10  # numeric bins for contingency tables (as SDMetrics' ContingencySimilarity)
N_PLOT_BINS = 30
# Detection and utility fit on at most this many rows per side (uniform subsample).
MAX_MODEL_ROWS = 20_000
N_FOLDS = 3


# -- per column ---------------------------------------------------------------------------

def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (missing values dropped; 1.0 if one is empty)."""
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) == len(b) else 1.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def tv_distance(a: np.ndarray, b: np.ndarray, n_codes: int) -> float:
    """Total-variation distance between the code frequencies of two samples."""
    pa = np.bincount(a, minlength=n_codes) / max(len(a), 1)
    pb = np.bincount(b, minlength=n_codes) / max(len(b), 1)
    return float(0.5 * np.abs(pa - pb).sum())


def column_distance(prepared: Prepared, name: str, real: Table, other: Table) -> float:
    info = prepared.info(name)
    if info.is_numeric:
        return ks_statistic(real.values[name], other.values[name])
    return tv_distance(real.values[name], other.values[name], info.n_codes)


def _missing_rate(prepared: Prepared, name: str, table: Table) -> float:
    info = prepared.info(name)
    x = table.values[name]
    if info.is_numeric:
        return float(np.isnan(x).mean())
    return float((x == info.missing_code).mean())


def column_report(prepared: Prepared, *, with_plots: bool = True) -> list[dict[str, Any]]:
    """Per-column distances vs train (and vs holdout, plus the train-vs-holdout baseline)."""
    out = []
    tr, sy, ho = prepared.train, prepared.synth, prepared.holdout
    for info in prepared.columns:
        name = info.name
        row: dict[str, Any] = {
            "name": name, "kind": info.kind.value,
            "metric": "ks" if info.is_numeric else "tv",
            "distance": column_distance(prepared, name, tr, sy),
            "distance_holdout": None if ho is None else column_distance(prepared, name, ho, sy),
            "baseline_distance": None if ho is None else column_distance(prepared, name, tr, ho),
            "missing_rate_real": _missing_rate(prepared, name, tr),
            "missing_rate_synth": _missing_rate(prepared, name, sy),
        }
        row["missing_rate_diff"] = abs(row["missing_rate_real"] - row["missing_rate_synth"])
        if with_plots:
            row["plot"] = _plot_data(prepared, name, tr, sy)
        out.append(row)
    return out


def _plot_data(prepared: Prepared, name: str, real: Table, synth: Table) -> dict[str, Any]:
    info = prepared.info(name)
    a, b = real.values[name], synth.values[name]
    if info.is_numeric:
        fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(fa) == 0:
            return {"type": "none"}
        lo, hi = np.quantile(fa, [0.005, 0.995])
        if hi <= lo:
            lo, hi = float(fa.min()) - 0.5, float(fa.max()) + 0.5
        edges = np.linspace(lo, hi, N_PLOT_BINS + 1)
        ha = np.histogram(np.clip(fa, lo, hi), bins=edges)[0] / max(len(fa), 1)
        hb = np.histogram(np.clip(fb, lo, hi), bins=edges)[0] / max(len(fb), 1)
        return {"type": "hist", "edges": edges.tolist(), "real": ha.tolist(), "synth": hb.tolist()}
    pa = np.bincount(a, minlength=info.n_codes) / max(len(a), 1)
    pb = np.bincount(b, minlength=info.n_codes) / max(len(b), 1)
    labels = [*info.categories, "(other)", "(missing)"]
    keep = [i for i in range(info.n_codes) if pa[i] > 0 or pb[i] > 0]
    if len(keep) > 20:  # plot the 20 most frequent real categories
        keep = sorted(sorted(keep, key=lambda i: -pa[i])[:20])
    return {"type": "bar", "labels": [labels[i] for i in keep], "real": pa[keep].tolist(),
            "synth": pb[keep].tolist()}


def shapes_score(columns: list[dict[str, Any]], key: str = "distance") -> float | None:
    values = [c[key] for c in columns if c[key] is not None]
    return float(1 - np.mean(values)) if values else None


# -- pairs --------------------------------------------------------------------------------

def _binned(prepared: Prepared, name: str, real: Table, table: Table) -> tuple[np.ndarray, int]:
    """Codes for contingency tables: discrete codes, or numbers in 10 real-range bins."""
    info = prepared.info(name)
    x = table.values[name]
    if not info.is_numeric:
        return x, info.n_codes
    r = real.values[name]
    finite = r[np.isfinite(r)]
    if len(finite) == 0:
        return np.zeros(len(x), dtype=np.int64), 1
    edges = np.histogram_bin_edges(finite, bins=N_BINS)
    codes = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, N_BINS - 1)
    codes[np.isnan(x)] = N_BINS
    return codes.astype(np.int64), N_BINS + 1


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3:
        return 0.0
    x, y = x[ok], y[ok]
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return 0.0
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def _cramers_v(table: np.ndarray) -> float:
    n = table.sum()
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    k = min(table.shape) - 1
    if n == 0 or k <= 0:
        return 0.0
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(min(chi2 / (n * k), 1.0)))


def _correlation_ratio(codes: np.ndarray, n_codes: int, x: np.ndarray) -> float:
    ok = ~np.isnan(x)
    codes, x = codes[ok], x[ok]
    if len(x) < 3:
        return 0.0
    total = float(((x - x.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    counts = np.bincount(codes, minlength=n_codes)
    sums = np.bincount(codes, weights=x, minlength=n_codes)
    nz = counts > 0
    means = sums[nz] / counts[nz]
    between = float((counts[nz] * (means - x.mean()) ** 2).sum())
    return float(np.sqrt(min(between / total, 1.0)))


def pair_report(prepared: Prepared, real: Table, synth: Table) -> dict[str, Any]:
    """Pair-trend score and association matrices (real, synthetic, absolute difference)."""
    names = prepared.names
    k = len(names)
    assoc = {"real": np.eye(k), "synth": np.eye(k)}
    sims, strong = [], []
    binned = {lab: {n: _binned(prepared, n, real, t) for n in names}
              for lab, t in (("real", real), ("synth", synth))}
    for i in range(k):
        for j in range(i + 1, k):
            a, b = prepared.info(names[i]), prepared.info(names[j])
            for lab, t in (("real", real), ("synth", synth)):
                xa, xb = t.values[a.name], t.values[b.name]
                if a.is_numeric and b.is_numeric:
                    v = _pearson(xa, xb)
                elif a.is_numeric:
                    v = _correlation_ratio(xb, b.n_codes, xa)
                elif b.is_numeric:
                    v = _correlation_ratio(xa, a.n_codes, xb)
                else:
                    v = _cramers_v(_contingency(xa, a.n_codes, xb, b.n_codes))
                assoc[lab][i, j] = assoc[lab][j, i] = v
            if a.is_numeric and b.is_numeric:
                sims.append(1 - abs(assoc["real"][i, j] - assoc["synth"][i, j]) / 2)
                strong.append(abs(assoc["real"][i, j]) > PAIR_CORRELATION_THRESHOLD)
            else:
                (ca, na), (cb, nb) = binned["real"][a.name], binned["real"][b.name]
                (sa, _), (sb, _) = binned["synth"][a.name], binned["synth"][b.name]
                real_table = _contingency(ca, na, cb, nb)
                pr = real_table / max(len(ca), 1)
                ps = _contingency(sa, na, sb, nb) / max(len(sa), 1)
                sims.append(1 - 0.5 * float(np.abs(pr - ps).sum()))
                strong.append(_cramers_v(real_table) > PAIR_ASSOCIATION_THRESHOLD)
    diff = np.abs(assoc["real"] - assoc["synth"])
    upper = diff[np.triu_indices(k, 1)]
    return {
        "columns": names,
        "real": assoc["real"].round(6).tolist(),
        "synth": assoc["synth"].round(6).tolist(),
        "difference": diff.round(6).tolist(),
        "pair_trends": _pair_trends(sims, strong),
        "pair_trends_all": float(np.mean(sims)) if sims else None,
        "pairs_with_trend": int(sum(strong)),
        "correlation_difference": float(upper.mean()) if len(upper) else None,
        "bivariate": bivariate(prepared, real, synth, diff),
    }


N_BIVARIATE = 4            # pairs with the largest association difference, for the report
N_BIVARIATE_BINS = 20      # numeric bins per axis of a bivariate view
N_BIVARIATE_CATEGORIES = 12


def _axis(prepared: Prepared, name: str, real: Table) -> dict[str, Any]:
    """One axis of a bivariate view: numeric bins over the real 0.5-99.5% range, or the most
    frequent real categories (codes are by train frequency, so the first ones)."""
    info = prepared.info(name)
    if info.is_numeric:
        x = real.values[name]
        finite = x[np.isfinite(x)]
        if len(finite) == 0:
            return {"name": name, "type": "none"}
        lo, hi = np.quantile(finite, [0.005, 0.995])
        if hi <= lo:
            lo, hi = float(finite.min()) - 0.5, float(finite.max()) + 0.5
        return {"name": name, "type": "numeric",
                "edges": np.linspace(lo, hi, N_BIVARIATE_BINS + 1).tolist()}
    n = min(info.n_categories, N_BIVARIATE_CATEGORIES)
    return {"name": name, "type": "discrete", "labels": list(info.categories[:n])}


def _axis_codes(axis: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Bin index per row and the mask of rows inside the axis (missing / rare left out)."""
    if axis["type"] == "numeric":
        edges = np.asarray(axis["edges"])
        ok = np.isfinite(x)
        codes = np.clip(np.searchsorted(edges, np.where(ok, x, edges[0]), side="right") - 1,
                        0, len(edges) - 2)
        return codes, ok, len(edges) - 1
    n = len(axis["labels"])
    return np.minimum(x, max(n - 1, 0)).astype(np.int64), x < n, n


def bivariate(prepared: Prepared, real: Table, synth: Table, diff: np.ndarray,
              top: int = N_BIVARIATE) -> list[dict[str, Any]]:
    """Joint frequency grids (real and synthetic) of the pairs whose association differs most.

    Each view holds the two axes (numeric bin edges or category labels) and, per side, the
    share of rows in each cell (rows with a missing or rarer value left out). Counts of bins,
    never row values.
    """
    names = prepared.names
    k = len(names)
    if k < 2:
        return []
    iu = np.triu_indices(k, 1)
    order = np.argsort(-diff[iu], kind="stable")[:top]
    views = []
    for idx in order:
        i, j = int(iu[0][idx]), int(iu[1][idx])
        ax, ay = _axis(prepared, names[i], real), _axis(prepared, names[j], real)
        if "none" in (ax["type"], ay["type"]):
            continue
        grids = {}
        for label, table in (("real", real), ("synth", synth)):
            cx, okx, nx = _axis_codes(ax, table.values[names[i]])
            cy, oky, ny = _axis_codes(ay, table.values[names[j]])
            ok = okx & oky
            grid = np.bincount(cx[ok] * ny + cy[ok], minlength=nx * ny).reshape(nx, ny)
            grids[label] = (grid / max(int(ok.sum()), 1)).round(6).tolist()
        views.append({"x": ax, "y": ay, "difference": float(diff[i, j]), **grids})
    return views


PAIR_CORRELATION_THRESHOLD = 0.5   # |Pearson r| of a numeric pair with a trend
PAIR_ASSOCIATION_THRESHOLD = 0.3   # Cramér's V of any other pair with a trend


def _pair_trends(sims: list[float], strong: list[bool]) -> float | None:
    if not sims:
        return None
    chosen = [s for s, keep in zip(sims, strong, strict=True) if keep] or sims
    return float(np.mean(chosen))


def _contingency(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> np.ndarray:
    return np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(float)


# -- detection ----------------------------------------------------------------------------

def detection(prepared: Prepared, rng: np.random.Generator) -> dict[str, Any]:
    """Classifier two-sample test: real (holdout, else train) vs synthetic rows.

    Both sides are subsampled to the same size (at most ``MAX_MODEL_ROWS``); the AUC is the
    mean over ``N_FOLDS`` stratified folds. 0.5 means indistinguishable, 1.0 trivially told
    apart.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    real = prepared.holdout if prepared.holdout is not None else prepared.train
    n = min(real.n_rows, prepared.synth.n_rows, MAX_MODEL_ROWS)
    if n < 2 * N_FOLDS:
        return {"auc": None, "note": f"too few rows for detection ({n})"}
    r = real.take(subsample(real.n_rows, n, rng))
    s = prepared.synth.take(subsample(prepared.synth.n_rows, n, rng))
    xr, is_cat = model_matrix(prepared, r, prepared.names)
    xs, _ = model_matrix(prepared, s, prepared.names)
    x = np.vstack([xr, xs])
    y = np.r_[np.zeros(n), np.ones(n)]
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=child_seed(rng))
    aucs = []
    for fit_idx, test_idx in folds.split(x, y):
        clf = HistGradientBoostingClassifier(categorical_features=is_cat, random_state=child_seed(rng),
                                             **HGB_PARAMS)
        clf.fit(x[fit_idx], y[fit_idx])
        aucs.append(roc_auc_score(y[test_idx], clf.predict_proba(x[test_idx])[:, 1]))
    return {"auc": float(np.mean(aucs)), "fold_aucs": [float(a) for a in aucs],
            "n_per_side": int(n), "real": real.label, "folds": N_FOLDS}


# -- utility ------------------------------------------------------------------------------

def utility(prepared: Prepared, target: str, rng: np.random.Generator,
            exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Train-on-synthetic/test-on-real (TSTR) vs train-on-real (TRTR), tested on holdout;
    ``exclude`` names leak columns left out of the features."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score, roc_auc_score

    if prepared.holdout is None:
        return {"note": "utility needs a holdout to test on; none was given"}
    info = prepared.info(target)
    features = [n for n in prepared.names if n != target and n not in set(exclude)]
    if not features:
        return {"note": "utility needs at least one feature besides the target"}
    test = prepared.holdout
    task = "regression" if info.is_numeric else "classification"

    def usable(t: Table) -> Table:
        y = t.values[target]
        ok = ~np.isnan(y) if info.is_numeric else (y != info.missing_code)
        idx = np.flatnonzero(ok)
        return t.take(idx[subsample(len(idx), MAX_MODEL_ROWS, rng)])

    test = usable(test)
    out: dict[str, Any] = {"target": target, "task": task, "n_test": test.n_rows,
                           "excluded": sorted(set(exclude) & set(prepared.names))}
    x_test, is_cat = model_matrix(prepared, test, features)
    y_test = test.values[target]
    for label, table in (("trtr", prepared.train), ("tstr", prepared.synth)):
        fit = usable(table)
        x_fit, _ = model_matrix(prepared, fit, features)
        y_fit = fit.values[target]
        if task == "regression":
            model = HistGradientBoostingRegressor(categorical_features=is_cat,
                                                  random_state=child_seed(rng), **HGB_PARAMS)
            model.fit(x_fit, y_fit)
            out[f"{label}_r2"] = float(r2_score(y_test, model.predict(x_test)))
            continue
        classes = np.unique(y_fit)
        if len(classes) < 2:
            out[f"{label}_auc"], out[f"{label}_f1"] = 0.5, 0.0
            continue
        model = HistGradientBoostingClassifier(categorical_features=is_cat, random_state=child_seed(rng),
                                               **HGB_PARAMS)
        model.fit(x_fit, y_fit)
        out[f"{label}_auc"] = _auc(y_test, model.predict_proba(x_test), model.classes_,
                                   roc_auc_score)
        out[f"{label}_f1"] = float(f1_score(y_test, model.predict(x_test), average="macro"))
    if task == "regression":
        trtr = out["trtr_r2"]
        out["utility_ratio"] = float(out["tstr_r2"] / trtr) if trtr > 0 else None
    else:
        trtr = out["trtr_auc"]
        out["utility_ratio"] = float(out["tstr_auc"] / trtr) if trtr and trtr > 0 else None
    return out


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray, roc_auc_score: Any) -> float | None:
    labels = np.unique(y)
    if len(labels) < 2:
        return None
    full = np.zeros((len(y), int(max(labels.max(), classes.max())) + 1))
    full[:, classes] = proba
    if len(labels) == 2:
        return float(roc_auc_score(y == labels[1], full[:, labels[1]]))
    p = full[:, labels]
    p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(y, p, multi_class="ovr", labels=labels))


# -- coverage -----------------------------------------------------------------------------

def coverage(prepared: Prepared) -> dict[str, Any]:
    """Share of real categories and of the real numeric range found in the synthetic data."""
    cats, ranges = {}, {}
    for info in prepared.columns:
        r, s = prepared.train.values[info.name], prepared.synth.values[info.name]
        if info.is_numeric:
            fr, fs = r[np.isfinite(r)], s[np.isfinite(s)]
            if len(fr) == 0:
                continue
            width = fr.max() - fr.min()
            if len(fs) == 0:
                ranges[info.name] = 0.0
            elif width == 0:
                ranges[info.name] = float(np.any(fs == fr.min()))
            else:
                overlap = min(fs.max(), fr.max()) - max(fs.min(), fr.min())
                ranges[info.name] = float(np.clip(overlap / width, 0, 1))
        else:
            real_codes = np.unique(r[r < info.other_code])
            if len(real_codes):
                cats[info.name] = float(np.isin(real_codes, s).mean())
    return {
        "coverage_categories": float(np.mean(list(cats.values()))) if cats else None,
        "coverage_range": float(np.mean(list(ranges.values()))) if ranges else None,
        "categories": cats, "range": ranges,
    }
