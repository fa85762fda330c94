"""Per-group fidelity, utility and fairness: does the synthetic data treat every group as the
real data does?

For each sensitive column (``evaluate.sensitive``, by default the schema's ``pii: sensitive``
columns) and each of its groups: the row share in the real training data vs the synthetic
data, the shapes within the group (1 - per-column distance, as ``shapes``), a real-vs-synthetic
detection AUC within the group, the outcome rate of a declared target, and - with a holdout -
the ROC AUC per group of a model trained on synthetic rows (TSTR) vs one trained on real rows
(TRTR), with fairlearn's demographic parity and equalised odds differences and a per-group
calibration gap for both models.

A numeric sensitive column is cut into four bands at the training quartiles. A group with
fewer than ``min_group_size`` rows (default 20) on the side a number is computed from is
suppressed: its numbers are ``None`` and its size is reported as "< min_group_size".

Gate metrics (over every sensitive column): ``worst_group_shapes`` (lowest within-group
shapes), ``group_share_difference`` (largest |real share - synthetic share|),
``tstr_worst_group_ratio`` (lowest TSTR AUC / TRTR AUC over groups), and
``tstr_dp_difference`` / ``tstr_eo_difference`` with their TRTR baselines.
Every number here reads the real data: under DP the section is internal QA, not private.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthdata._rng import child_seed, make_rng
from synthdata.errors import ConfigError
from synthdata.evaluate import fidelity
from synthdata.evaluate._data import (
    HGB_PARAMS,
    ColumnInfo,
    Prepared,
    Table,
    model_matrix,
    prepare,
    subsample,
)
from synthdata.schema.model import PiiRole, Schema

DEFAULT_MIN_GROUP = 20
N_BANDS = 4
# per-group detection (a 3-fold classifier per group) runs on the largest groups of a column
# only; the others show None for it (their shares, shapes and utility are still computed)
MAX_DETECTION_GROUPS = 6
GROUP_METRICS = ("worst_group_shapes", "group_share_difference", "tstr_worst_group_ratio",
                 "tstr_dp_difference", "trtr_dp_difference", "tstr_eo_difference",
                 "trtr_eo_difference")


def sensitive_columns(schema: Schema, requested: list[str] | tuple[str, ...] | None) -> list[str]:
    """The columns to group by: ``requested``, else the schema's ``pii: sensitive`` ones."""
    if requested:
        missing = [c for c in requested if c not in schema.names]
        if missing:
            raise ConfigError(f"evaluate.sensitive: column(s) {missing} are not in the data; "
                              f"choose from {list(schema.names)}")
        return list(requested)
    return list(schema.roles(PiiRole.SENSITIVE))


def _groups(info: ColumnInfo, prepared: Prepared) -> tuple[list[str], dict[str, np.ndarray]]:
    """Group labels and the group index of every row of each table (-1: no group)."""
    tables = {"train": prepared.train, "synthetic": prepared.synth}
    if prepared.holdout is not None:
        tables["holdout"] = prepared.holdout
    if not info.is_numeric:
        labels = [str(c) for c in info.categories]
        out = {}
        for key, table in tables.items():
            codes = table.values[info.name].astype(np.int64)
            out[key] = np.where(codes < info.n_categories, codes, -1)
        return labels, out
    x = prepared.train.values[info.name]
    edges = np.unique(np.nanquantile(x, np.linspace(0, 1, N_BANDS + 1))) if \
        np.isfinite(x).any() else np.array([0.0, 1.0])
    inner = edges[1:-1]
    labels = [f"< {inner[0]:g}"] if len(inner) else ["all"]
    labels += [f"[{a:g}, {b:g})" for a, b in zip(inner[:-1], inner[1:], strict=True)]
    if len(inner):
        labels.append(f">= {inner[-1]:g}")
    out = {}
    for key, table in tables.items():
        v = table.values[info.name]
        idx = np.searchsorted(inner, v, side="right")
        out[key] = np.where(np.isnan(v), -1, idx)
    return labels, out


def _sub(prepared: Prepared, masks: dict[str, np.ndarray]) -> Prepared:
    hold = prepared.holdout
    return Prepared(columns=prepared.columns, excluded=prepared.excluded,
                    train=prepared.train.take(np.flatnonzero(masks["train"])),
                    synth=prepared.synth.take(np.flatnonzero(masks["synthetic"])),
                    holdout=None if hold is None else hold.take(np.flatnonzero(masks["holdout"])))


def _shapes(prepared: Prepared, skip: str) -> float | None:
    names = [n for n in prepared.names if n != skip]
    if not names:
        return None
    d = [fidelity.column_distance(prepared, n, prepared.train, prepared.synth) for n in names]
    return float(1.0 - np.mean(d))


