"""evaluate(): run the fidelity and leakage metrics and collect them in a Report."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synthdata._progress import ProgressOption, progress_reporter
from synthdata.errors import ConfigError
from synthdata.evaluate import fidelity, leakage
from synthdata.evaluate._data import prepare
from synthdata.evaluate.metrics import KNOWN_METRICS
from synthdata.evaluate.report import Report
from synthdata.schema import PiiRole, Schema
from synthdata.types import Progress

logger = logging.getLogger(__name__)


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


@dataclass
class StepResult:
    """What one metric step returns: metrics, its report payload, notes."""

    metrics: dict[str, Any] = field(default_factory=dict)
    payload: Any = None  # stored in the report body at the step's ``place`` (None: nothing)
    notes: list[str] = field(default_factory=list)


@dataclass
class EvalContext:
    """The inputs every step reads, and the state two steps share (encoding, roles)."""

    train: pd.DataFrame
    synth: pd.DataFrame
    holdout: pd.DataFrame | None
    schema: Schema
    prepared: Any
    target: str | None
    seed: int
    exclude: tuple[str, ...] = ()  # leak columns left out of the utility features
    metrics: dict[str, Any] = field(default_factory=dict)  # results so far (read only)
    encoded: Any = None
    roles: dict[str, Any] = field(default_factory=dict)

    def rng(self, step: str) -> np.random.Generator:
        return _step_rng(self.seed, step)


@dataclass(frozen=True)
class MetricStep:
    """One step of :func:`evaluate`: runs when ``section`` is chosen ("basic": always)."""

    name: str
    section: str
    place: tuple[str, ...]
    run: Callable[[EvalContext], StepResult]


def _pick(source: dict[str, Any], keys: Sequence[str], *, only_present: bool = False
          ) -> dict[str, Any]:
    return {k: source.get(k) for k in keys if not only_present or k in source}


def _noted(res: dict[str, Any], label: str) -> list[str]:
    return [f"{label}: {res['note']}"] if "note" in res else []


def _columns(ctx: EvalContext) -> StepResult:
    cols = fidelity.column_report(ctx.prepared)
    return StepResult({
        "column_distance_mean": float(np.mean([c["distance"] for c in cols])),
        "shapes": fidelity.shapes_score(cols),
        "shapes_holdout": fidelity.shapes_score(cols, "distance_holdout"),
        "missing_rate_difference": float(np.mean([c["missing_rate_diff"] for c in cols])),
    }, cols)


def _pairs(ctx: EvalContext) -> StepResult:
    pairs = fidelity.pair_report(ctx.prepared, ctx.prepared.train, ctx.prepared.synth)
    out = {k: pairs.pop(k) for k in ("pair_trends", "pair_trends_all", "correlation_difference")}
    shapes = ctx.metrics.get("shapes")
    if out["pair_trends"] is not None and shapes is not None:
        out["quality_score"] = (out["pair_trends"] + shapes) / 2
    return StepResult(out, pairs)


def _copies(ctx: EvalContext) -> StepResult:
    copies = leakage.exact_copies(ctx.prepared)
    keys = ("exact_copies", "exact_copy_share", "holdout_exact_copy_share", "exact_copy_excess",
            "holdout_exact_copy_upper")
    return StepResult(_pick(copies, keys, only_present=True), copies)


def _replay(ctx: EvalContext) -> StepResult:
    quasi = [n for n in ctx.schema.roles(PiiRole.QUASI) if n in ctx.prepared.names]
    res = leakage.rare_value_replay(ctx.prepared, ctx.train, ctx.synth, ctx.holdout, quasi)
    keys = ("rare_value_replay", "holdout_rare_value_replay", "rare_value_replay_excess")
    return StepResult({k: res[k] for k in keys}, res, _noted(res, "rare-value replay"))


def _detection(ctx: EvalContext) -> StepResult:
    det = fidelity.detection(ctx.prepared, ctx.rng("detection"))
    return StepResult({"detection_auc": det["auc"]}, det)


def _utility(ctx: EvalContext) -> StepResult:
    if ctx.target is None:
        return StepResult({}, {"note": "no target given: utility not computed"},
                          ["utility metrics are None: give a target column"])
    util = fidelity.utility(ctx.prepared, ctx.target, ctx.rng("utility"), exclude=ctx.exclude)
    keys = ("utility_ratio", "tstr_auc", "trtr_auc", "tstr_f1", "trtr_f1", "tstr_r2", "trtr_r2")
    notes = []
    trtr = util.get("trtr_auc", util.get("trtr_r2"))
    if trtr is not None and trtr >= LEAK_WARNING:
        util["warning"] = (f"real-on-real utility is {trtr:.3f} (>= {LEAK_WARNING}): a column "
                           f"probably leaks {ctx.target!r}; list it under evaluate.exclude")
        notes.append(f"utility: {util['warning']}")
    return StepResult(_pick(util, keys), util, notes + _noted(util, "utility"))


def _coverage(ctx: EvalContext) -> StepResult:
    cov = fidelity.coverage(ctx.prepared)
    return StepResult(_pick(cov, ("coverage_categories", "coverage_range")), cov)


def _dcr(ctx: EvalContext) -> StepResult:
    rng = ctx.rng("dcr")
    ctx.encoded = leakage.encode(ctx.prepared, rng)
    res = leakage.dcr(ctx.encoded, rng)
    return StepResult(_pick(res, ("dcr_share", "dcr_median_ratio", "nndr")), res,
                      _noted(res, "DCR"))


def _mia(ctx: EvalContext) -> StepResult:
    res = leakage.membership_inference(ctx.prepared, ctx.encoded, ctx.rng("mia"))
    if "note" in res:
        return StepResult({}, res, _noted(res, "membership inference"))
    out = _pick(res, ("mia_auc", "mia_tpr_at_1pct_fpr"))
    out.update({f"mia_auc_{name}": attack["auc"] for name, attack in res["attacks"].items()})
    return StepResult(out, res)


def _risk(kind: str) -> Callable[[EvalContext], StepResult]:
    attack = {"singling_out": lambda ctx, rng: leakage.singling_out(
                  ctx.prepared, ctx.roles["quasi"], rng),
              "linkability": lambda ctx, rng: leakage.linkability(
                  ctx.prepared, ctx.roles["quasi"], rng),
              "inference": lambda ctx, rng: leakage.inference(
                  ctx.prepared, ctx.roles["quasi"], ctx.roles["sensitive"], rng)}[kind]

    def run(ctx: EvalContext) -> StepResult:
        notes: list[str] = []
        if "quasi" not in ctx.roles:
            quasi, sensitive, notes = leakage.choose_roles(ctx.schema, ctx.prepared, ctx.target)
            ctx.roles.update(quasi=quasi, sensitive=sensitive)
        res = attack(ctx, ctx.rng(kind))
        out = {} if "risk" not in res else {
            f"{kind}_risk": res["risk"], f"{kind}_risk_ci_low": res["ci_low"],
            f"{kind}_risk_ci_high": res["ci_high"]}
        return StepResult(out, res, [*notes, *_noted(res, f"{kind.replace('_', '-')} risk")])
    return run


RISK_KINDS = ("singling_out", "linkability", "inference")
# The steps in the order they run; ``section`` says when ("basic": every evaluation).
STEPS: tuple[MetricStep, ...] = (
    MetricStep("columns", "basic", ("columns",), _columns),
    MetricStep("pairs", "basic", ("pairs",), _pairs),
    MetricStep("exact_copies", "basic", ("leakage", "exact_copies"), _copies),
    MetricStep("rare_value_replay", "basic", ("leakage", "rare_value_replay"), _replay),
    MetricStep("detection", "fidelity", ("detection",), _detection),
    MetricStep("utility", "fidelity", ("utility",), _utility),
    MetricStep("coverage", "fidelity", ("coverage",), _coverage),
    MetricStep("dcr", "leakage", ("leakage", "dcr"), _dcr),
    MetricStep("membership_inference", "leakage", ("leakage", "mia"), _mia),
    *(MetricStep(f"{k}_risk", "risks", ("risks", k), _risk(k)) for k in RISK_KINDS),
)


def evaluate(train: pd.DataFrame, synth: pd.DataFrame, *, holdout: pd.DataFrame | None = None,
             schema: Schema | None = None, target: str | None = None, seed: int | None = 0,
             progress: ProgressOption = None,
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
    progress : bool, str or callable, optional
        None/False: silent; True or ``"auto"``: a tqdm bar in a notebook, a rich bar on a
        terminal, plain lines with ETA otherwise (``"tqdm"``, ``"rich"``, ``"plain"`` force
        one); a callable gets ``progress("evaluate:<step>", done, total)`` after each step,
        ending at ``done == total``.
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
    if progress is not None and not callable(progress):
        with progress_reporter(progress) as callback:
            return evaluate(train, synth, holdout=holdout, schema=schema, target=target,
                            seed=seed, progress=callback, sections=sections,
                            exclude=exclude)
    chosen = _check_sections(sections)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    schema = schema if schema is not None else Schema.infer(train)
    prepared = prepare(train, synth, holdout, schema)
    if target is not None and target not in prepared.names:
        raise ConfigError(f"evaluate: target {target!r} is not an evaluated column; choose one "
                          f"of {prepared.names}")
    ctx = EvalContext(train, synth, holdout, schema, prepared, target, seed,
                      exclude=tuple(exclude), metrics={m: None for m in KNOWN_METRICS if m not in _EXTERNAL})
    notes = [f"column {k!r} excluded: {v}" for k, v in prepared.excluded.items()]
    steps = [s for s in STEPS if s.section == "basic" or s.section in chosen]
    body, timings = _run_steps(ctx, steps, notes, progress)
    _finish_risks(body, ctx)
    if holdout is None:
        notes.append("no holdout given: holdout-based metrics (shapes_holdout, utility, "
                     "dcr_share, dcr_median_ratio, membership inference, risks) are None")
    skipped = [m for m, v in ctx.metrics.items() if v is None]
    if skipped:
        logger.info("evaluate: metrics not computed: %s", skipped)
    return Report(metrics=ctx.metrics, meta=_meta(ctx, chosen, timings), notes=_dedupe(notes),
                  body=body, steps=[s.name for s in steps])


def _check_sections(sections: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(DEFAULT_SECTIONS if sections is None else sections)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        raise ConfigError(f"evaluate: unknown section(s) {unknown or list(chosen)}; choose "
                          f"from {list(SECTIONS)}")
    return chosen


def _run_steps(ctx: EvalContext, steps: list[MetricStep], notes: list[str],
               progress: Progress | None) -> tuple[dict[str, Any], dict[str, float]]:
    """Run ``steps`` in order; merge their metrics, payloads and notes."""
    from threadpoolctl import threadpool_limits

    if any(s.section != "basic" for s in steps):
        # load scikit-learn's OpenMP runtime first: threadpoolctl limits loaded libraries only
        import sklearn.ensemble  # noqa: F401

    body: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for done, step in enumerate(steps, start=1):
        start = time.perf_counter()
        # gradient boosting's OpenMP threads busy-wait; on a shared 2-core machine that
        # made a 0.6 s fit take 12 s. One OpenMP thread is predictable; BLAS keeps its pool.
        with threadpool_limits(limits=1, user_api="openmp"):
            result = step.run(ctx)
        timings[step.name] = round(time.perf_counter() - start, 4)
        logger.debug("evaluate: %s took %.2fs", step.name, timings[step.name])
        ctx.metrics.update(result.metrics)
        notes.extend(result.notes)
        if result.payload is not None:
            *parents, last = step.place
            node = body
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = result.payload
        if progress is not None:
            progress(f"evaluate:{step.name}", done, len(steps))  # one bar, ends at its total
    return body, timings


def _finish_risks(body: dict[str, Any], ctx: EvalContext) -> None:
    if "risks" not in body:
        return
    hits = [body["risks"].get(k, {}).pop("record_hits", None) for k in RISK_KINDS]
    body["risks"]["exposed_records"] = leakage.exposed_records(*hits)
    body["risks"]["quasi_columns"] = ctx.roles.get("quasi")
    body["risks"]["sensitive_columns"] = ctx.roles.get("sensitive")


def _meta(ctx: EvalContext, chosen: tuple[str, ...], timings: dict[str, float]
          ) -> dict[str, Any]:
    return {
        "n_train": int(len(ctx.train)), "n_synthetic": int(len(ctx.synth)),
        "n_holdout": None if ctx.holdout is None else int(len(ctx.holdout)),
        "columns": ctx.prepared.names, "excluded_columns": ctx.prepared.excluded,
        "target": ctx.target, "seed": ctx.seed, "sections": list(chosen), "timings": timings,
        "subsampling": {
            "model_rows_per_side": fidelity.MAX_MODEL_ROWS,
            "nearest_neighbour_reference_rows": leakage.MAX_REFERENCE_ROWS,
            "synthetic_query_rows": leakage.MAX_QUERY_ROWS,
            "membership_rows_per_side": leakage.MAX_MIA_ROWS,
            "risk_attacks": leakage.N_ATTACKS,
        },
    }


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
