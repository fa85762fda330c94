"""History-level evaluation: is a synthetic patient's whole history believable?

Single-row metrics miss what a clinician sees in a chart: ages that go down, flags that
switch back off, events after death, visit rhythms no real patient has. For every child
table of a multi-table schema (rows linked to a parent and, ideally, ordered by time),
:func:`evaluate_histories` measures

* **whole-patient detection**: a classifier two-sample test on one row per patient of
  history features — number of rows, gaps between consecutive rows, first/last/mean/std
  and slope over time of every number column, the share of each category, and per-code
  counts and mean values when the table has a code column (long-format labs). AUC 0.5:
  histories indistinguishable; 1.0: told apart;
* **per-patient TSTR** (with a ``target`` in the parent table): a model on the parent's
  columns plus features of the *first k* rows of each history predicts the target; trained
  on synthetic patients, tested on held-out real patients, against the same model trained
  on real patients (TRTR). ``exclude`` removes leak columns; a TRTR score >= 0.99 warns
  that a column probably leaks the target;
* **marginals and pair-plot data** of the child table (shared histogram bins, joint
  distributions of the most correlated number pairs as shares per grid cell), and **per-code value distributions**
  (KS distance of each number column within each code);
* **within-patient rules broken** in the real and the synthetic histories (rows and
  patients), for the declared rules and any discovered ones passed in.

Every number reads real rows: under DP it is internal QA (the pipeline marks the section
not private); only ``history_rule_violations`` on the synthetic data alone is DP-safe.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthdata.constraints.kinds import HistoryRule, column_values
from synthdata.evaluate.fidelity import ks_statistic

log = logging.getLogger(__name__)

FIRST_K = 3                  # rows of each history the per-patient TSTR sees
MAX_PATIENTS = 10_000        # per side, for detection and TSTR
MAX_CODES = 30               # a code column has at most this many values
MAX_CATEGORIES = 12          # category shares per discrete column
N_BINS = 20
MAX_COUNT_BINS = 30         # bins of the rows-per-patient histogram
N_PAIRS = 3
N_FOLDS = 3
LEAK_WARNING = 0.99
HGB = {"max_iter": 80, "learning_rate": 0.15, "early_stopping": False}


def _rng(seed: int, step: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(step.encode())])


# -- per-patient features -----------------------------------------------------------------
def history_features(child: pd.DataFrame, schema: Any, *, key: str, order: str | None,
                     parent_keys: Sequence[Any], skip: Collection[str] = (),
                     code: str | None = None, codes: Sequence[Any] = (),
                     categories: Mapping[str, Sequence[Any]] | None = None,
                     first_k: int | None = None) -> pd.DataFrame:
    """One row per parent key (in ``parent_keys`` order; patients without rows get count 0
    and missing features): counts, gaps, first/last/mean/std/slope of number columns,
    category shares, per-code counts and means. ``first_k`` keeps each history's first rows."""
    keys = pd.Index(pd.unique(pd.Series(list(parent_keys))))
    df = child.reset_index(drop=True)
    t = None
    if order is not None:
        t, mt = column_values(df, order, schema)
        t = np.where(mt, np.nan, t.astype(float))
        if schema[order].kind.value == "datetime":
            t = t / 86_400e9  # days
        idx = np.lexsort((np.where(np.isnan(t), np.inf, t), pd.factorize(df[key])[0]))
        df, t = df.iloc[idx].reset_index(drop=True), t[idx]
    if first_k is not None:
        rank = df.groupby(key, sort=False).cumcount().to_numpy()
        keep = rank < first_k
        df = df.loc[keep].reset_index(drop=True)
        t = None if t is None else t[keep]
    g = df[key].to_numpy()
    feats: dict[str, pd.Series] = {"n_rows": pd.Series(g).value_counts()}
    if t is not None:
        ts = pd.Series(t)
        gap = ts.groupby(g).diff()
        feats["t_first"] = ts.groupby(g).first()
        feats["t_last"] = ts.groupby(g).last()
        feats["t_span"] = feats["t_last"] - feats["t_first"]
        feats["gap_mean"] = gap.groupby(g).mean()
        feats["gap_std"] = gap.groupby(g).std()
        feats["gap_max"] = gap.groupby(g).max()
    skipped = set(skip) | {key} | ({order} if order else set())
    numeric = [c.name for c in schema.columns if c.kind.is_numeric and c.name not in skipped
               and c.name in df.columns]
    discrete = [c.name for c in schema.columns if c.kind.is_discrete and c.name not in skipped
                and c.name in df.columns and c.name != code]
    cats = dict(categories or {})

    def number_features(prefix: str, x: pd.Series, groups: np.ndarray, tt: np.ndarray | None) -> None:
        grp = x.groupby(groups)
        feats[f"{prefix}first"] = grp.first()
        feats[f"{prefix}last"] = grp.last()
        feats[f"{prefix}mean"] = grp.mean()
        feats[f"{prefix}std"] = grp.std()
        feats[f"{prefix}delta_max"] = x.groupby(groups).diff().groupby(groups).max()
        feats[f"{prefix}delta_min"] = x.groupby(groups).diff().groupby(groups).min()
        if tt is not None:
            feats[f"{prefix}slope"] = _slopes(tt, x.to_numpy(dtype=float), groups)

    for col in numeric:
        x = pd.Series(pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan))
        if code is None:
            number_features(f"{col}:", x, g, t)
            continue
        codes_arr = df[code].astype(str).to_numpy()
        for c in codes:
            sel = codes_arr == str(c)
            if not sel.any():
                continue
            number_features(f"{col}[{c}]:", x[sel].reset_index(drop=True), g[sel],
                            None if t is None else t[sel])
    if code is not None:
        codes_arr = df[code].astype(str).to_numpy()
        for c in codes:
            feats[f"n[{c}]"] = pd.Series(g[codes_arr == str(c)]).value_counts()
    for col in discrete:
        values = df[col].astype(str).where(df[col].notna(), "<NA>").to_numpy()
        for v in cats.get(col, ())[:MAX_CATEGORIES]:
            feats[f"{col}={v}"] = pd.Series((values == str(v)).astype(float)).groupby(g).mean()
        same = np.r_[False, g[1:] == g[:-1]]
        moved = same & np.r_[False, values[1:] != values[:-1]]
        feats[f"{col}:changes"] = pd.Series(moved.astype(float)).groupby(g).sum()
    out = pd.DataFrame({k: v.reindex(keys) for k, v in feats.items()})
    out["n_rows"] = out["n_rows"].fillna(0)
    for c in [c for c in out.columns if c.startswith("n[")]:
        out[c] = out[c].fillna(0)
    return out.reset_index(drop=True)