def _outcome(info: ColumnInfo, table: Table, positive: int | None) -> float | None:
    y = table.values[info.name]
    if info.is_numeric:
        y = y[~np.isnan(y)]
        return float(np.mean(y)) if len(y) else None
    y = y[y < info.n_categories]
    if not len(y) or positive is None:
        return None
    return float(np.mean(y == positive))


class _Models:
    """The TSTR and TRTR classifiers' holdout predictions, fitted once on all rows."""

    def __init__(self, prepared: Prepared, target: str, rng: np.random.Generator,
                 exclude: tuple[str, ...] | list[str] = ()) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        info = prepared.info(target)
        assert prepared.holdout is not None
        self.features = [n for n in prepared.names if n != target and n not in exclude]
        hold = prepared.holdout
        self.y = hold.values[target]
        self.ok = self.y < info.n_categories
        x_test, is_cat = model_matrix(prepared, hold, self.features)
        self.proba: dict[str, np.ndarray | None] = {}
        self.positive = _positive_code(prepared, target)
        for label, table in (("trtr", prepared.train), ("tstr", prepared.synth)):
            y_fit = table.values[target]
            keep = np.flatnonzero(y_fit < info.n_categories)
            keep = keep[subsample(len(keep), fidelity.MAX_MODEL_ROWS, rng)]
            x_fit, _ = model_matrix(prepared, table.take(keep), self.features)
            y_fit = y_fit[keep] == self.positive
            if len(np.unique(y_fit)) < 2:
                self.proba[label] = None
                continue
            model = HistGradientBoostingClassifier(categorical_features=is_cat,
                                                   random_state=child_seed(rng), **HGB_PARAMS)
            model.fit(x_fit, y_fit)
            self.proba[label] = model.predict_proba(x_test)[:, 1]


def _positive_code(prepared: Prepared, target: str) -> int | None:
    """The positive class of a two-class target: the rarer class in the training data."""
    info = prepared.info(target)
    if info.is_numeric or info.n_categories != 2:
        return None
    y = prepared.train.values[target]
    counts = np.bincount(y[y < 2].astype(np.int64), minlength=2)
    return int(np.argmin(counts))


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, p))


def _fairness(models: _Models, groups: np.ndarray) -> dict[str, Any]:
    """fairlearn's demographic parity and equalised odds differences for both models."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    ok = models.ok & (groups >= 0)
    y = models.y[ok] == models.positive
    out: dict[str, Any] = {}
    for label in ("tstr", "trtr"):
        p = models.proba[label]
        if p is None or len(np.unique(groups[ok])) < 2 or len(np.unique(y)) < 2:
            out[f"{label}_dp_difference"] = out[f"{label}_eo_difference"] = None
            continue
        pred = p[ok] >= 0.5
        out[f"{label}_dp_difference"] = float(demographic_parity_difference(
            y, pred, sensitive_features=groups[ok]))
        out[f"{label}_eo_difference"] = float(equalized_odds_difference(
            y, pred, sensitive_features=groups[ok]))
    return out


def group_report(train: pd.DataFrame, synth: pd.DataFrame, *, holdout: pd.DataFrame | None,
                 schema: Schema, sensitive: list[str] | tuple[str, ...] | None = None,
                 target: str | None = None, min_group_size: int = DEFAULT_MIN_GROUP,
                 seed: int = 0, detection: bool = True,
                 exclude: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Per-group fidelity, utility and fairness (see the module docstring).

    ``detection=False`` skips the per-group real-vs-synthetic classifier (the slowest part).
    ``exclude``: leak columns left out of the TSTR/TRTR models (``evaluate.exclude``).

    Returns ``{"metrics": {...gate metrics...}, "columns": {column: {...}}, "worst_group": ...,
    "notes": [...]}``; the metrics are None when nothing could be computed.
    """
    if min_group_size < 1:
        raise ConfigError(f"evaluate.min_group_size must be >= 1, got {min_group_size}")
    import sklearn.ensemble  # noqa: F401  (threadpoolctl limits loaded libraries only)
    from threadpoolctl import threadpool_limits

    # many small classifier fits: one OpenMP thread each. With the default (all cores) and
    # another busy process on a 2-core machine, this step took 280-345 s instead of ~16 s
    # (threads spin-waiting on each other).
    with threadpool_limits(limits=1, user_api="openmp"):
        return _group_report(train, synth, holdout=holdout, schema=schema, sensitive=sensitive,
                             target=target, min_group_size=min_group_size, seed=seed,
                             detection=detection, exclude=exclude)


