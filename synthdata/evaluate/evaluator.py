"""evaluate(): run the fidelity and leakage metrics and collect them in a Report."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError
from synthdata.evaluate import fidelity, leakage
from synthdata.evaluate._data import prepare
from synthdata.evaluate.metrics import KNOWN_METRICS
from synthdata.evaluate.report import Report
from synthdata.schema import PiiRole, Schema

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

SECTIONS = ("fidelity_basic", "fidelity", "leakage", "risks")
DEFAULT_SECTIONS = ("fidelity", "leakage", "risks")
# metrics the pipeline adds from elsewhere (the privacy ledger); not computed here
_EXTERNAL = ("epsilon", "delta", "history_detection_auc", "history_rule_violations",
             "history_rule_violations_real")
LEAK_WARNING = 0.99   # a real-on-real utility this high usually means a leak column


def _step_rng(seed: int, step: str) -> np.random.Generator:
    # one independent, named stream per step: a step's result does not depend on which
    # other sections ran
    return np.random.default_rng([seed, zlib.crc32(step.encode())])


def evaluate(train: pd.DataFrame, synth: pd.DataFrame, *, holdout: pd.DataFrame | None = None,
             schema: Schema | None = None, target: str | None = None, seed: int | None = 0,
             progress: Progress | None = None,
             sections: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> Report:
    """Measure fidelity and leakage of ``synth`` against ``train`` (and ``holdout``).

    Parameters
    ----------
    train, synth : DataFrame
        The real rows the generator saw, and the synthetic rows.
    holdout : DataFrame, optional
        Real rows the generator did not see. Without it, holdout-based metrics (utility,
        DCR share, membership inference, risks) are None and ``report.notes`` says why.
    schema : Schema, optional
        Column kinds and privacy roles; inferred from ``train`` when None. Columns of kind
        id/text are excluded.
    target : str, optional
        Column for train-on-synthetic/test-on-real utility (and the default secret of the
        attribute-inference attack).
    seed : int
        Seeds every subsample, split and model; same inputs and seed, same report.
    progress : callable, optional
        ``progress(step, done, total)`` after each step.
    sections : sequence of str, optional
        Subset of ``("fidelity_basic", "fidelity", "leakage", "risks")``; default all but
        ``fidelity_basic``. ``("fidelity_basic",)`` is the cheap path: per-column distances,
        pair scores and exact copies only.
    exclude : sequence of str
        Leak columns left out of the utility (TSTR/TRTR) features. A real-on-real score
        of 0.99 or more adds a note that a column probably leaks the target.

    Examples
    --------
    >>> report = evaluate(train, synth, holdout=holdout, target="death")  # doctest: +SKIP
    >>> report.metrics["detection_auc"]                                   # doctest: +SKIP
    """
    chosen = tuple(DEFAULT_SECTIONS if sections is None else sections)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        raise ConfigError(f"evaluate: unknown section(s) {unknown or list(chosen)}; choose "
                          f"from {list(SECTIONS)}")
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    schema = schema if schema is not None else Schema.infer(train)
    prepared = prepare(train, synth, holdout, schema)
    if target is not None and target not in prepared.names:
        raise ConfigError(f"evaluate: target {target!r} is not an evaluated column; choose one "
                          f"of {prepared.names}")
    notes: list[str] = [f"column {k!r} excluded: {v}" for k, v in prepared.excluded.items()]
    metrics: dict[str, Any] = {m: None for m in KNOWN_METRICS if m not in _EXTERNAL}
    body: dict[str, Any] = {}
    timings: dict[str, float] = {}
    full_fidelity = "fidelity" in chosen

    steps: list[tuple[str, Callable[[], None]]] = []

    def columns_step() -> None:
        cols = fidelity.column_report(prepared)
        body["columns"] = cols
        metrics["column_distance_mean"] = float(np.mean([c["distance"] for c in cols]))
        metrics["shapes"] = fidelity.shapes_score(cols)
        metrics["shapes_holdout"] = fidelity.shapes_score(cols, "distance_holdout")
        metrics["missing_rate_difference"] = float(np.mean([c["missing_rate_diff"]
                                                            for c in cols]))

    def pairs_step() -> None:
        pairs = fidelity.pair_report(prepared, prepared.train, prepared.synth)
        metrics["pair_trends"] = pairs.pop("pair_trends")
        metrics["pair_trends_all"] = pairs.pop("pair_trends_all")
        metrics["correlation_difference"] = pairs.pop("correlation_difference")
        if metrics["pair_trends"] is not None and metrics["shapes"] is not None:
            metrics["quality_score"] = (metrics["pair_trends"] + metrics["shapes"]) / 2
        body["pairs"] = pairs

    def copies_step() -> None:
        copies = leakage.exact_copies(prepared)
        body.setdefault("leakage", {})["exact_copies"] = copies
        for key in ("exact_copies", "exact_copy_share", "holdout_exact_copy_share",
                    "exact_copy_excess", "holdout_exact_copy_upper"):
            if key in copies:
                metrics[key] = copies[key]

    def replay_step() -> None:
        quasi = [n for n in schema.roles(PiiRole.QUASI) if n in prepared.names]
        res = leakage.rare_value_replay(prepared, train, synth, holdout, quasi)
        body.setdefault("leakage", {})["rare_value_replay"] = res
        for key in ("rare_value_replay", "holdout_rare_value_replay",
                    "rare_value_replay_excess"):
            metrics[key] = res[key]
        if "note" in res:
            notes.append(f"rare-value replay: {res['note']}")

    def detection_step() -> None:
        det = fidelity.detection(prepared, _step_rng(seed, "detection"))
        body["detection"] = det
        metrics["detection_auc"] = det["auc"]

    def utility_step() -> None:
        if target is None:
            body["utility"] = {"note": "no target given: utility not computed"}
            notes.append("utility metrics are None: give a target column")
            return
        util = fidelity.utility(prepared, target, _step_rng(seed, "utility"), exclude=exclude)
        body["utility"] = util
        trtr = util.get("trtr_auc", util.get("trtr_r2"))
        if trtr is not None and trtr >= LEAK_WARNING:
            util["warning"] = (f"real-on-real utility is {trtr:.3f} (>= {LEAK_WARNING}): a "
                               f"column probably leaks {target!r}; list it under "
                               "evaluate.exclude")
            notes.append(f"utility: {util['warning']}")
        for key in ("utility_ratio", "tstr_auc", "trtr_auc", "tstr_f1", "trtr_f1", "tstr_r2",
                    "trtr_r2"):
            metrics[key] = util.get(key)
        if "note" in util:
            notes.append(f"utility: {util['note']}")

    def coverage_step() -> None:
        cov = fidelity.coverage(prepared)
        body["coverage"] = cov
        metrics["coverage_categories"] = cov["coverage_categories"]
        metrics["coverage_range"] = cov["coverage_range"]

    encoded: dict[str, Any] = {}

    def dcr_step() -> None:
        rng = _step_rng(seed, "dcr")
        encoded["enc"] = leakage.encode(prepared, rng)
        res = leakage.dcr(encoded["enc"], rng)
        body.setdefault("leakage", {})["dcr"] = res
        for key in ("dcr_share", "dcr_median_ratio", "nndr"):
            metrics[key] = res.get(key)
        if "note" in res:
            notes.append(f"DCR: {res['note']}")

    def mia_step() -> None:
        res = leakage.membership_inference(prepared, encoded["enc"], _step_rng(seed, "mia"))
        body.setdefault("leakage", {})["mia"] = res
        if "note" in res:
            notes.append(f"membership inference: {res['note']}")
            return
        metrics["mia_auc"] = res["mia_auc"]
        metrics["mia_tpr_at_1pct_fpr"] = res["mia_tpr_at_1pct_fpr"]
        for name, attack in res["attacks"].items():
            metrics[f"mia_auc_{name}"] = attack["auc"]

    roles: dict[str, Any] = {}

    def risk_step(kind: str) -> Callable[[], None]:
        def run() -> None:
            if "quasi" not in roles:
                quasi, sensitive, role_notes = leakage.choose_roles(schema, prepared, target)
                roles.update(quasi=quasi, sensitive=sensitive)
                notes.extend(role_notes)
            rng = _step_rng(seed, kind)
            if kind == "singling_out":
                res = leakage.singling_out(prepared, roles["quasi"], rng)
            elif kind == "linkability":
                res = leakage.linkability(prepared, roles["quasi"], rng)
            else:
                res = leakage.inference(prepared, roles["quasi"], roles["sensitive"], rng)
            body.setdefault("risks", {})[kind] = res
            if "risk" in res:
                metrics[f"{kind}_risk"] = res["risk"]
                metrics[f"{kind}_risk_ci_low"] = res["ci_low"]
                metrics[f"{kind}_risk_ci_high"] = res["ci_high"]
            if "note" in res:
                notes.append(f"{kind.replace('_', '-')} risk: {res['note']}")
        return run

    steps += [("columns", columns_step), ("pairs", pairs_step), ("exact_copies", copies_step),
              ("rare_value_replay", replay_step)]
    if full_fidelity:
        steps += [("detection", detection_step), ("utility", utility_step),
                  ("coverage", coverage_step)]
    if "leakage" in chosen:
        steps += [("dcr", dcr_step), ("membership_inference", mia_step)]
    if "risks" in chosen:
        steps += [(f"{k}_risk", risk_step(k)) for k in ("singling_out", "linkability",
                                                         "inference")]
    from threadpoolctl import threadpool_limits

    if set(chosen) - {"fidelity_basic"}:
        # load scikit-learn's OpenMP runtime first: threadpoolctl limits loaded libraries only
        import sklearn.ensemble  # noqa: F401

    for done, (name, run) in enumerate(steps, start=1):
        start = time.perf_counter()
        # gradient boosting's OpenMP threads busy-wait; on a shared 2-core machine that
        # made a 0.6 s fit take 12 s. One OpenMP thread is predictable; BLAS keeps its pool.
        with threadpool_limits(limits=1, user_api="openmp"):
            run()
        timings[name] = round(time.perf_counter() - start, 4)
        logger.debug("evaluate: %s took %.2fs", name, timings[name])
        if progress is not None:
            progress(name, done, len(steps))

    if "risks" in body:
        hits = [body["risks"].get(k, {}).pop("record_hits", None)
                for k in ("singling_out", "linkability", "inference")]
        body["risks"]["exposed_records"] = leakage.exposed_records(*hits)
        body["risks"]["quasi_columns"] = roles.get("quasi")
        body["risks"]["sensitive_columns"] = roles.get("sensitive")
    if holdout is None:
        notes.append("no holdout given: holdout-based metrics (shapes_holdout, utility, "
                     "dcr_share, dcr_median_ratio, membership inference, risks) are None")
    meta = {
        "n_train": int(len(train)), "n_synthetic": int(len(synth)),
        "n_holdout": None if holdout is None else int(len(holdout)),
        "columns": prepared.names, "excluded_columns": prepared.excluded,
        "target": target, "seed": seed, "sections": list(chosen), "timings": timings,
        "subsampling": {
            "model_rows_per_side": fidelity.MAX_MODEL_ROWS,
            "nearest_neighbour_reference_rows": leakage.MAX_REFERENCE_ROWS,
            "synthetic_query_rows": leakage.MAX_QUERY_ROWS,
            "membership_rows_per_side": leakage.MAX_MIA_ROWS,
            "risk_attacks": leakage.N_ATTACKS,
        },
    }
    computed = [s for s, _ in steps]
    skipped = [m for m, v in metrics.items() if v is None]
    if skipped:
        logger.info("evaluate: metrics not computed: %s", skipped)
    return Report(metrics=metrics, meta=meta, notes=_dedupe(notes), body=body,
                  steps=computed)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
