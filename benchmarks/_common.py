"""Shared benchmark helpers: datasets, splits, metrics, per-process peak memory.

Only numpy, pandas, scikit-learn and psutil (memory) are used here, so the same code runs
in the product's ``.venv`` and in ``.venv-bench`` (SDV's older pandas/numpy), and every
system is scored by exactly the same functions. This module never imports synthdata or SDV.

Metric definitions (all "real" vs "synthetic"; columns typed from the real train table):

- A column is *numeric* if its real dtype is numeric (not bool) with more than
  ``DISCRETE_MAX_UNIQUE`` distinct values; otherwise it is *discrete*. Discrete values are
  matched by a normalised key (``1``, ``1.0``, ``True`` are one value); at most
  ``MAX_CATEGORIES`` real categories keep their own code, the rest and unseen synthetic
  values share an "other" code, and missing cells get their own code.
- ``col_dist``: mean over columns of the KS statistic (numeric, missing dropped; the
  missing-rate difference is added as a separate term when either side has missing cells)
  or the total-variation distance (discrete, missing as a category). Lower is better.
- ``pair_diff``: mean over column pairs of |assoc_real - assoc_synth|, where assoc is
  |Pearson r| for numeric pairs (complete cases), Cramér's V for discrete pairs and the
  correlation ratio for mixed pairs. Lower is better.
- ``detect_auc``: HistGradientBoostingClassifier separating the real holdout from an equal
  number of synthetic rows, 3-fold stratified ROC AUC (0.5 = indistinguishable).
- ``tstr`` / ``trtr``: HistGradientBoosting trained on synthetic / on real train rows, tested on
  the real holdout; ROC AUC (classification, one-vs-rest macro when >2 classes) or R²
  (regression). ``ratio`` = tstr / trtr.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# the per-column and per-pair statistics are synthdata's own (installed in .venv-bench too);
# what stays here is the schema-free encoding that treats every system's output the same way
from synthdata.evaluate import fidelity
from synthdata.evaluate.fidelity import ks_statistic, tv_distance

_correlation_ratio = fidelity._correlation_ratio

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
LOCAL_DATA = ROOT / "data"

DISCRETE_MAX_UNIQUE = 10
MAX_CATEGORIES = 100
N_FOLDS = 3

# Used when ../shared/datasets/manifest.json is missing (the repo ships flchain in data/).
FALLBACK_MANIFEST: dict[str, dict[str, Any]] = {
    "flchain": {"file": "flchain.csv", "target": "death", "task": "classification",
                "leak_columns": ["futime", "chapter"], "primary_key": None},
}


# -- datasets -----------------------------------------------------------------------------

@dataclass
class DatasetSpec:
    name: str
    path: Path
    target: str | None
    task: str | None
    drop: list[str] = field(default_factory=list)   # leak columns and the primary key


def dataset_spec(name: str, data_dir: Path | None = None) -> DatasetSpec:
    """Resolve a dataset name via the shared manifest, falling back to ``data/``."""
    data_dir = data_dir or SHARED_DATASETS
    manifest_path = data_dir / "manifest.json"
    if manifest_path.exists():
        datasets = json.loads(manifest_path.read_text())["datasets"]
        if name in datasets:
            entry = datasets[name]
            tables = entry["tables"]
            table = tables.get(name) or next(iter(tables.values()))
            pk = table.get("primary_key")
            pk_cols = [pk] if isinstance(pk, str) else list(pk or [])
            return DatasetSpec(name, data_dir / table["file"], entry.get("target"),
                               entry.get("task"), [*entry.get("leak_columns", []), *pk_cols])
    if name in FALLBACK_MANIFEST:
        entry = FALLBACK_MANIFEST[name]
        for d in (data_dir, LOCAL_DATA):
            if (d / entry["file"]).exists():
                return DatasetSpec(name, d / entry["file"], entry["target"], entry["task"],
                                   list(entry["leak_columns"]))
    raise SystemExit(f"dataset {name!r} not found in {manifest_path} nor in the fallback table")


def load_dataset(spec: DatasetSpec) -> pd.DataFrame:
    df = pd.read_csv(spec.path)
    return df.drop(columns=[c for c in spec.drop if c in df.columns])


def split(df: pd.DataFrame, *, seed: int,
          holdout: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded shuffled train/holdout split (70/30 by default); indices reset."""
    perm = np.random.default_rng(seed).permutation(len(df))
    n_hold = int(round(len(df) * holdout))
    hold, train = perm[:n_hold], perm[n_hold:]
    return (df.iloc[np.sort(train)].reset_index(drop=True),
            df.iloc[np.sort(hold)].reset_index(drop=True))