def _group_report(train: pd.DataFrame, synth: pd.DataFrame, *, holdout: pd.DataFrame | None,
                  schema: Schema, sensitive: list[str] | tuple[str, ...] | None,
                  target: str | None, min_group_size: int, seed: int,
                  detection: bool, exclude: tuple[str, ...] | list[str]) -> dict[str, Any]:
    columns = sensitive_columns(schema, sensitive)
    metrics: dict[str, Any] = {m: None for m in GROUP_METRICS}
    out: dict[str, Any] = {"metrics": metrics, "columns": {}, "worst_group": None,
                           "min_group_size": min_group_size, "notes": []}
    if not columns:
        out["notes"].append("no sensitive column: declare evaluate.sensitive or pii: sensitive "
                            "in the schema to see per-group numbers")
        return out
    prepared = prepare(train, synth, holdout, schema)
    rng = make_rng(seed)
    classification = target is not None and target in prepared.names and \
        _positive_code(prepared, target) is not None
    models = _Models(prepared, target, rng, exclude) if target is not None and classification \
        and holdout is not None else None
    if target is not None and not classification:
        out["notes"].append(f"per-group TSTR and fairness need a two-class target; {target!r} "
                            "is not one")
    worst: dict[str, Any] | None = None
    shapes_all, share_diffs, ratios = [], [], []
    fair_all: dict[str, list[float]] = {}
    for name in columns:
        if name not in prepared.names:
            out["notes"].append(f"sensitive column {name!r} is not evaluated (kind id/text)")
            continue
        info = prepared.info(name)
        labels, idx = _groups(info, prepared)
        sizes = np.bincount(idx["train"][idx["train"] >= 0], minlength=len(labels))
        detect = set(np.argsort(-sizes, kind="stable")[:MAX_DETECTION_GROUPS].tolist()) \
            if detection else set()
        if detection and len(labels) > MAX_DETECTION_GROUPS:
            out["notes"].append(f"{name}: per-group detection on the {MAX_DETECTION_GROUPS} "
                                f"largest of {len(labels)} groups")
        rows = []
        overall = _shapes(prepared, name)   # the same columns over all rows: the reference
        for g, label in enumerate(labels):
            row = _group_row(prepared, info, g, label, idx, target, models, min_group_size, rng,
                             g in detect)
            rows.append(row)
            if row["shapes"] is not None:
                shapes_all.append(row["shapes"])
                if worst is None or row["shapes"] < worst["shapes"]:
                    worst = {"group": f"{name} = {label}", "column": name, "value": label,
                             "shapes": row["shapes"], "overall_shapes": overall,
                             "gap": None if overall is None else overall - row["shapes"]}
            if row["share_difference"] is not None:
                share_diffs.append(abs(row["share_difference"]))
            if row.get("tstr_trtr_ratio") is not None:
                ratios.append(row["tstr_trtr_ratio"])
        entry: dict[str, Any] = {"groups": rows}
        if models is not None:
            fair = _fairness(models, idx["holdout"])
            entry["fairness"] = fair
            for k, v in fair.items():
                if v is not None:
                    fair_all.setdefault(k, []).append(v)
        out["columns"][name] = entry
    metrics["worst_group_shapes"] = min(shapes_all) if shapes_all else None
    metrics["group_share_difference"] = max(share_diffs) if share_diffs else None
    metrics["tstr_worst_group_ratio"] = min(ratios) if ratios else None
    for k, vals in fair_all.items():
        metrics[k] = max(vals)
    out["worst_group"] = worst
    return out


def _group_row(prepared: Prepared, info: ColumnInfo, g: int, label: str,
               idx: dict[str, np.ndarray], target: str | None, models: _Models | None,
               min_group: int, rng: np.random.Generator, detection: bool) -> dict[str, Any]:
    masks = {k: v == g for k, v in idx.items()}
    n_train, n_synth = int(masks["train"].sum()), int(masks["synthetic"].sum())
    n_hold = int(masks["holdout"].sum()) if "holdout" in masks else 0
    big = n_train >= min_group
    row: dict[str, Any] = {
        "group": label,
        "n_train": n_train if big else f"< {min_group}",
        "n_synthetic": n_synth,
        "share_real": n_train / max(prepared.train.n_rows, 1) if big else None,
        "share_synthetic": n_synth / max(prepared.synth.n_rows, 1),
    }
    row["share_difference"] = None if not big else row["share_synthetic"] - row["share_real"]
    row["shapes"] = row["detection_auc"] = None
    if big and n_synth >= min_group:
        sub = _sub(prepared, masks)
        row["shapes"] = _shapes(sub, info.name)
        if detection:
            row["detection_auc"] = fidelity.detection(sub, rng).get("auc")
        if target is not None and target in prepared.names and target != info.name:
            tinfo = prepared.info(target)
            pos = _positive_code(prepared, target)
            row["outcome_real"] = _outcome(tinfo, sub.train, pos)
            row["outcome_synthetic"] = _outcome(tinfo, sub.synth, pos)
    if models is not None and n_hold >= min_group:
        sel = masks["holdout"] & models.ok
        y = models.y[sel] == models.positive
        for label_m in ("tstr", "trtr"):
            p = models.proba[label_m]
            row[f"{label_m}_auc"] = None if p is None else _auc(y, p[sel])
            row[f"{label_m}_calibration_gap"] = None if p is None or not sel.any() else \
                float(abs(np.mean(p[sel]) - np.mean(y)))
        if row.get("tstr_auc") is not None and row.get("trtr_auc"):
            row["tstr_trtr_ratio"] = row["tstr_auc"] / row["trtr_auc"]
    return row


