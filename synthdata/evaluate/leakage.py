"""Leakage: does the synthetic data reveal the training rows?

Members are training rows, non-members are holdout rows; the holdout is the natural
baseline for every number here ("would an independent sample from the population look
this close?").

- exact copies: synthetic rows equal to a training row on every evaluated column (numbers
  rounded to 8 decimals), compared with the share of holdout rows that equal a training row.
- rare-value replay: the share of synthetic rows that carry, verbatim, a value of a
  discrete column that is rare in the training data (fewer than ``RARE_K`` training rows:
  a name, a rare diagnosis, any value of a high-cardinality column) or a combination of the
  schema's ``pii: quasi`` columns that fewer than ``RARE_K`` training rows share; compared
  with the same share of holdout rows (an independent sample meets some of those values too).
- distance to closest record (DCR): rows encoded by one :class:`RowEncoder` fitted on train
  (numbers by robust range, one-hot for discrete, missing as indicators), euclidean nearest
  neighbours (scikit-learn, brute force in float32). ``dcr_share`` is the share of synthetic
  rows closer to train than to holdout, *reweighted to equal sizes* (its odds divided by
  ``n_train / n_holdout``), so 0.5 is ideal whatever the split and 1.0 means every
  synthetic row sits on a training row; ties count one half. ``dcr_median_ratio`` is
  median DCR to a holdout-sized train subsample over median DCR to holdout (1 ideal,
  near 0 = copies). ``nndr`` is the median ratio of the nearest to the second-nearest
  training distance (0 for copies). For the report, the dcr entry also holds the NNDR
  distribution of synthetic rows and of holdout rows (the natural level) and a 2-D PCA
  embedding of the encoded rows as density grids (``embedding``; no row coordinates).
- membership inference: three attacks score members vs non-members; holdout is split in
  half into a reference set (what an attacker knows about the population) and the
  non-members: distance (closeness to the nearest synthetic row), density ratio
  (DOMIAS-style: local synthetic density over reference density, truncated Gaussian kernel
  on the 10 nearest rows), classifier (gradient boosting trained on synthetic vs reference
  rows; a member looks "synthetic"). Each gives ROC AUC and TPR at 1% FPR.
- singling-out, linkability and attribute-inference risks in the style of Anonymeter
  (Giomi et al. 2022): attack success on train, corrected by the success of the same
  attack on the holdout (control), ``risk = (attack - control) / (1 - control)``, Wilson
  score 95% intervals propagated to the risk; a naive baseline attack is reported beside.

Subsampling (uniform, seeded, documented in ``report.meta["subsampling"]``): nearest
neighbour references are capped at ``MAX_REFERENCE_ROWS`` rows, synthetic query rows at
``MAX_QUERY_ROWS``, membership sets at ``MAX_MIA_ROWS`` per side.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthdata._rng import child_seed
from synthdata.evaluate._data import (
    HGB_PARAMS,
    ColumnInfo,
    Prepared,
    RowEncoder,
    Table,
    model_matrix,
    subsample,
)
from synthdata.schema import ColumnKind, PiiRole, Schema

logger = logging.getLogger(__name__)

MAX_REFERENCE_ROWS = 20_000
MAX_QUERY_ROWS = 5_000
MAX_MIA_ROWS = 2_000
N_ATTACKS = 500               # records attacked per Anonymeter-style risk
SINGLING_OUT_COLS = 3         # columns per multivariate singling-out query
MAX_QUERY_ATTEMPTS = 20_000   # singling-out candidate queries tried at most
RARE_K = 10                   # a value or quasi-identifier combination in fewer training
                              # rows than this is rare (the k of k-anonymity)
INFERENCE_TOLERANCE = 0.05    # relative error that counts as a correct numeric guess
DEFAULT_MAX_DISCRETE_QUASI = 6
DEFAULT_MAX_NUMERIC_QUASI = 3
CONFIDENCE = 0.95
_Z = 1.959963984540054


def _nn(reference: np.ndarray, queries: np.ndarray, k: int = 1,
        metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference))
    algorithm = "brute" if metric == "euclidean" else "auto"
    nn = NearestNeighbors(n_neighbors=k, algorithm=algorithm, metric=metric).fit(reference)
    dist, idx = nn.kneighbors(queries)
    return dist, idx


# -- exact copies -------------------------------------------------------------------------

def row_keys(prepared: Prepared, table: Table) -> np.ndarray:
    """One 64-bit hash per row over all evaluated columns."""
    cols = {}
    for info in prepared.columns:
        x = table.values[info.name]
        cols[info.name] = (np.round(x, 8) + 0.0) if info.is_numeric else x
    return pd.util.hash_pandas_object(pd.DataFrame(cols), index=False).to_numpy()


def exact_copies(prepared: Prepared) -> dict[str, Any]:
    train_keys = row_keys(prepared, prepared.train)
    synth_keys = row_keys(prepared, prepared.synth)
    copies = np.isin(synth_keys, train_keys)
    out: dict[str, Any] = {"exact_copies": int(copies.sum()),
                           "exact_copy_share": float(copies.mean()),
                           "holdout_exact_copy_share": None, "exact_copy_excess": None,
                           "synth_duplicate_share": float(pd.Series(synth_keys).duplicated().mean())}
    if prepared.holdout is not None:
        from synthdata.privacy.intervals import clopper_pearson

        held = np.isin(row_keys(prepared, prepared.holdout), train_keys)
        out["holdout_exact_copy_share"] = float(held.mean())
        out["exact_copy_excess"] = out["exact_copy_share"] - out["holdout_exact_copy_share"]
        # the holdout's rate is itself an estimate from len(holdout) rows: a synthetic share
        # below this one-sided 95% upper bound is within the natural rate's uncertainty
        out["holdout_exact_copy_upper"] = clopper_pearson(int(held.sum()), len(held),
                                                          1 - CONFIDENCE)[1]
    return out


# -- rare-value replay ----------------------------------------------------------------------

def _combo_keys(frame: pd.DataFrame, table: Table, prepared: Prepared,
                columns: list[str]) -> pd.Series:
    """One text key per row over ``columns`` (numbers as prepared, rounded to 8 decimals)."""
    from synthdata.evaluate._data import category_keys

    parts = []
    for name in columns:
        if prepared.info(name).is_numeric:
            key = pd.Series(np.round(table.values[name], 8) + 0.0).astype(str)
        else:
            key = category_keys(frame[name]).fillna("\x00NA").astype(str)
        parts.append(key.reset_index(drop=True))
    out = parts[0]
    for part in parts[1:]:
        out = out + "\x1f" + part
    return out


def rare_value_replay(prepared: Prepared, train: pd.DataFrame, synth: pd.DataFrame,
                      holdout: pd.DataFrame | None, quasi: list[str],
                      k: int = RARE_K) -> dict[str, Any]:
    """Share of synthetic rows that replay a rare training value or quasi-identifier combination.

    A discrete value (or a combination of the ``quasi`` columns) is rare when fewer than
    ``k`` training rows hold it. ``rare_value_replay`` is the share of synthetic rows holding
    at least one rare training value or combination verbatim; ``holdout_rare_value_replay``
    the same share of holdout rows (the natural rate: an independent sample from the same
    population meets some rare values too); ``rare_value_replay_excess`` the difference.
    Only counts and shares are reported, never the values.
    """
    from synthdata.evaluate._data import category_keys

    frames = {"synthetic": synth.reset_index(drop=True), "train": train.reset_index(drop=True)}
    tables = {"synthetic": prepared.synth, "train": prepared.train}
    if holdout is not None and prepared.holdout is not None:
        frames["holdout"] = holdout.reset_index(drop=True)
        tables["holdout"] = prepared.holdout
    flagged = {label: np.zeros(len(f), dtype=bool) for label, f in frames.items()}
    per_column: dict[str, Any] = {}

    def score(name: str, keys: dict[str, pd.Series]) -> None:
        counts = keys["train"].value_counts(dropna=True)
        rare = set(counts.index[counts < k])
        entry: dict[str, Any] = {"n_train_values": int(len(counts)),
                                 "n_rare_train_values": len(rare)}
        for label, key in keys.items():
            hit = key.isin(rare).to_numpy() if rare else np.zeros(len(key), dtype=bool)
            flagged[label] |= hit
            if label != "train":
                entry[f"{label}_share"] = float(hit.mean())
        per_column[name] = entry

    for info in prepared.discrete:
        score(info.name, {label: category_keys(f[info.name]) for label, f in frames.items()})
    quasi = [q for q in quasi if q in prepared.names]
    if quasi:
        score("(" + ", ".join(quasi) + ")",
              {label: _combo_keys(f, tables[label], prepared, quasi)
               for label, f in frames.items()})
    out: dict[str, Any] = {"k": int(k), "quasi_columns": quasi, "columns": per_column,
                           "rare_value_replay": float(flagged["synthetic"].mean()),
                           "train_rare_value_share": float(flagged["train"].mean()),
                           "holdout_rare_value_replay": None, "rare_value_replay_excess": None}
    if "holdout" in frames:
        out["holdout_rare_value_replay"] = float(flagged["holdout"].mean())
        out["rare_value_replay_excess"] = (out["rare_value_replay"]
                                           - out["holdout_rare_value_replay"])
    if not per_column:
        out["note"] = ("no discrete column and no pii: quasi column: rare-value replay has "
                       "nothing to measure")
    return out


# -- distance to closest record ------------------------------------------------------------

@dataclass
class Encoded:
    """Encoded (subsampled) tables; ``synth`` is the reference set for the attacks and
    ``synth[queries]`` the rows whose distances DCR measures."""

    train: np.ndarray
    synth: np.ndarray
    queries: np.ndarray
    holdout: np.ndarray | None
    train_rows: np.ndarray   # positions in the train table of the encoded rows
    synth_rows: np.ndarray
    holdout_rows: np.ndarray | None


def encode(prepared: Prepared, rng: np.random.Generator) -> Encoded:
    enc = RowEncoder.fit(prepared)
    tr_rows = subsample(prepared.train.n_rows, MAX_REFERENCE_ROWS, rng)
    sy_rows = subsample(prepared.synth.n_rows, MAX_REFERENCE_ROWS, rng)
    ho, ho_rows = None, None
    if prepared.holdout is not None:
        ho_rows = subsample(prepared.holdout.n_rows, MAX_REFERENCE_ROWS, rng)
        ho = enc.transform(prepared.holdout.take(ho_rows))
    queries = subsample(len(sy_rows), MAX_QUERY_ROWS, rng)
    return Encoded(enc.transform(prepared.train.take(tr_rows)),
                   enc.transform(prepared.synth.take(sy_rows)), queries, ho, tr_rows, sy_rows,
                   ho_rows)


def dcr(enc: Encoded, rng: np.random.Generator) -> dict[str, Any]:
    queries = enc.synth[enc.queries]
    dist, _ = _nn(enc.train, queries, k=2)
    d1 = dist[:, 0]
    d2 = dist[:, 1] if dist.shape[1] > 1 else dist[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(d1 == 0, 0.0, d1 / np.where(d2 == 0, np.inf, d2))
    out: dict[str, Any] = {"nndr": float(np.median(ratio)), "dcr_share": None,
                           "dcr_median_ratio": None, "dcr_train_median": float(np.median(d1))}
    out["embedding"] = embedding(enc)
    if enc.holdout is None:
        out["note"] = "DCR share and ratio need a holdout; none was given"
        out["nndr_histogram"] = _nndr_histogram(enc, ratio, rng)
        return out
    d_ho = _nn(enc.holdout, queries)[0][:, 0]
    closer = np.mean(d1 < d_ho) + 0.5 * np.mean(d1 == d_ho)
    size_ratio = len(enc.train) / len(enc.holdout)
    if closer >= 1:
        share = 1.0
    else:
        odds = closer / (1 - closer) / size_ratio
        share = odds / (1 + odds)
    if len(enc.train) == len(enc.holdout):
        d_matched = d1  # already size-matched: no second search
    else:
        matched = enc.train[subsample(len(enc.train), len(enc.holdout), rng)]
        d_matched = _nn(matched, queries)[0][:, 0]
    med_ho = float(np.median(d_ho))
    out.update({
        "dcr_share": float(share), "dcr_share_raw": float(closer),
        "dcr_median_ratio": float(np.median(d_matched) / med_ho) if med_ho > 0 else None,
        "dcr_holdout_median": med_ho,
        "histogram": _histogram(d_matched, d_ho),
        "n_synthetic_queries": len(queries),
    })
    # last: its holdout subsample must not shift the draws above (same metrics as before)
    out["nndr_histogram"] = _nndr_histogram(enc, ratio, rng)
    return out


def _histogram(d_train: np.ndarray, d_holdout: np.ndarray, bins: int = 40) -> dict[str, Any]:
    hi = float(np.quantile(np.r_[d_train, d_holdout], 0.99)) or 1.0
    edges = np.linspace(0, hi, bins + 1)
    return {"edges": edges.tolist(),
            "train": np.histogram(np.clip(d_train, 0, hi), edges)[0].tolist(),
            "holdout": np.histogram(np.clip(d_holdout, 0, hi), edges)[0].tolist()}


N_NNDR_BINS = 20
N_EMBEDDING_BINS = 40


def _nndr(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    dist, _ = _nn(reference, queries, k=2)
    d1 = dist[:, 0]
    d2 = dist[:, 1] if dist.shape[1] > 1 else dist[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d1 == 0, 0.0, d1 / np.where(d2 == 0, np.inf, d2))


def _nndr_histogram(enc: Encoded, ratio: np.ndarray, rng: np.random.Generator
                    ) -> dict[str, Any]:
    """Distribution of the NNDR of synthetic rows, and of holdout rows (the natural level).

    Shares of rows per bin of [0, 1]; the holdout side queries at most as many rows as the
    synthetic side (``None`` without a holdout).
    """
    edges = np.linspace(0.0, 1.0, N_NNDR_BINS + 1)
    out: dict[str, Any] = {"edges": edges.tolist(),
                           "synth": (np.histogram(np.clip(ratio, 0, 1), edges)[0]
                                     / max(len(ratio), 1)).tolist(), "holdout": None}
    if enc.holdout is not None and len(enc.train) > 1:
        rows = subsample(len(enc.holdout), len(enc.queries), rng)
        ho = _nndr(enc.train, enc.holdout[rows])
        out["holdout"] = (np.histogram(np.clip(ho, 0, 1), edges)[0] / max(len(ho), 1)).tolist()
        out["holdout_median"] = float(np.median(ho))
    return out


def embedding(enc: Encoded) -> dict[str, Any] | None:
    """2-D PCA of the encoded rows (axes fitted on train) as density grids per side.

    The grids hold the share of rows per cell of a common 40 x 40 grid over the real rows'
    0.5-99.5% range (rows outside are left out): densities, never coordinates of a row.
    """
    if enc.train.shape[1] < 2 or len(enc.train) < 3:
        return None
    mean = enc.train.mean(axis=0)
    _, sing, vt = np.linalg.svd(enc.train - mean, full_matrices=False)
    axes = vt[:2].T
    var = sing ** 2
    explained = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
    sides = {"real": enc.train, "synth": enc.synth}
    if enc.holdout is not None:
        sides["holdout"] = enc.holdout
    proj = {k: (v - mean) @ axes for k, v in sides.items()}
    lo = np.quantile(proj["real"], 0.005, axis=0)
    hi = np.quantile(proj["real"], 0.995, axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    pad = 0.05 * (hi - lo)
    xe = np.linspace(lo[0] - pad[0], hi[0] + pad[0], N_EMBEDDING_BINS + 1)
    ye = np.linspace(lo[1] - pad[1], hi[1] + pad[1], N_EMBEDDING_BINS + 1)
    out: dict[str, Any] = {"method": "pca", "explained_variance": explained,
                           "x_edges": xe.tolist(), "y_edges": ye.tolist()}
    for k, p in proj.items():
        grid = np.histogram2d(p[:, 0], p[:, 1], bins=[xe, ye])[0]
        out[k] = (grid / max(len(p), 1)).round(6).tolist()
    return out


# -- membership inference ------------------------------------------------------------------

def _roc(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    tpr_at = float(np.max(tpr[fpr <= 0.01])) if np.any(fpr <= 0.01) else 0.0
    grid = np.linspace(0, 1, 101)
    return {"auc": float(roc_auc_score(y, score)), "tpr_at_1pct_fpr": tpr_at,
            "roc": {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).round(5).tolist()}}


def membership_inference(prepared: Prepared, enc: Encoded,
                         rng: np.random.Generator) -> dict[str, Any]:
    if prepared.holdout is None or enc.holdout is None or enc.holdout_rows is None:
        return {"note": "membership inference needs a holdout (non-members); none was given"}
    n_ho = len(enc.holdout)
    if n_ho < 20:
        return {"note": f"membership inference needs at least 20 holdout rows, got {n_ho}"}
    perm = rng.permutation(n_ho)
    ref_idx, non_idx = np.sort(perm[: n_ho // 2]), np.sort(perm[n_ho // 2:])
    n = min(len(non_idx), len(enc.train), MAX_MIA_ROWS)
    non_idx = non_idx[subsample(len(non_idx), n, rng)]
    mem_idx = subsample(len(enc.train), n, rng)
    queries = np.vstack([enc.train[mem_idx], enc.holdout[non_idx]])
    reference = enc.holdout[ref_idx]
    y = np.r_[np.ones(n), np.zeros(n)]
    attacks: dict[str, Any] = {}

    # 1. distance: a member sits closer to some synthetic row
    k = 10
    d_syn, _ = _nn(enc.synth, queries, k=k)
    attacks["distance"] = _roc(y, -d_syn[:, 0])

    # 2. density ratio (DOMIAS-style): synthetic density over reference density, both by a
    # Gaussian kernel truncated to the k nearest rows; the kernel width is the median
    # nearest-neighbour distance within the reference set.
    d_ref, _ = _nn(reference, queries, k=k)
    width = float(np.median(_nn(reference, reference, k=2)[0][:, -1])) or 1.0

    def log_kde(d: np.ndarray, size: int) -> np.ndarray:
        return np.log(np.exp(-0.5 * (d / width) ** 2).sum(1) / size + 1e-300)

    attacks["density"] = _roc(y, log_kde(d_syn, len(enc.synth))
                              - log_kde(d_ref, len(reference)))

    # 3. classifier: gradient boosting trained on synthetic vs reference rows; a member
    # the generator memorised looks "synthetic".
    from sklearn.ensemble import HistGradientBoostingClassifier

    names = prepared.names
    syn_rows = enc.synth_rows[subsample(len(enc.synth_rows),
                                        min(len(enc.synth_rows), 4 * len(ref_idx)), rng)]
    x_ref, is_cat = model_matrix(prepared, prepared.holdout.take(enc.holdout_rows[ref_idx]),
                                 names)
    x_syn, _ = model_matrix(prepared, prepared.synth.take(syn_rows), names)
    x_fit = np.vstack([x_syn, x_ref])
    y_fit = np.r_[np.ones(len(x_syn)), np.zeros(len(x_ref))]
    weight = np.where(y_fit == 1, len(x_ref) / len(x_syn), 1.0)
    clf = HistGradientBoostingClassifier(categorical_features=is_cat, random_state=child_seed(rng),
                                         **HGB_PARAMS)
    clf.fit(x_fit, y_fit, sample_weight=weight)
    x_mem, _ = model_matrix(prepared, prepared.train.take(enc.train_rows[mem_idx]), names)
    x_non, _ = model_matrix(prepared, prepared.holdout.take(enc.holdout_rows[non_idx]), names)
    attacks["classifier"] = _roc(y, clf.predict_proba(np.vstack([x_mem, x_non]))[:, 1])

    return {"attacks": attacks,
            "mia_auc": max(a["auc"] for a in attacks.values()),
            "mia_tpr_at_1pct_fpr": max(a["tpr_at_1pct_fpr"] for a in attacks.values()),
            "n_members": int(n), "n_non_members": int(n), "n_reference": int(len(ref_idx))}


# -- Anonymeter-style risks -----------------------------------------------------------------

def choose_roles(schema: Schema, prepared: Prepared,
                 target: str | None) -> tuple[list[str], list[str], list[str]]:
    """Pick quasi-identifier and sensitive columns; return (quasi, sensitive, notes).

    Quasi: the schema's ``pii: quasi`` columns. When none is declared, the default is the
    first ``DEFAULT_MAX_DISCRETE_QUASI`` non-constant discrete columns plus the first
    ``DEFAULT_MAX_NUMERIC_QUASI`` numeric columns (integer and datetime before continuous),
    in schema order, never a sensitive column. Sensitive: the schema's ``pii: sensitive``
    columns, else the target when given, else none (inference risk is skipped).
    """
    names = set(prepared.names)
    notes = []
    sensitive = [n for n in schema.roles(PiiRole.SENSITIVE) if n in names]
    if not sensitive and target is not None and target in names:
        sensitive = [target]
        notes.append(f"no column is declared pii: sensitive; the target {target!r} is the "
                     "secret of the inference attack")
    elif not sensitive:
        notes.append("no column is declared pii: sensitive and no target was given; "
                     "inference risk was not computed")
    quasi = [n for n in schema.roles(PiiRole.QUASI) if n in names and n not in sensitive]
    if not quasi:
        def varies(c: ColumnInfo) -> bool:  # a constant column identifies no one
            x = prepared.train.values[c.name]
            x = x[~np.isnan(x)] if c.is_numeric else x[x != c.missing_code]
            return len(np.unique(x)) > 1

        discrete = [c.name for c in prepared.discrete if c.name not in sensitive and varies(c)]
        numeric = sorted((c for c in prepared.numeric if c.name not in sensitive and varies(c)),
                         key=lambda c: c.kind == ColumnKind.CONTINUOUS)
        quasi = (discrete[:DEFAULT_MAX_DISCRETE_QUASI]
                 + [c.name for c in numeric[:DEFAULT_MAX_NUMERIC_QUASI]])
        quasi = [n for n in prepared.names if n in quasi]
        notes.append(f"no column is declared pii: quasi; default quasi-identifiers: {quasi}")
    return quasi, sensitive, notes


def success_rate(n_total: float, n_success: float) -> tuple[float, float]:
    """Wilson score estimate of a success rate and its 95% error bound."""
    if n_total <= 0:
        return 0.0, 1.0
    z2 = _Z * _Z
    var = n_success * (n_total - n_success) / n_total
    denominator = n_total + z2
    rate = (n_success + 0.5 * z2) / denominator
    error = (_Z / denominator) * math.sqrt(max(var, 0.0) + 0.25 * z2)
    return rate, error


def risk_from_counts(n_attacks: int, n_success: float, n_control: float | None,
                     n_baseline: float) -> dict[str, Any]:
    """Risk = attack success in excess of control success, bounded to [0, 1], with a CI."""
    attack, attack_err = success_rate(n_attacks, n_success)
    baseline, _ = success_rate(n_attacks, n_baseline)
    out: dict[str, Any] = {"n_attacks": int(n_attacks), "n_success": float(n_success),
                           "n_baseline": float(n_baseline), "attack_rate": attack,
                           "baseline_rate": baseline, "control_rate": None}
    if n_control is None:
        value, error = attack, attack_err
    else:
        control, control_err = success_rate(n_attacks, n_control)
        out.update(n_control=float(n_control), control_rate=control)
        if control >= 1:
            value, error = 0.0, 1.0
        else:
            value = (attack - control) / (1 - control)
            error = math.sqrt((attack_err / (1 - control)) ** 2
                              + (control_err * (attack - 1) / (1 - control) ** 2) ** 2)
    clip = lambda v: min(max(v, 0.0), 1.0)  # noqa: E731
    out.update(risk=clip(value), ci_low=clip(value - error), ci_high=clip(value + error),
               attack_better_than_baseline=bool(attack > baseline))
    return out


@dataclass(frozen=True)
class _Cond:
    column: str
    op: str
    value: float


_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "eq": lambda x, v: x == v, "ne": lambda x, v: x != v, "ge": lambda x, v: x >= v,
    "le": lambda x, v: x <= v, "gt": lambda x, v: x > v, "lt": lambda x, v: x < v,
    "isnan": lambda x, v: np.isnan(x), "notnan": lambda x, v: ~np.isnan(x),
}


def _match(query: tuple[_Cond, ...], cols: dict[str, np.ndarray]) -> np.ndarray:
    first, *rest = query
    mask = _OPS[first.op](cols[first.column], first.value)
    for c in rest:
        mask &= _OPS[c.op](cols[c.column], c.value)
    return mask


def _quasi_arrays(prepared: Prepared, table: Table, quasi: list[str]) -> tuple[dict, np.ndarray]:
    """Quasi columns as float arrays (discrete missing code -> NaN), duplicates removed.

    Returns the arrays and the positions (in ``table``) of the kept rows.
    """
    cols = {}
    for name in quasi:
        info = prepared.info(name)
        x = table.values[name].astype(float)
        if not info.is_numeric:
            x[x == info.missing_code] = np.nan
        cols[name] = x
    frame = pd.DataFrame(cols)
    keep = np.flatnonzero(~frame.duplicated().to_numpy())
    return {k: v[keep] for k, v in cols.items()}, keep


def _so_probability_integral(n: np.ndarray, w: float) -> np.ndarray:
    return (1 - (n * w + 1) * (1 - w) ** n) / (n + 1)


def _size_correction(masks: np.ndarray, n_target: int, rng: np.random.Generator) -> float:
    """Scale control successes to the train size (Anonymeter's fitted singling-out model)."""
    from scipy.optimize import curve_fit

    n_rows = masks.shape[1]
    sizes, successes = [], []
    for size in np.linspace(min(1000, n_rows), n_rows, 10).astype(int):
        for _ in range(5):
            idx = rng.choice(n_rows, size=size, replace=False)
            successes.append(int((masks[:, idx].sum(1) == 1).sum()))
            sizes.append(size)
    sizes_a, succ_a = np.array(sizes, dtype=float), np.array(successes, dtype=float)

    def model(x: np.ndarray, w: float, norm: float) -> np.ndarray:
        return norm * _so_probability_integral(x, w)

    w0 = 1 / sizes_a.max()
    p0 = (w0, 1 / float(_so_probability_integral(np.array(sizes_a.max()), w0)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, _ = curve_fit(model, sizes_a, succ_a, p0=p0, bounds=(0, (1, np.inf)))
        denom = float(model(np.array(float(n_rows)), *popt))
        return float(model(np.array(float(n_target)), *popt)) / denom if denom > 0 else 1.0
    except (RuntimeError, ValueError) as err:
        logger.info("singling-out size correction not fitted (%s); none applied", err)
        return 1.0


def singling_out(prepared: Prepared, quasi: list[str], rng: np.random.Generator,
                 n_attacks: int = N_ATTACKS) -> dict[str, Any]:
    """Multivariate singling out: predicates that isolate one synthetic row, tried on train."""
    if prepared.holdout is None:
        return {"note": "singling-out risk needs a holdout (control); none was given"}
    if not quasi:
        return {"note": "no quasi-identifier column to build singling-out queries from"}
    n_cols = min(SINGLING_OUT_COLS, len(quasi))
    syn, _ = _quasi_arrays(prepared, prepared.synth, quasi)
    ori, ori_rows = _quasi_arrays(prepared, prepared.train, quasi)
    ctl, _ = _quasi_arrays(prepared, prepared.holdout, quasi)
    n_syn = len(next(iter(syn.values())))
    medians = {q: float(np.nanmedian(syn[q])) if np.isfinite(syn[q]).any() else 0.0
               for q in quasi}
    numeric = {q: prepared.info(q).is_numeric for q in quasi}
    queries: list[tuple[_Cond, ...]] = []
    seen: set[tuple[_Cond, ...]] = set()
    attempts, batch = 0, 1000
    while len(queries) < n_attacks and attempts < MAX_QUERY_ATTEMPTS:
        # draw a batch of (record, column subset) pairs at once
        rows = rng.integers(n_syn, size=batch)
        subsets = np.sort(np.argsort(rng.random((batch, len(quasi))), axis=1)[:, :n_cols],
                          axis=1)
        for row, chosen in zip(rows.tolist(), subsets.tolist()):
            attempts += 1
            conds = []
            for j in chosen:
                q = quasi[j]
                v = float(syn[q][row])
                if np.isnan(v):
                    conds.append(_Cond(q, "isnan", 0.0))
                elif numeric[q]:
                    conds.append(_Cond(q, "ge" if v > medians[q] else "le", v))
                else:
                    conds.append(_Cond(q, "eq", v))
            query = tuple(conds)
            if query in seen:
                continue
            seen.add(query)
            if int(_match(query, syn).sum()) == 1:
                queries.append(query)
                if len(queries) >= n_attacks:
                    break
    if not queries:
        return {"note": "no query singles out a synthetic row; singling-out risk is 0",
                "risk": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n_attacks": 0}
    ori_masks = np.array([_match(q, ori) for q in queries])
    ori_hits = ori_masks.sum(1) == 1
    n_success = int(ori_hits.sum())
    ctl_masks = np.array([_match(q, ctl) for q in queries])
    n_control = float((ctl_masks.sum(1) == 1).sum())
    n_ctl_rows, n_ori_rows = ctl_masks.shape[1], ori_masks.shape[1]
    if n_ctl_rows != n_ori_rows and n_control > 0:
        n_control = min(n_control * _size_correction(ctl_masks, n_ori_rows, rng),
                        float(len(queries)))
    # baseline: random predicates from the synthetic values, random operators
    uniques = {q: np.unique(syn[q]) for q in quasi}  # NaN kept once (np.unique keeps NaNs)
    n_baseline = 0
    n_q = len(queries)
    subsets = np.sort(np.argsort(rng.random((n_q, len(quasi))), axis=1)[:, :n_cols], axis=1)
    picks = rng.random((n_q, n_cols, 2))
    for i, chosen in enumerate(subsets.tolist()):
        conds = []
        for k, j in enumerate(chosen):
            q = quasi[j]
            v = float(uniques[q][int(picks[i, k, 0] * len(uniques[q]))])
            ops = (["isnan", "notnan"] if np.isnan(v) else
                   ["eq", "ne", "gt", "lt", "ge", "le"] if numeric[q] else ["eq", "ne"])
            conds.append(_Cond(q, ops[int(picks[i, k, 1] * len(ops))], v))
        n_baseline += int(_match(tuple(conds), ori).sum() == 1)
    out = risk_from_counts(len(queries), n_success, n_control, n_baseline)
    exposed = ori_masks[ori_hits].argmax(1)
    out.update(columns=quasi, n_cols=n_cols, query_attempts=attempts,
               record_hits=np.bincount(ori_rows[exposed], minlength=prepared.train.n_rows))
    return out


def _gower(prepared: Prepared, cols: list[str]) -> RowEncoder:
    return RowEncoder.fit(prepared, cols, scale="range", onehot_weight=0.5)


def linkability(prepared: Prepared, quasi: list[str], rng: np.random.Generator,
                n_attacks: int = N_ATTACKS) -> dict[str, Any]:
    """Split the quasi columns in two halves; a target is linked when both halves have the
    same nearest synthetic row (Gower distance)."""
    if prepared.holdout is None:
        return {"note": "linkability risk needs a holdout (control); none was given"}
    if len(quasi) < 2:
        return {"note": "linkability needs at least two quasi-identifier columns"}
    half = len(quasi) // 2
    aux = (quasi[:half], quasi[half:])
    n = min(n_attacks, prepared.train.n_rows, prepared.holdout.n_rows)
    syn = prepared.synth.take(subsample(prepared.synth.n_rows, MAX_REFERENCE_ROWS, rng))
    tgt_rows = subsample(prepared.train.n_rows, n, rng)
    targets = prepared.train.take(tgt_rows)
    controls = prepared.holdout.take(subsample(prepared.holdout.n_rows, n, rng))
    linked = {}
    for label, table in (("train", targets), ("control", controls)):
        idx = []
        for cols in aux:
            enc = _gower(prepared, cols)
            idx.append(_nn(enc.transform(syn), enc.transform(table), metric="manhattan")[1][:, 0])
        linked[label] = idx[0] == idx[1]
    base = rng.integers(syn.n_rows, size=n) == rng.integers(syn.n_rows, size=n)
    out = risk_from_counts(n, int(linked["train"].sum()), int(linked["control"].sum()),
                           int(base.sum()))
    hits = np.zeros(prepared.train.n_rows, dtype=np.int64)
    hits[tgt_rows[linked["train"]]] = 1
    out.update(columns=[list(a) for a in aux], record_hits=hits)
    return out


def inference(prepared: Prepared, quasi: list[str], sensitive: list[str],
              rng: np.random.Generator, n_attacks: int = N_ATTACKS) -> dict[str, Any]:
    """Guess each secret from the nearest synthetic row on the quasi columns (Gower).

    The reported risk is the largest over the sensitive columns.
    """
    if prepared.holdout is None:
        return {"note": "inference risk needs a holdout (control); none was given"}
    if not sensitive:
        return {"note": "no sensitive column and no target: inference risk was not computed"}
    n = min(n_attacks, prepared.train.n_rows, prepared.holdout.n_rows)
    syn = prepared.synth.take(subsample(prepared.synth.n_rows, MAX_REFERENCE_ROWS, rng))
    per_secret: dict[str, Any] = {}
    hits = np.zeros(prepared.train.n_rows, dtype=np.int64)
    for secret in sensitive:
        aux = [q for q in quasi if q != secret]
        if not aux:
            per_secret[secret] = {"note": "no quasi column left as auxiliary information"}
            continue
        info = prepared.info(secret)
        enc = _gower(prepared, aux)
        syn_x = enc.transform(syn)
        tgt_rows = subsample(prepared.train.n_rows, n, rng)
        counts = {}
        for label, table in (("train", prepared.train.take(tgt_rows)),
                             ("control", prepared.holdout.take(
                                 subsample(prepared.holdout.n_rows, n, rng)))):
            idx = _nn(syn_x, enc.transform(table), metric="manhattan")[1][:, 0]
            ok = _guess_ok(info, syn.values[secret][idx], table.values[secret])
            counts[label] = ok
        guesses = syn.values[secret][rng.integers(syn.n_rows, size=n)]
        base = _guess_ok(info, guesses, prepared.train.take(tgt_rows).values[secret])
        res = risk_from_counts(n, int(counts["train"].sum()), int(counts["control"].sum()),
                               int(base.sum()))
        res["aux_columns"] = aux
        per_secret[secret] = res
        hits[tgt_rows[counts["train"]]] += 1
    scored = {k: v for k, v in per_secret.items() if "risk" in v}
    if not scored:
        return {"note": "no sensitive column could be attacked", "per_secret": per_secret}
    worst = max(scored, key=lambda k: scored[k]["risk"])
    out = dict(scored[worst])
    out.update(secret=worst, per_secret=per_secret, record_hits=hits)
    return out


def _guess_ok(info: ColumnInfo, guess: np.ndarray, truth: np.ndarray) -> np.ndarray:
    if not info.is_numeric:
        return guess == truth
    both_nan = np.isnan(guess) & np.isnan(truth)
    with np.errstate(invalid="ignore"):
        close = np.abs(guess - truth) <= INFERENCE_TOLERANCE * np.abs(guess)
    return both_nan | close


def exposed_records(*hits: np.ndarray | None, top: int = 10) -> list[dict[str, int]]:
    """Training rows hit by the most risk attacks (positions only, never values)."""
    arrays = [h for h in hits if h is not None]
    if not arrays:
        return []
    names = ("singled_out", "linked", "inferred")
    total = np.sum(arrays, axis=0)
    order = np.argsort(-total, kind="stable")[:top]
    out = []
    for row in order:
        if total[row] <= 0:
            break
        rec = {"row": int(row), "attacks_succeeded": int(total[row])}
        for name, h in zip(names, hits):
            if h is not None:
                rec[name] = int(h[row])
        out.append(rec)
    return out