# -- peak memory --------------------------------------------------------------------------

def run_measured(cmd: list[str], *, env: dict[str, str] | None = None,
                 log_path: Path | None = None, poll_s: float = 0.05) -> tuple[int, float, float]:
    """Run ``cmd`` as a child process; return (exit code, wall seconds, peak RSS in MB).

    Peak RSS is the larger of (a) the child's ``ru_maxrss`` from ``wait4`` (exact for the
    process itself and the descendants it waited for) and (b) the largest sum of RSS over the
    child's whole process tree, polled every ``poll_s`` seconds with psutil (catches worker
    pools such as joblib/loky that SDV starts and never reaps). Each system runs in its own
    child, so its number is its own (``RUSAGE_CHILDREN`` would be a max over all children).
    """
    import threading

    import psutil

    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    peak_tree = [0]
    done = threading.Event()

    def poll(pid: int) -> None:
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        while not done.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak_tree[0] = max(peak_tree[0], total)
            done.wait(poll_s)

    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        poller = threading.Thread(target=poll, args=(proc.pid,), daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        done.set()
        poller.join()
    finally:
        if log_path:
            out.close()
    return proc.returncode, wall, max(usage.ru_maxrss / 1024.0, peak_tree[0] / 2**20)  # KiB


def peak_rss_self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_fit_sample(gen: Any, train: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Fit ``gen`` on ``train`` and sample as many rows: the 1-minute load average before,
    fit wall and CPU seconds, the synthetic rows and the sampling rate in rows per second."""
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    gen.fit(train)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    synth = gen.sample(len(train), seed=seed + 1)
    rate = len(train) / (time.perf_counter() - t0)
    return {"load": load, "fit_s": fit_s, "fit_cpu": fit_cpu, "synth": synth, "rate": rate}


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "memory": mem, "load": load,
            "python": platform.python_version(), "os": platform.platform()}


def write_report(title: str, script: str, argv: list[str], load_start: str, notes: str,
                 body: str, out: Path | None) -> str:
    """A results page: title, command, date, machine and load, ``notes``, then ``body``;
    printed, and written to ``out`` when given."""
    import datetime as dt
    import shlex

    m = machine_info()
    cmd = " ".join(shlex.quote(a) for a in ["python", f"benchmarks/{script}", *argv])
    text = (f"# {title}\n\n- command: `{cmd}`\n"
            f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}\n"
            f"- machine: {m['nproc']} CPUs ({m['cpu']}), load average {load_start} at start, "
            f"{m['load']} at end\n- {notes}\n\n{body}")
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text


# -- encoding -----------------------------------------------------------------------------

def _key(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return repr(float(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return repr(float(v))
    return str(v)


@dataclass(frozen=True)
class ColInfo:
    name: str
    numeric: bool
    categories: tuple[str, ...] = ()

    @property
    def other_code(self) -> int:
        return len(self.categories)

    @property
    def missing_code(self) -> int:
        return len(self.categories) + 1

    @property
    def n_codes(self) -> int:
        return len(self.categories) + 2


def column_infos(real: pd.DataFrame) -> list[ColInfo]:
    infos = []
    for name in real.columns:
        s = real[name]
        is_num = (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                  and s.nunique(dropna=True) > DISCRETE_MAX_UNIQUE)
        if is_num:
            infos.append(ColInfo(name, True))
        else:
            counts = s.dropna().map(_key).value_counts()
            cats = sorted(counts.index, key=lambda k: (-counts[k], k))[:MAX_CATEGORIES]
            infos.append(ColInfo(name, False, tuple(cats)))
    return infos


def encode(df: pd.DataFrame, infos: list[ColInfo]) -> dict[str, np.ndarray]:
    """float64 per numeric column (NaN = missing), int64 codes per discrete column."""
    out: dict[str, np.ndarray] = {}
    for info in infos:
        s = df[info.name] if info.name in df.columns else pd.Series([np.nan] * len(df))
        if info.numeric:
            out[info.name] = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64",
                                                                         na_value=np.nan)
        else:
            lookup = {k: i for i, k in enumerate(info.categories)}
            missing = s.isna().to_numpy()
            codes = np.array([lookup.get(_key(v), info.other_code) for v in s.tolist()],
                             dtype=np.int64) if len(s) else np.zeros(0, dtype=np.int64)
            codes[missing] = info.missing_code
            out[info.name] = codes
    return out


# -- fidelity -----------------------------------------------------------------------------

def column_distances(real: dict[str, np.ndarray], synth: dict[str, np.ndarray],
                     infos: list[ColInfo]) -> dict[str, float]:
    out = {}
    for info in infos:
        a, b = real[info.name], synth[info.name]
        if info.numeric:
            d = ks_statistic(a, b)
            ma, mb = np.isnan(a).mean(), np.isnan(b).mean()
            if ma > 0 or mb > 0:   # missingness counts too, as its own term
                out[f"{info.name}:missing"] = float(abs(ma - mb))
            out[info.name] = d
        else:
            out[info.name] = tv_distance(a, b, info.n_codes)
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return abs(fidelity._pearson(x, y))   # strength of association, sign ignored


def _cramers_v(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> float:
    return fidelity._cramers_v(fidelity._contingency(a, na, b, nb))


def association_matrix(enc: dict[str, np.ndarray], infos: list[ColInfo]) -> np.ndarray:
    k = len(infos)
    m = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            a, b = infos[i], infos[j]
            xa, xb = enc[a.name], enc[b.name]
            if a.numeric and b.numeric:
                v = _pearson(xa, xb)
            elif a.numeric:
                v = _correlation_ratio(xb, b.n_codes, xa)
            elif b.numeric:
                v = _correlation_ratio(xa, a.n_codes, xb)
            else:
                v = _cramers_v(xa, a.n_codes, xb, b.n_codes)
            m[i, j] = m[j, i] = v
    return m


def pair_difference(real: dict[str, np.ndarray], synth: dict[str, np.ndarray],
                    infos: list[ColInfo]) -> float:
    k = len(infos)
    if k < 2:
        return 0.0
    diff = np.abs(association_matrix(real, infos) - association_matrix(synth, infos))
    return float(diff[np.triu_indices(k, 1)].mean())


# -- model-based metrics ------------------------------------------------------------------

def _features(enc: dict[str, np.ndarray], infos: list[ColInfo]) -> tuple[np.ndarray, np.ndarray]:
    """Matrix for HistGradientBoosting: numerics as floats (NaN kept), discretes as codes."""
    if not infos:
        return np.zeros((0, 0)), np.zeros(0, dtype=bool)
    x = np.column_stack([enc[i.name].astype(np.float64) for i in infos])
    return x, np.array([not i.numeric for i in infos])


def _hgb_classifier(cat_mask: np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(
        categorical_features=cat_mask if cat_mask.any() else None, random_state=seed)


def detection_auc(holdout: dict[str, np.ndarray], synth: dict[str, np.ndarray],
                  infos: list[ColInfo], *, seed: int) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    xr, cat = _features(holdout, infos)
    xs, _ = _features(synth, infos)
    n = min(len(xr), len(xs))
    rng = np.random.default_rng(seed)
    xr = xr[rng.permutation(len(xr))[:n]]
    xs = xs[rng.permutation(len(xs))[:n]]
    x = np.vstack([xr, xs])
    y = np.r_[np.zeros(n), np.ones(n)]
    cv = StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_score(_hgb_classifier(cat, seed), x, y, cv=cv, scoring="roc_auc")
    return float(np.mean(scores))


def _utility_score(train: dict[str, np.ndarray], test: dict[str, np.ndarray],
                   infos: list[ColInfo], target: ColInfo, task: str, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score, roc_auc_score
    feats = [i for i in infos if i.name != target.name]
    xtr, cat = _features(train, feats)
    xte, _ = _features(test, feats)
    ytr, yte = train[target.name], test[target.name]
    if task == "regression":
        ok_tr, ok_te = ~np.isnan(ytr), ~np.isnan(yte)
        model = HistGradientBoostingRegressor(
            categorical_features=cat if cat.any() else None, random_state=seed)
        model.fit(xtr[ok_tr], ytr[ok_tr])
        return float(r2_score(yte[ok_te], model.predict(xte[ok_te])))
    # classification: drop rows whose label is missing/other; labels are real-category codes
    ok_tr = ytr < target.other_code
    ok_te = yte < target.other_code
    classes_te = np.unique(yte[ok_te])
    classes_tr = np.unique(ytr[ok_tr])
    if len(classes_tr) < 2 or len(classes_te) < 2:
        return float("nan")   # a synthetic table with one class cannot train a classifier
    model = _hgb_classifier(cat, seed).fit(xtr[ok_tr], ytr[ok_tr])
    proba = model.predict_proba(xte[ok_te])
    # align to every class seen in the holdout (classes the model never saw get 0)
    full = np.zeros((proba.shape[0], len(classes_te)))
    for j, c in enumerate(classes_te):
        hit = np.flatnonzero(model.classes_ == c)
        if len(hit):
            full[:, j] = proba[:, hit[0]]
    if len(classes_te) == 2:
        return float(roc_auc_score(yte[ok_te] == classes_te[1], full[:, 1]))
    full = full / np.clip(full.sum(1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(yte[ok_te], full, multi_class="ovr", average="macro",
                               labels=classes_te))


def evaluate(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, *,
             target: str | None, task: str | None, seed: int,
             trtr: float | None = None) -> dict[str, Any]:
    """Every fidelity/utility number for one synthetic table (same function for all systems).

    ``synth`` should have as many rows as ``train``; ``trtr`` may be passed to reuse the
    train-on-real score across systems.
    """
    # Scoring is small: one OpenMP thread is faster than several spinning on a busy 2-CPU
    # machine. Import sklearn's HGB first, or libgomp is not loaded yet and the limit is void.
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        return _evaluate(train, holdout, synth, target=target, task=task, seed=seed, trtr=trtr)


def draw_scores(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, *,
                seed: int) -> dict[str, float]:
    """The detection AUC and mean column distance of ``evaluate`` alone, for extra synthetic
    draws of one system (each table encoded once)."""
    import sklearn.ensemble  # noqa: F401  (see evaluate)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        infos = column_infos(train)
        enc_sy = encode(synth, infos)
        dists = column_distances(encode(train, infos), enc_sy, infos)
        return {"detect_auc": detection_auc(encode(holdout, infos), enc_sy, infos, seed=seed),
                "col_dist": float(np.mean(list(dists.values())))}


def _evaluate(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, *,
              target: str | None, task: str | None, seed: int,
              trtr: float | None) -> dict[str, Any]:
    infos = column_infos(train)
    enc_tr, enc_ho, enc_sy = (encode(d, infos) for d in (train, holdout, synth))
    dists = column_distances(enc_tr, enc_sy, infos)
    out: dict[str, Any] = {
        "col_dist": float(np.mean(list(dists.values()))),
        "pair_diff": pair_difference(enc_tr, enc_sy, infos),
        "detect_auc": detection_auc(enc_ho, enc_sy, infos, seed=seed),
    }
    if target and target in train.columns and task in ("classification", "regression"):
        tinfo = next(i for i in infos if i.name == target)
        if task == "regression" and not tinfo.numeric:
            task = "classification"
        if trtr is None:
            trtr = _utility_score(enc_tr, enc_ho, infos, tinfo, task, seed)
        tstr = _utility_score(enc_sy, enc_ho, infos, tinfo, task, seed)
        out.update(tstr=tstr, trtr=trtr, ratio=tstr / trtr if trtr else float("nan"))
    out.update(leakage(train, holdout, synth, seed=seed))
    return out


def leakage(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, *,
            seed: int) -> dict[str, Any]:
    """Memorisation numbers from synthdata's own evaluation (same code for every system):
    exact copies of train rows (and the holdout's natural rate), DCR share, MIA AUC."""
    from synthdata.evaluate import evaluate as sd_evaluate
    from synthdata.schema import Schema

    report = sd_evaluate(train, synth, holdout=holdout, schema=Schema.infer(train), seed=seed,
                         sections=("leakage",))
    m = report.metrics
    return {"exact_copies": m.get("exact_copies"), "exact_copy_share": m.get("exact_copy_share"),
            "holdout_exact_copy_share": m.get("holdout_exact_copy_share"),
            "holdout_exact_copy_upper": m.get("holdout_exact_copy_upper"),
            "dcr_share": m.get("dcr_share"), "mia_auc": m.get("mia_auc")}


def utility_metric_name(task: str | None) -> str:
    return "R²" if task == "regression" else "ROC AUC"