def _slopes(t: np.ndarray, x: np.ndarray, g: np.ndarray) -> pd.Series:
    """Least-squares slope of ``x`` over ``t`` per group (NaN with < 2 usable points)."""
    ok = ~np.isnan(t) & ~np.isnan(x)
    frame = pd.DataFrame({"g": g[ok], "t": t[ok], "x": x[ok]})
    frame["tx"], frame["tt"] = frame["t"] * frame["x"], frame["t"] ** 2
    s = frame.groupby("g").agg(n=("t", "size"), st=("t", "sum"), sx=("x", "sum"),
                               stx=("tx", "sum"), stt=("tt", "sum"))
    den = s["n"] * s["stt"] - s["st"] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (s["n"] * s["stx"] - s["st"] * s["sx"]) / den
    return slope.where((s["n"] >= 2) & (den.abs() > 1e-12))


# -- classifiers ---------------------------------------------------------------------------
def _clean(x: pd.DataFrame) -> np.ndarray:
    arr = x.to_numpy(dtype=float)
    arr[~np.isfinite(arr)] = np.nan
    return arr


def detection_auc(real: pd.DataFrame, synth: pd.DataFrame, rng: np.random.Generator
                  ) -> dict[str, Any]:
    """Cross-validated AUC of a gradient-boosting classifier telling real from synthetic rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    n = min(len(real), len(synth), MAX_PATIENTS)
    if n < 5 * N_FOLDS:
        return {"auc": None, "note": f"too few patients for detection ({n})"}
    cols = sorted(set(real.columns) | set(synth.columns))
    r = real.reindex(columns=cols).iloc[rng.choice(len(real), n, replace=False)]
    s = synth.reindex(columns=cols).iloc[rng.choice(len(synth), n, replace=False)]
    x = _clean(pd.concat([r, s], ignore_index=True))
    usable = ~np.isnan(x).all(axis=0)   # gradient boosting cannot bin an all-missing feature
    x, cols = x[:, usable], [c for c, u in zip(cols, usable) if u]
    y = np.r_[np.zeros(n), np.ones(n)]
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=int(rng.integers(2**31)))
    aucs = []
    for fit_idx, test_idx in folds.split(x, y):
        clf = HistGradientBoostingClassifier(random_state=int(rng.integers(2**31)), **HGB)
        clf.fit(x[fit_idx], y[fit_idx])
        aucs.append(float(roc_auc_score(y[test_idx], clf.predict_proba(x[test_idx])[:, 1])))
    # which features give the histories away: single-feature AUC distance from 0.5
    tells = []
    for j, name in enumerate(cols):
        col, ok = x[:, j], ~np.isnan(x[:, j])
        if ok.sum() < 10 or len(np.unique(y[ok])) < 2 or np.nanstd(col) == 0:
            continue
        tells.append((abs(float(roc_auc_score(y[ok], col[ok])) - 0.5), name))
    tells.sort(reverse=True)
    return {"auc": float(np.mean(aucs)), "fold_aucs": aucs, "n_per_side": int(n),
            "n_features": len(cols),
            "top_features": [{"feature": f, "single_feature_auc_gap": round(v, 4)}
                             for v, f in tells[:8]]}


def _utility(train_sets: Mapping[str, pd.DataFrame], test: pd.DataFrame, target: str,
             is_numeric: bool, rng: np.random.Generator) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import r2_score, roc_auc_score

    test = test.loc[test[target].notna()]
    out: dict[str, Any] = {"n_test": int(len(test)), "task": "regression" if is_numeric
                           else "classification"}
    features = [c for c in test.columns if c != target]
    y_test = test[target].to_numpy()
    for label, frame in train_sets.items():
        frame = frame.loc[frame[target].notna()]
        if len(frame) > MAX_PATIENTS:
            frame = frame.iloc[rng.choice(len(frame), MAX_PATIENTS, replace=False)]
        x_fit = _clean(frame.reindex(columns=features))
        x_test = _clean(test.reindex(columns=features))
        # a feature missing on every training patient (e.g. a code no synthetic patient has)
        # carries nothing, and gradient boosting cannot bin it
        usable = ~np.isnan(x_fit).all(axis=0)
        x_fit, x_test = x_fit[:, usable], x_test[:, usable]
        y_fit = frame[target].to_numpy()
        if is_numeric:
            model = HistGradientBoostingRegressor(random_state=int(rng.integers(2**31)), **HGB)
            model.fit(x_fit, y_fit.astype(float))
            out[f"{label}_r2"] = float(r2_score(y_test.astype(float), model.predict(x_test)))
            continue
        y_fit, y_true = y_fit.astype(str), y_test.astype(str)
        if len(np.unique(y_fit)) < 2 or len(np.unique(y_true)) < 2:
            out[f"{label}_auc"] = None
            continue
        model = HistGradientBoostingClassifier(random_state=int(rng.integers(2**31)), **HGB)
        model.fit(x_fit, y_fit)
        proba = model.predict_proba(x_test)
        classes = list(model.classes_)
        if len(np.unique(y_true)) == 2:
            pos = sorted(np.unique(y_true))[1]
            score = proba[:, classes.index(pos)] if pos in classes else np.zeros(len(y_true))
            out[f"{label}_auc"] = float(roc_auc_score(y_true == pos, score))
        else:
            full = np.zeros((len(y_true), len(classes)))
            full[:, :] = proba
            known = np.isin(y_true, classes)
            out[f"{label}_auc"] = float(roc_auc_score(
                y_true[known], full[known], multi_class="ovr", labels=classes)) \
                if known.all() else None
    key = "r2" if is_numeric else "auc"
    trtr, tstr = out.get(f"trtr_{key}"), out.get(f"tstr_{key}")
    out["utility_ratio"] = float(tstr / trtr) if trtr and tstr is not None and trtr > 0 else None
    return out


def _parent_matrix(parent: pd.DataFrame, schema: Any, drop: set[str]) -> pd.DataFrame:
    cols = {}
    for c in schema.columns:
        if not c.kind.is_learned or c.name in drop or c.name not in parent.columns:
            continue
        if c.kind.is_numeric or c.kind.value == "datetime":
            v, m = column_values(parent, c.name, schema)
            cols[f"parent:{c.name}"] = np.where(m, np.nan, v.astype(float))
        else:
            codes, _ = pd.factorize(parent[c.name].astype(str), sort=True)
            cols[f"parent:{c.name}"] = codes.astype(float)
    return pd.DataFrame(cols, index=range(len(parent)))


# -- descriptive data -------------------------------------------------------------------------
def _marginals(real: pd.DataFrame, synth: pd.DataFrame, schema: Any, skip: set[str]
               ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in schema.columns:
        if c.name in skip or not c.kind.is_learned or c.name not in real.columns:
            continue
        if c.kind.is_numeric:
            r = pd.to_numeric(real[c.name], errors="coerce").dropna().to_numpy(dtype=float)
            s = pd.to_numeric(synth[c.name], errors="coerce").dropna().to_numpy(dtype=float)
            if not len(r):
                continue
            out[c.name] = {"kind": "numeric", **_histogram(r, s), "ks": _ks(r, s)}
        elif c.kind.is_discrete:
            pr = real[c.name].astype(str).value_counts(normalize=True)
            ps = synth[c.name].astype(str).value_counts(normalize=True)
            top = pr.index[:MAX_CODES].tolist()
            out[c.name] = {"kind": "categorical", "categories": top,
                           "real": pr.reindex(top).fillna(0).round(5).tolist(),
                           "synthetic": ps.reindex(top).fillna(0).round(5).tolist(),
                           "tv": float(0.5 * (pr.reindex(pr.index.union(ps.index), fill_value=0)
                                              - ps.reindex(pr.index.union(ps.index), fill_value=0)
                                              ).abs().sum())}
    return out


def _count_histogram(real: pd.Series, synth: pd.Series) -> dict[str, Any]:
    """Means and the share of patients with 0, 1, 2, ... rows (the top bin holds the tail
    beyond the real 99th percentile), real vs synthetic."""
    r, s = real.to_numpy(dtype=float), synth.to_numpy(dtype=float)
    top = int(max(np.quantile(r, 0.99), 1)) if len(r) else 1
    if top + 1 > MAX_COUNT_BINS:  # long histories: equal-width bins of whole counts
        edges = np.unique(np.linspace(0, top + 1, MAX_COUNT_BINS + 1).round())
    else:
        edges = np.arange(top + 2, dtype=float)
    hr = np.histogram(np.clip(r, 0, edges[-1] - 1), edges)[0] / max(len(r), 1)
    hs = np.histogram(np.clip(s, 0, edges[-1] - 1), edges)[0] / max(len(s), 1)
    return {"real_mean": float(np.mean(r)) if len(r) else None,
            "synthetic_mean": float(np.mean(s)) if len(s) else None,
            "edges": edges.tolist(), "real": hr.round(5).tolist(),
            "synthetic": hs.round(5).tolist(), "tv": float(0.5 * np.abs(hr - hs).sum())}


def _histogram(r: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    """Shared bins over the real 0.5-99.5% range (values outside go to the end bins)."""
    lo, hi = np.quantile(r, [0.005, 0.995])
    edges = np.linspace(lo, hi if hi > lo else lo + 1, N_BINS + 1)
    hr = np.histogram(np.clip(r, edges[0], edges[-1]), edges)[0] / max(len(r), 1)
    hs = np.histogram(np.clip(s, edges[0], edges[-1]), edges)[0] / max(len(s), 1)
    return {"edges": edges.round(6).tolist(), "real": hr.round(5).tolist(),
            "synthetic": hs.round(5).tolist()}


def _ks(a: np.ndarray, b: np.ndarray) -> float | None:
    """KS distance of two NaN-free samples; None when either is empty."""
    return ks_statistic(a, b) if len(a) and len(b) else None


def _pairs(real: pd.DataFrame, synth: pd.DataFrame, numeric: list[str]) -> list[dict[str, Any]]:
    """The most correlated number pairs (real rows) as joint distributions: the share of rows
    per cell of a grid of (up to) N_BINS real quantile bins per column over the real
    0.5-99.5% range (values outside go to the edge cells), real and synthetic. Bin shares
    only, never row values."""
    if len(numeric) < 2:
        return []
    num_r = real[numeric].apply(pd.to_numeric, errors="coerce")
    num_s = synth[numeric].apply(pd.to_numeric, errors="coerce")
    corr = num_r.corr().abs()
    corr_s = num_s.corr().abs()
    pairs = sorted(((float(corr.iloc[i, j]), numeric[i], numeric[j])
                    for i in range(len(numeric)) for j in range(i + 1, len(numeric))
                    if np.isfinite(corr.iloc[i, j])), reverse=True)[:N_PAIRS]
    out = []
    for r_abs, a, b in pairs:
        edges = {}
        for col in (a, b):  # equal-mass bins: skewed lab values do not pile into one cell
            values = num_r[col].dropna().to_numpy(dtype=float)
            cuts = np.unique(np.quantile(values, np.linspace(0.005, 0.995, N_BINS + 1)))
            edges[col] = cuts if len(cuts) > 1 else np.array([cuts[0], cuts[0] + 1])
        item: dict[str, Any] = {"x": a, "y": b, "real_abs_correlation": round(r_abs, 4),
                                "synthetic_abs_correlation": _round(corr_s.loc[a, b]),
                                "x_edges": edges[a].round(6).tolist(),
                                "y_edges": edges[b].round(6).tolist()}
        for label, frame in (("real", num_r), ("synthetic", num_s)):
            sub = frame[[a, b]].dropna().to_numpy(dtype=float)
            xs = np.clip(sub[:, 0], edges[a][0], edges[a][-1])
            ys = np.clip(sub[:, 1], edges[b][0], edges[b][-1])
            grid = np.histogram2d(xs, ys, [edges[a], edges[b]])[0] / max(len(sub), 1)
            item[label] = grid.round(5).tolist()
        out.append(item)
    return out


def _round(value: Any) -> float | None:
    return round(float(value), 4) if value is not None and np.isfinite(value) else None


def code_column(schema: Any, df: pd.DataFrame, skip: set[str]) -> str | None:
    """The code column of a long-format table: its only categorical column (2..MAX_CODES
    values) beside one or two number columns that hold the coded values, keys and time
    aside (e.g. nafld2: test + value). None for a wide table such as pbcseq."""
    numeric = [c for c in schema.columns if c.kind.is_numeric and c.name not in skip]
    discrete = [c for c in schema.columns if c.kind.value == "categorical" and c.name not in skip
                and c.name in df.columns]
    if not 1 <= len(numeric) <= 2 or len(discrete) != 1:
        return None
    return discrete[0].name if 2 <= df[discrete[0].name].nunique() <= MAX_CODES else None


def _per_code(real: pd.DataFrame, synth: pd.DataFrame, code: str, numeric: list[str]
              ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rc, sc = real[code].astype(str), synth[code].astype(str)
    for value in rc.value_counts().index[:MAX_CODES]:
        entry: dict[str, Any] = {"real_rows": int((rc == value).sum()),
                                 "synthetic_rows": int((sc == value).sum())}
        for col in numeric:
            r = pd.to_numeric(real.loc[rc == value, col], errors="coerce").dropna().to_numpy(float)
            s = pd.to_numeric(synth.loc[sc == value, col], errors="coerce").dropna().to_numpy(float)
            entry[col] = {"ks": _ks(r, s),
                          "real_median": float(np.median(r)) if len(r) else None,
                          "synthetic_median": float(np.median(s)) if len(s) else None,
                          **(_histogram(r, s) if len(r) else {})}
        out[str(value)] = entry
    return out


# -- rules --------------------------------------------------------------------------------------
def rule_violations(tables: Mapping[str, pd.DataFrame], ms: Any, table: str,
                    extra: Sequence[Any] = (), extra_links: Sequence[Any] = ()
                    ) -> dict[str, dict[str, int]]:
    """``{rule: {"rows": n, "patients": m}}`` for the within-patient rules of ``table``
    (declared in its schema or across its link, plus ``extra``/``extra_links``)."""
    link = ms.parent_link(table)
    schema = ms.tables[table]
    df = tables[table]
    out: dict[str, dict[str, int]] = {}
    own = [r for r in schema.constraints if isinstance(r, HistoryRule)] + list(extra)
    for rule in own:
        bad = rule.violations(df, schema)
        out[rule.describe()] = {"rows": int(bad.sum()), "patients": int(
            df.loc[bad, link.column].nunique()) if link is not None else int(bad.sum())}
    across = [r for r in ms.constraints if ms.link_rule_table(r) == table] + [
        r for r in extra_links if ms.link_rule_table(r) == table]
    if across:
        view = ms.joined_view(tables, table)
        joined = ms.joined_schema(table)
        for rule in across:
            bad = rule.violations(view, joined)
            out[rule.describe()] = {"rows": int(bad.sum()), "patients": int(
                view.loc[bad, f"{table}.{link.column}"].nunique()) if link else int(bad.sum())}
    return out


# -- the entry point ----------------------------------------------------------------------------
def evaluate_histories(real: Mapping[str, pd.DataFrame], synth: Mapping[str, pd.DataFrame],
                       ms: Any, *, holdout: Mapping[str, pd.DataFrame] | None = None,
                       target: str | None = None, exclude: Sequence[str] = (),
                       first_k: int = FIRST_K, discovered: Mapping[str, Sequence[Any]] | None = None,
                       discovered_links: Sequence[Any] = (), seed: int = 0) -> dict[str, Any]:
    """History-level evaluation of every child table (see the module docstring).

    Parameters
    ----------
    real, synth
        ``{table: DataFrame}``: the real training tables and the synthetic tables.
    ms
        The :class:`~synthdata.relational.schema.MultiTableSchema`.
    holdout
        Real tables not used in training: the detection's real side (else ``real``) and
        the TSTR test set (TSTR is skipped without it).
    target
        A column of a child table's parent: the per-patient TSTR predicts it from the
        parent's other columns and the first ``first_k`` rows of the history.
    exclude
        Leak columns left out of the TSTR features: ``column`` (any table) or
        ``table.column``.
    discovered, discovered_links
        Rules found on the real data (``RelationalSynthesizer.discovered_`` /
        ``discovered_links_``), counted with the declared ones.

    Returns
    -------
    ``{"tables": {child: section}, "metrics": {...}, "warnings": [...]}`` where metrics are
    ``history_detection_auc`` (worst child table), ``history_detection_auc[child]``,
    ``history_rule_violations`` (synthetic rows breaking a within-patient rule),
    ``history_rule_violations_real`` and, with a target, ``history_tstr_auc[child]`` /
    ``history_trtr_auc[child]`` (``_r2`` for a numeric target).

    Examples
    --------
    >>> out = evaluate_histories(train, synth, ms, holdout=hold, target="status")  # doctest: +SKIP
    >>> out["metrics"]["history_detection_auc"]                                    # doctest: +SKIP
    """
    import sklearn.ensemble  # noqa: F401  (threadpoolctl limits loaded libraries only)
    from threadpoolctl import threadpool_limits

    # gradient boosting's OpenMP threads busy-wait on a shared machine: one thread (as in
    # synthdata.evaluate.evaluator) keeps a fit under a second
    with threadpool_limits(limits=1, user_api="openmp"):
        return _evaluate_histories(real, synth, ms, holdout=holdout, target=target,
                                   exclude=exclude, first_k=first_k, discovered=discovered,
                                   discovered_links=discovered_links, seed=seed)


def _evaluate_histories(real: Mapping[str, pd.DataFrame], synth: Mapping[str, pd.DataFrame],
                        ms: Any, *, holdout: Mapping[str, pd.DataFrame] | None,
                        target: str | None, exclude: Sequence[str], first_k: int,
                        discovered: Mapping[str, Sequence[Any]] | None,
                        discovered_links: Sequence[Any], seed: int) -> dict[str, Any]:
    excluded = set(exclude)
    sections: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    warnings: list[str] = []
    total_synth = total_real = 0
    for tname in ms.order():
        link = ms.parent_link(tname)
        if link is None or tname not in real or tname not in synth:
            continue
        schema = ms.tables[tname]
        ref = holdout if holdout is not None else real
        skip = {link.column, *(link.parent_level or ()), *ms.primary_keys.get(tname, ())} - \
            ({link.order_by} if link.order_by else set())
        code = code_column(schema, real[tname], skip | ({link.order_by} if link.order_by else set()))
        codes = real[tname][code].astype(str).value_counts().index[:MAX_CODES].tolist() \
            if code else []
        cats = {c.name: real[tname][c.name].astype(str).value_counts().index.tolist()
                for c in schema.columns if c.kind.is_discrete}

        def feats(tables: Mapping[str, pd.DataFrame], k: int | None = None) -> pd.DataFrame:
            return history_features(tables[tname], schema, key=link.column, order=link.order_by,
                                    parent_keys=tables[link.parent][link.parent_column],
                                    skip=skip, code=code, codes=codes, categories=cats,
                                    first_k=k)

        section: dict[str, Any] = {"parent": link.parent, "order_by": link.order_by,
                                   "code_column": code}
        f_real, f_synth = feats(ref), feats(synth)
        det = detection_auc(f_real, f_synth, _rng(seed, f"history.detection.{tname}"))
        det["real"] = "holdout" if holdout is not None else "train"
        section["detection"] = det
        metrics[f"history_detection_auc[{tname}]"] = det["auc"]
        section["rows_per_patient"] = _count_histogram(f_real["n_rows"], f_synth["n_rows"])
        numeric = [c.name for c in schema.columns if c.kind.is_numeric and c.name not in skip]
        section["marginals"] = _marginals(real[tname], synth[tname], schema, skip)
        section["pairs"] = _pairs(real[tname], synth[tname], numeric)
        if code:
            section["per_code"] = _per_code(real[tname], synth[tname], code,
                                            [c for c in numeric if c != link.order_by])
        rules = rule_violations(real, ms, tname, (discovered or {}).get(tname, ()),
                                discovered_links)
        rules_synth = rule_violations(synth, ms, tname, (discovered or {}).get(tname, ()),
                                      discovered_links)
        section["rules"] = [{"rule": r, "real_rows": rules[r]["rows"],
                             "real_patients": rules[r]["patients"],
                             "synthetic_rows": rules_synth[r]["rows"],
                             "synthetic_patients": rules_synth[r]["patients"]} for r in rules]
        total_real += sum(v["rows"] for v in rules.values())
        total_synth += sum(v["rows"] for v in rules_synth.values())
        pschema = ms.tables[link.parent]
        if target is not None and target in pschema and holdout is not None:
            util, found = _history_tstr(
                {"trtr": real, "tstr": synth, "holdout": holdout}, ms, tname, target,
                excluded=excluded, skip=skip, code=code, codes=codes, cats=cats,
                first_k=first_k, seed=seed)
            metrics.update(found)
            if "warning" in util:
                warnings.append(util["warning"])
            section["tstr"] = util
        sections[tname] = section
    aucs = [v for k, v in metrics.items() if k.startswith("history_detection_auc[") and v is not None]
    metrics["history_detection_auc"] = max(aucs) if aucs else None
    metrics["history_rule_violations"] = total_synth
    metrics["history_rule_violations_real"] = total_real
    return {"tables": sections, "metrics": metrics, "warnings": warnings}


def _history_tstr(tables: Mapping[str, Mapping[str, pd.DataFrame]], ms: Any, tname: str,
                  target: str, *, excluded: set[str], skip: set[str], code: str | None,
                  codes: list[str], cats: Mapping[str, list[str]], first_k: int,
                  seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-patient TSTR for child table ``tname``: the parent's ``target`` predicted from the
    parent row and the first ``first_k`` rows of the history, trained on real (``trtr``) or
    synthetic (``tstr``) patients and scored on the ``holdout`` patients. Returns the
    section (with a ``warning`` when real-on-real utility suggests a leak column) and the
    metrics it adds."""
    link, schema = ms.parent_link(tname), ms.tables[tname]
    pschema = ms.tables[link.parent]
    drop = {target, link.parent_column, *ms.primary_keys.get(link.parent, ())}
    drop |= {c.split(".", 1)[1] for c in excluded if c.startswith(f"{link.parent}.")}
    drop |= {c for c in excluded if "." not in c or c.split(".", 1)[0] not in ms.tables}
    child_skip = set(skip) | {c.split(".", 1)[1] for c in excluded
                              if c.startswith(f"{tname}.")} | {c for c in excluded if c in schema}

    def patients(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        parent = frames[link.parent].reset_index(drop=True)
        hist = history_features(frames[tname], schema, key=link.column, order=link.order_by,
                                parent_keys=parent[link.parent_column], skip=child_skip,
                                code=code, codes=codes, categories=cats, first_k=first_k)
        frame = pd.concat([_parent_matrix(parent, pschema, drop), hist], axis=1)
        frame[target] = parent[target].to_numpy()
        return frame

    is_numeric = pschema[target].kind.is_numeric
    util = _utility({"trtr": patients(tables["trtr"]), "tstr": patients(tables["tstr"])},
                    patients(tables["holdout"]), target, is_numeric,
                    _rng(seed, f"history.tstr.{tname}"))
    util.update(target=f"{link.parent}.{target}", first_k=first_k, excluded=sorted(excluded))
    key = "r2" if is_numeric else "auc"
    trtr = util.get(f"trtr_{key}")
    found = {f"history_tstr_{key}[{tname}]": util.get(f"tstr_{key}"),
             f"history_trtr_{key}[{tname}]": trtr}
    if trtr is not None and trtr >= LEAK_WARNING:
        util["warning"] = (f"history TSTR for {tname}: real-on-real {key} is {trtr:.3f} (>= "
                           f"{LEAK_WARNING}): a column probably leaks {link.parent}.{target}; "
                           "list it under evaluate.exclude")
    return util, found


__all__ = ["evaluate_histories", "history_features", "rule_violations"]