# an augmented training set "keeps" overall utility when its holdout ROC AUC drops by at most
# this much (the spread between seeds in benchmarks/results/augment.md is about 0.01)
AUGMENT_OVERALL_TOLERANCE = 0.005


def augmentation_effect(train: pd.DataFrame, extra: pd.DataFrame, *,
                        holdout: pd.DataFrame | None, schema: Schema, by: str,
                        target: str | None, min_group_size: int = DEFAULT_MIN_GROUP,
                        seed: int = 0, exclude: tuple[str, ...] | list[str] = ()
                        ) -> dict[str, Any]:
    """Does a model trained on real + ``extra`` rows beat one trained on the real rows alone
    on the worst group of ``by``, without losing overall utility? Measured on the holdout.

    The same classifier as TSTR (HistGradientBoosting, a two-class ``target``) is fitted on
    ``train`` and on ``train + extra``; its ROC AUC is read per group of ``by`` on the real
    holdout (groups with fewer than ``min_group_size`` holdout rows are suppressed). The worst
    group is the one where the real-only model is weakest. ``helped`` is True when the
    augmented model's AUC on that group is higher and its overall AUC drops by at most
    ``AUGMENT_OVERALL_TOLERANCE``. Reads the real rows: not private.
    """
    out: dict[str, Any] = {"by": by, "target": target, "min_group_size": min_group_size,
                           "groups": [], "helped": None, "note": None}
    if target is None or holdout is None or not len(extra):
        out["note"] = ("not measured: needs evaluate.target (a two-class column), a holdout "
                       "(split.holdout > 0) and at least one extra row")
        return out
    import sklearn.ensemble  # noqa: F401  (threadpoolctl limits loaded libraries only)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        prepared = prepare(train, pd.concat([train, extra], ignore_index=True), holdout, schema)
        if target not in prepared.names or by not in prepared.names or \
                _positive_code(prepared, target) is None:
            out["note"] = f"not measured: {target!r} is not a two-class target"
            return out
        models = _Models(prepared, target, make_rng(seed), exclude)
    real, aug = models.proba["trtr"], models.proba["tstr"]
    if real is None or aug is None:
        out["note"] = "not measured: the training rows hold one class of the target only"
        return out
    y = models.y == models.positive
    ok = models.ok
    out["overall_real"] = _auc(y[ok], real[ok])
    out["overall_augmented"] = _auc(y[ok], aug[ok])
    labels, idx = _groups(prepared.info(by), prepared)
    for g, label in enumerate(labels):
        sel = ok & (idx["holdout"] == g)
        n = int(sel.sum())
        row: dict[str, Any] = {"group": label, "n_holdout": n if n >= min_group_size
                               else f"< {min_group_size}", "auc_real": None,
                               "auc_augmented": None}
        if n >= min_group_size:
            row["auc_real"], row["auc_augmented"] = _auc(y[sel], real[sel]), _auc(y[sel], aug[sel])
        out["groups"].append(row)
    scored = [r for r in out["groups"] if r["auc_real"] is not None
              and r["auc_augmented"] is not None]
    if not scored or out["overall_real"] is None or out["overall_augmented"] is None:
        out["note"] = (f"not measured: no group of {by!r} has {min_group_size} holdout rows "
                       "with both classes")
        return out
    worst = min(scored, key=lambda r: r["auc_real"])
    out["worst_group"] = worst["group"]
    out["worst_group_gain"] = worst["auc_augmented"] - worst["auc_real"]
    out["overall_change"] = out["overall_augmented"] - out["overall_real"]
    out["helped"] = bool(out["worst_group_gain"] > 0
                         and out["overall_change"] >= -AUGMENT_OVERALL_TOLERANCE)
    out["note"] = (f"worst group {by} = {worst['group']}: ROC AUC {worst['auc_real']:.3f} "
                   f"(real only) -> {worst['auc_augmented']:.3f} (real + synthetic); overall "
                   f"{out['overall_real']:.3f} -> {out['overall_augmented']:.3f}. "
                   + ("The extra rows helped this group without losing overall utility."
                      if out["helped"] else "The extra rows did not help this group without "
                      f"losing overall utility (tolerance {AUGMENT_OVERALL_TOLERANCE})."))
    return out
