"""The report's first screen: quality score and grade, privacy level, judged metric tiles.

Everything here is computed from a report dict (:meth:`Report.to_dict` or a report.json),
never from the data, so an old report.json gets the same summary when re-rendered.

Quality score (0-100) and grade
-------------------------------
The weighted mean of five components, each in [0, 1] (1 = the synthetic data is
indistinguishable from the real data on that view), times 100:

=============  ======  ===============================================================
component      weight  value
=============  ======  ===============================================================
column shapes  0.25    ``shapes`` (1 - mean KS / total-variation distance per column)
pair trends    0.25    ``pair_trends``
detection      0.20    ``1 - 2 * |detection_auc - 0.5|`` clipped to [0, 1]
utility        0.15    ``min(utility_ratio, 1)``
coverage       0.15    mean of ``coverage_categories`` and ``coverage_range`` present
=============  ======  ===============================================================

A component whose metric was not computed is left out and the weights of the others are
renormalised; the score is ``None`` (grade "?") without both column shapes and pair trends.
Grade: A >= 90, B >= 80, C >= 70, D >= 60, else F; a component below 0.25 (e.g. a
classifier that tells the rows apart with AUC >= 0.875) caps the grade at D, since one
failed view is enough to make a copy unfit for use.

Privacy level (high / medium / low / unknown)
---------------------------------------------
- Differentially private run (the report's privacy section says ``private`` and the ledger
  spent a finite ε): from (ε, δ) alone — ``high`` when ε <= 1, ``medium`` when ε <= 10,
  ``low`` above; ``low`` whatever ε when δ > 1e-3. The unit (row / patient) is named.
- Otherwise: from the leakage metrics (:data:`LEAKAGE_CHECKS`, each judged against the gate's
  threshold when the gate has a rule for it, else the default in :data:`METRICS`):
  ``low`` when any of them fails; ``medium`` when every computed one holds and both
  ``dcr_share`` and ``mia_auc`` were computed (they need a holdout); ``unknown`` otherwise.
  Never ``high`` without DP: attacks can show a leak, not prove its absence.

Tiles
-----
Each metric gets a human label, a one-line plain-English explanation and a status:
``pass`` / ``fail`` against its threshold (the gate's rule when the gate has one for the
metric, else the documented default below, whose ``basis`` says where it comes from),
``info`` when there is no threshold, ``missing`` when it was not computed, ``warn`` for a
real-on-real utility (``trtr_auc`` / ``trtr_r2``) >= 0.99: the reference model is almost
perfect, so a column probably leaks the target and utility measures the leak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthdata.evaluate.metrics import PATIENT_PREFIX, metric_info

QUALITY_WEIGHTS = {"column shapes": 0.25, "pair trends": 0.25, "detection": 0.20,
                   "utility": 0.15, "coverage": 0.15}
GRADES = (("A", 90.0), ("B", 80.0), ("C", 70.0), ("D", 60.0))
GRADE_CAP_COMPONENT = 0.25   # a component below this caps the grade at GRADE_CAP
GRADE_CAP = "D"
EPSILON_HIGH = 1.0           # DP privacy level: high when epsilon <= 1
EPSILON_MEDIUM = 10.0        # medium when epsilon <= 10, low above
DELTA_MAX = 1e-3             # delta above this: low whatever epsilon
TRTR_LEAK = 0.99             # real-on-real utility at or above this: a likely leak column

_PRESET = "the 'default' gate preset"
_SHARE = "the 'share_outside' gate preset"
_THUMB = "rule of thumb (not measured)"


@dataclass(frozen=True)
class Spec:
    """How a metric is shown: label, plain explanation, default threshold and its basis."""

    label: str
    explanation: str
    group: str                    # "quality" | "privacy" | "other"
    operator: str | None = None   # "<=", ">=", "==" (None: no default threshold)
    threshold: float | None = None
    basis: str = ""


METRICS: dict[str, Spec] = {
    # quality
    "shapes": Spec("Column shapes", "How closely each column's distribution matches the real "
                   "one (1 = identical).", "quality", ">=", 0.85, _THUMB),
    "shapes_holdout": Spec("Column shapes vs holdout", "The same, against real rows the "
                           "generator never saw.", "quality"),
    "pair_trends": Spec("Column pair trends", "How well the relationships between columns "
                        "that have one in the real data are kept (1 = identical).", "quality",
                        ">=", 0.85, _THUMB),
    "pair_trends_all": Spec("Pair trends, all pairs", "Pair similarity averaged over every "
                            "pair of columns.", "quality"),
    "column_distance_mean": Spec("Mean column distance", "Average KS / total-variation "
                                 "distance per column (0 = identical).", "quality", "<=", 0.15,
                                 _THUMB),
    "missing_rate_difference": Spec("Missing-value gap", "Average difference in the share of "
                                    "empty cells per column.", "quality", "<=", 0.05, _THUMB),
    "correlation_difference": Spec("Correlation gap", "Average difference between real and "
                                   "synthetic correlations (0 = identical).", "quality", "<=",
                                   0.1, _THUMB),
    "quality_score": Spec("Shapes and trends", "Mean of column shapes and pair trends.",
                          "quality"),
    "detection_auc": Spec("Detectability (AUC)", "How well a classifier tells synthetic from "
                          "real rows: 0.5 = it cannot, 1 = always.", "quality", "<=", 0.7,
                          "the example gate of DESIGN.md"),
    "utility_ratio": Spec("ML utility", "A model trained on synthetic rows scores this share "
                          "of one trained on real rows (tested on real holdout rows).",
                          "quality", ">=", 0.9, _THUMB),
    "tstr_auc": Spec("AUC, trained on synthetic", "ROC AUC on the real holdout of a model "
                     "trained on the synthetic rows.", "quality"),
    "trtr_auc": Spec("AUC, trained on real", "ROC AUC on the real holdout of a model trained "
                     "on the real rows (the reference).", "quality"),
    "tstr_f1": Spec("F1, trained on synthetic", "Macro-F1 on the real holdout, model trained "
                    "on synthetic rows.", "quality"),
    "trtr_f1": Spec("F1, trained on real", "Macro-F1 on the real holdout, model trained on "
                    "real rows.", "quality"),
    "tstr_r2": Spec("R², trained on synthetic", "R² on the real holdout, model trained on "
                    "synthetic rows.", "quality"),
    "trtr_r2": Spec("R², trained on real", "R² on the real holdout, model trained on real "
                    "rows.", "quality"),
    "coverage_categories": Spec("Category coverage", "Share of the real categories that "
                                "appear in the synthetic data.", "quality", ">=", 0.9, _THUMB),
    "coverage_range": Spec("Range coverage", "Share of the real numeric ranges the synthetic "
                           "data spans.", "quality", ">=", 0.8, _THUMB),
    "constraint_violations": Spec("Constraint violations", "Synthetic rows breaking a "
                                  "declared rule (0 expected).", "quality", "==", 0.0,
                                  "enforcement guarantees 0"),
    "referential_integrity": Spec("Referential integrity", "Share of child rows that point "
                                  "to an existing parent.", "quality", ">=", 1.0,
                                  "every key must resolve"),
    # privacy
    "exact_copies": Spec("Exact copies", "Synthetic rows identical to a training row.",
                         "privacy"),
    "exact_copy_share": Spec("Exact-copy share", "Share of synthetic rows identical to a "
                             "training row.", "privacy", "<=", 0.05,
                             "the 'internal_augmentation' gate preset"),
    "exact_copy_excess": Spec("Copies beyond chance", "Share of training-row copies beyond "
                              "what an independent real sample also contains.", "privacy",
                              "<=", 0.005, _PRESET),
    "holdout_exact_copy_share": Spec("Natural copy rate", "Share of unseen real rows that "
                                     "equal a training row.", "privacy"),
    "holdout_exact_copy_upper": Spec("Natural copy rate, upper bound", "95% upper bound of "
                                     "the natural copy rate.", "privacy"),
    "rare_value_replay": Spec("Rare values replayed", "Share of synthetic rows that repeat a "
                              "value fewer than 10 training rows hold.", "privacy"),
    "holdout_rare_value_replay": Spec("Natural rare-value rate", "The same share for unseen "
                                      "real rows.", "privacy"),
    "rare_value_replay_excess": Spec("Rare values beyond chance", "Rare training values "
                                     "(names, rare codes) repeated beyond the natural rate.",
                                     "privacy", "<=", 0.05, _PRESET),
    "dcr_share": Spec("Closer to training rows", "Share of synthetic rows nearer to a training "
                      "row than to an unseen real row: 0.5 ideal, 1 = copies.", "privacy",
                      "<=", 0.6, _PRESET),
    "dcr_median_ratio": Spec("Distance ratio", "Median distance to training rows over median "
                             "distance to unseen rows: 1 ideal, near 0 = copies.", "privacy"),
    "nndr": Spec("Nearest-neighbour ratio", "Median nearest / second-nearest training "
                 "distance: near 0 means rows sit on single training rows.", "privacy"),
    "mia_auc": Spec("Membership inference (AUC)", "How well the best attack tells training "
                    "rows from unseen rows: 0.5 = no better than chance.", "privacy", "<=",
                    0.6, _PRESET),
    "mia_auc_distance": Spec("Membership: distance attack", "ROC AUC of the distance attack.",
                             "privacy"),
    "mia_auc_density": Spec("Membership: density attack", "ROC AUC of the density-ratio "
                            "attack.", "privacy"),
    "mia_auc_classifier": Spec("Membership: classifier attack", "ROC AUC of the classifier "
                               "attack.", "privacy"),
    "mia_tpr_at_1pct_fpr": Spec("Attack hits at 1% false alarms", "Share of training rows the "
                                "best attack flags while wrongly flagging 1% of unseen rows.",
                                "privacy"),
    "singling_out_risk": Spec("Singling-out risk", "How much more often an attacker isolates "
                              "one real person with the synthetic data than without it.",
                              "privacy", "<=", 0.5, _PRESET),
    "linkability_risk": Spec("Linkability risk", "Risk of linking two parts of a real "
                             "person's record through the synthetic data.", "privacy", "<=",
                             0.09, _SHARE),
    "inference_risk": Spec("Attribute-inference risk", "Risk of guessing a real person's "
                           "sensitive value from the synthetic data.", "privacy", "<=", 0.2,
                           _SHARE),
    "epsilon": Spec("Privacy budget ε", "Differential-privacy ε spent: lower is stronger "
                    "(<= 1 strong, <= 10 moderate).", "privacy", "<=", EPSILON_MEDIUM,
                    "the privacy-level bound for 'medium'"),
    "delta": Spec("Privacy δ", "Probability that the ε guarantee does not hold.", "privacy",
                  "<=", DELTA_MAX, "the privacy-level bound on δ"),
}

# metric families of linked tables, named e.g. "km_max_distance[pbc]"
FAMILY_LABELS = {"children_per_parent_tv": "Children per parent (TV)",
                 "km_max_distance": "Kaplan-Meier gap",
                 "survival_time_violations": "Survival time violations",
                 "c_index_tstr": "C-index, trained on synthetic",
                 "c_index_trtr": "C-index, trained on real",
                 "survival_concordance_ratio": "Survival concordance ratio"}

# leakage metrics the privacy level of a run without DP is judged on
LEAKAGE_CHECKS = ("exact_copy_excess", "rare_value_replay_excess", "dcr_share", "mia_auc",
                  "singling_out_risk", "linkability_risk", "inference_risk")
# the first screen shows these (when computed) plus every metric the gate has a rule for
HEADLINE = {
    "quality": ("shapes", "pair_trends", "detection_auc", "utility_ratio", "trtr_auc",
                "trtr_r2", "coverage_categories", "coverage_range", "correlation_difference",
                "constraint_violations", "referential_integrity"),
    "privacy": ("epsilon", "delta", "exact_copy_excess", "exact_copies",
                "rare_value_replay_excess", "dcr_share", "nndr", "mia_auc",
                "singling_out_risk", "linkability_risk", "inference_risk"),
}


@dataclass(frozen=True)
class Tile:
    """One metric as the first screen shows it."""

    name: str
    label: str
    group: str
    value: float | None
    status: str                   # "pass" | "fail" | "warn" | "info" | "missing"
    explanation: str
    operator: str | None = None
    threshold: float | None = None
    threshold_source: str = ""    # "gate" or the default's basis
    ci: tuple[float, float] | None = None

    @property
    def threshold_text(self) -> str:
        if self.operator is None or self.threshold is None:
            return ""
        return f"{self.operator} {format_number(self.threshold)}"


def spec_for(name: str) -> Spec:
    """The display spec of ``name`` (plain, ``family[label]`` or ``patient_<metric>``)."""
    if name in METRICS:
        return METRICS[name]
    if name.startswith(PATIENT_PREFIX) and name[len(PATIENT_PREFIX):] in METRICS:
        inner = METRICS[name[len(PATIENT_PREFIX):]]
        return Spec(f"{inner.label} (per patient)", inner.explanation, inner.group,
                    inner.operator, inner.threshold, inner.basis)
    for suffix, what in (("_ci_low", "95% CI low"), ("_ci_high", "95% CI high")):
        if name.endswith(suffix) and name[:-len(suffix)] in METRICS:
            inner = METRICS[name[:-len(suffix)]]
            return Spec(f"{inner.label}, {what}", f"{what} of: {inner.explanation}",
                        inner.group)
    info = metric_info(name)
    base, _, rest = name.partition("[")
    label = FAMILY_LABELS.get(base) or base.replace("_", " ").capitalize()
    label += f" [{rest}" if rest else ""
    text = (info.description if info is not None else "").split(", e.g.")[0]
    return Spec(label, (text[:1].upper() + text[1:] + ".") if text else
                "Reported by another stage of the run.", "other")


def gate_thresholds(gate: Mapping[str, Any] | None) -> dict[str, tuple[str, float]]:
    """``metric -> (operator, threshold)`` of the gate's numeric rules."""
    out: dict[str, tuple[str, float]] = {}
    for row in gate_rows(gate):
        operator, threshold = row.get("operator"), row.get("threshold")
        if operator is None:  # reports written before operator/threshold were recorded
            operator, _, threshold = str(row.get("rule", "")).partition(" ")
        if isinstance(threshold, bool) or threshold is None:
            continue
        try:
            out[str(row.get("metric"))] = (str(operator), float(threshold))
        except (TypeError, ValueError):  # "validation: pass" has no number
            continue
    return out


def gate_rows(gate: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The rule entries of a report's gate section (``results``; ``rules`` in old reports)."""
    if not gate:
        return []
    rows = gate.get("results")
    if rows is None:
        rows = gate.get("rules")
    return [r for r in rows or [] if isinstance(r, Mapping)]


def _holds(value: float, operator: str, threshold: float) -> bool:
    if operator == "<=":
        return value <= threshold
    if operator == ">=":
        return value >= threshold
    return math.isclose(value, threshold, rel_tol=0, abs_tol=1e-12)


def _value(metrics: Mapping[str, Any], name: str) -> float | None:
    v = metrics.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def tile(name: str, report: Mapping[str, Any],
         gate: Mapping[str, tuple[str, float]] | None = None) -> Tile:
    """Judge one metric of ``report`` against the gate's rule, else its default threshold."""
    metrics = report.get("metrics") or {}
    if gate is None:
        gate = gate_thresholds((report.get("sections") or {}).get("gate"))
    spec = spec_for(name)
    value = _value(metrics, name)
    operator, threshold, source = spec.operator, spec.threshold, spec.basis
    if name in gate:
        (operator, threshold), source = gate[name], "gate"
    low, high = _value(metrics, f"{name}_ci_low"), _value(metrics, f"{name}_ci_high")
    ci = (low, high) if low is not None and high is not None else None
    if value is None:
        status = "missing"
    elif name in ("trtr_auc", "trtr_r2") and value >= TRTR_LEAK:
        status = "warn"   # the reference model is (almost) perfect: a likely leak column
    elif operator is None or threshold is None:
        status = "info"
    else:
        status = "pass" if _holds(value, operator, threshold) else "fail"
    return Tile(name, spec.label, spec.group, value, status, spec.explanation, operator,
                threshold, source if operator is not None else "", ci)


def tiles(report: Mapping[str, Any]) -> list[Tile]:
    """Every metric of the report as a tile (the order of the report's metrics)."""
    gate = gate_thresholds((report.get("sections") or {}).get("gate"))
    return [tile(name, report, gate) for name in (report.get("metrics") or {})]


def headline_tiles(report: Mapping[str, Any]) -> dict[str, list[Tile]]:
    """The tiles of the first screen by group: headline metrics and every gated metric."""
    metrics = report.get("metrics") or {}
    gate = gate_thresholds((report.get("sections") or {}).get("gate"))
    out: dict[str, list[Tile]] = {"quality": [], "privacy": []}
    shown: set[str] = set()
    for group, names in HEADLINE.items():
        for name in names:
            if _value(metrics, name) is None and name not in gate:
                continue
            if name == "exact_copies" and _value(metrics, "exact_copy_excess") is not None:
                continue  # the excess over the natural rate is the judged number
            out[group].append(tile(name, report, gate))
            shown.add(name)
    for name in gate:
        if name not in shown:
            t = tile(name, report, gate)
            out["privacy" if t.group == "privacy" else "quality"].append(t)
    return out


# -- quality score ----------------------------------------------------------------------------

def quality_components(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The computed components of the quality score, each in [0, 1]."""
    out: dict[str, float] = {}
    shapes, trends = _value(metrics, "shapes"), _value(metrics, "pair_trends")
    if shapes is not None:
        out["column shapes"] = _clip(shapes)
    if trends is not None:
        out["pair trends"] = _clip(trends)
    auc = _value(metrics, "detection_auc")
    if auc is not None:
        out["detection"] = _clip(1 - 2 * abs(auc - 0.5))
    ratio = _value(metrics, "utility_ratio")
    if ratio is not None:
        out["utility"] = _clip(ratio)
    cov = [v for v in (_value(metrics, "coverage_categories"), _value(metrics, "coverage_range"))
           if v is not None]
    if cov:
        out["coverage"] = _clip(sum(cov) / len(cov))
    return out


def quality_score(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"score": 0-100 | None, "grade": "A".."F" | "?", "components", "weights", "capped"}``."""
    comps = quality_components(metrics)
    if "column shapes" not in comps or "pair trends" not in comps:
        return {"score": None, "grade": "?", "components": comps, "weights": {},
                "capped": None, "note": "column shapes and pair trends were not computed"}
    weights = {k: QUALITY_WEIGHTS[k] for k in comps}
    total = sum(weights.values())
    weights = {k: w / total for k, w in weights.items()}
    score = 100 * sum(comps[k] * weights[k] for k in comps)
    grade = next((g for g, bound in GRADES if score >= bound), "F")
    weak = sorted(k for k, v in comps.items() if v < GRADE_CAP_COMPONENT)
    capped = None
    if weak and grade < GRADE_CAP:   # "A" < "B" < ... < "D"
        grade, capped = GRADE_CAP, (f"capped at {GRADE_CAP}: {', '.join(weak)} scored below "
                                    f"{GRADE_CAP_COMPONENT}")
    return {"score": round(score, 1), "grade": grade, "components": comps,
            "weights": weights, "capped": capped}


# -- privacy level ----------------------------------------------------------------------------

def dp_facts(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"epsilon", "delta", "unit"}`` of a differentially private run, else None."""
    privacy = (report.get("sections") or {}).get("privacy") or {}
    metrics = report.get("metrics") or {}
    if not privacy.get("private"):
        return None
    spent = privacy.get("spent") or {}
    epsilon = _value(spent, "epsilon")
    if epsilon is None:
        epsilon = _value(metrics, "epsilon")
    if epsilon is None:
        return None
    delta = _value(spent, "delta")
    if delta is None:
        delta = _value(metrics, "delta")
    return {"epsilon": epsilon, "delta": delta, "unit": privacy.get("unit") or "row",
            "budget": privacy.get("budget")}


def privacy_level(report: Mapping[str, Any]) -> dict[str, Any]:
    """``{"level": "high"|"medium"|"low"|"unknown", "basis": "dp"|"leakage", "reason", ...}``."""
    dp = dp_facts(report)
    if dp is not None:
        eps, delta = dp["epsilon"], dp["delta"]
        num = format_number
        unit = unit_text(dp["unit"])
        if delta is not None and delta > DELTA_MAX:
            level, why = "low", f"δ = {num(delta)} is above {num(DELTA_MAX)}"
        elif eps <= EPSILON_HIGH:
            level, why = "high", f"ε = {num(eps)} <= {num(EPSILON_HIGH)}"
        elif eps <= EPSILON_MEDIUM:
            level, why = "medium", f"{num(EPSILON_HIGH)} < ε = {num(eps)} <= {num(EPSILON_MEDIUM)}"
        else:
            level, why = "low", f"ε = {num(eps)} is above {num(EPSILON_MEDIUM)}"
        return {"level": level, "basis": "dp", "epsilon": eps, "delta": delta,
                "unit": dp["unit"],
                "reason": f"differential privacy, {why}, per {unit}"}
    gate = gate_thresholds((report.get("sections") or {}).get("gate"))
    judged = []
    for base in LEAKAGE_CHECKS:
        for name in (base, PATIENT_PREFIX + base):
            t = tile(name, report, gate)
            if t.status in ("pass", "fail"):
                judged.append(t)
    failed = [t for t in judged if t.status == "fail"]
    names = {t.name.removeprefix(PATIENT_PREFIX) for t in judged}
    if failed:
        level = "low"
        reason = "no differential privacy; leakage found: " + "; ".join(
            f"{t.label} {format_number(t.value)} is not {t.threshold_text}" for t in failed)
    elif {"dcr_share", "mia_auc"} <= names:
        level = "medium"
        reason = (f"no differential privacy; all {len(judged)} leakage checks hold "
                  "(attacks can show a leak, not prove there is none: 'high' needs DP)")
    else:
        level = "unknown"
        reason = ("no differential privacy and the holdout-based leakage checks (distance to "
                  "closest record, membership inference) were not computed: give a holdout and "
                  "run the full evaluation")
    return {"level": level, "basis": "leakage", "reason": reason,
            "checks": {t.name: t.status for t in judged}}


def unit_text(unit: str | None) -> str:
    """Plain words for the unit of privacy."""
    if unit == "patient":
        return "patient (one patient with all their rows)"
    return "row (one record added or removed)"


# -- warnings ---------------------------------------------------------------------------------

def warnings_for(report: Mapping[str, Any]) -> list[str]:
    """Plain-language warnings about the evaluation itself (e.g. a likely leak column)."""
    metrics = report.get("metrics") or {}
    out = []
    target = (report.get("meta") or {}).get("target") or (report.get("utility") or {}).get(
        "target")
    for name, what in (("trtr_auc", "ROC AUC"), ("trtr_r2", "R²")):
        value = _value(metrics, name)
        if value is not None and value >= TRTR_LEAK:
            out.append(f"Real-on-real utility is {format_number(value)} ({what} of a model "
                       f"trained on the real rows, predicting {target!r} on the holdout): the "
                       "target is almost perfectly predictable, so a column probably leaks it "
                       "(e.g. a "
                       "value recorded after the outcome). Utility then measures the leak, not "
                       "the synthetic data: drop that column (data.drop) and run again.")
    fallback = _range_fallbacks(report)
    if fallback:
        out.append(f"Under differential privacy no range could be estimated for "
                   f"{', '.join(fallback)}: the budget per column was too small for the number "
                   "of rows (no noisy count cleared the noise), so the column(s) were set to "
                   "[0, 1] and carry no information. Raise privacy.epsilon, declare the "
                   "column's min and max public in the schema (public: true), or drop it.")
    return out


def _range_fallbacks(report: Mapping[str, Any]) -> list[str]:
    """Columns whose DP range estimate fell back to [0, 1] (ledger ``range_fallback``)."""
    privacy = (report.get("sections") or {}).get("privacy") or {}
    names = []
    for entry in privacy.get("entries") or []:
        if isinstance(entry, Mapping) and (entry.get("params") or {}).get("range_fallback"):
            step = str(entry.get("step", ""))
            names.append(step.replace("transform.bounds[", "").rstrip("]") or step)
    return names


def worst_group(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The group whose synthetic rows match the real ones least (the ``groups`` section's
    ``worst_group``) with a sentence for the first screen; ``not_private`` under DP (the
    per-group numbers read the real rows). None when no group was evaluated."""
    sections = report.get("sections") or {}
    worst = (sections.get("groups") or {}).get("worst_group")
    if not isinstance(worst, Mapping) or _value(worst, "shapes") is None:
        return None
    num = format_number
    text = f"Worst group: {worst.get('group')}, shapes {num(worst['shapes'])}"
    gap, overall = _value(worst, "gap"), _value(worst, "overall_shapes")
    if gap is not None and overall is not None:
        text += (f" vs {num(overall)} over all rows (gap {num(gap)}; shapes of the other "
                 f"columns, 1 = identical to the real rows)")
    private = bool((sections.get("privacy") or {}).get("private"))
    return {"group": worst.get("group"), "column": worst.get("column"),
            "value": worst.get("value"), "shapes": worst["shapes"], "overall_shapes": overall,
            "gap": gap, "not_private": private, "text": text}


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The first screen as data: quality, privacy level, DP facts, gate status, warnings,
    the worst group."""
    gate = (report.get("sections") or {}).get("gate")
    if not gate:
        status = "not_judged"
    else:
        status = gate.get("status") or ("passed" if gate.get("passed") else "failed")
        if gate.get("judged") is False:
            status = "not_judged"
    return {"quality": quality_score(report.get("metrics") or {}),
            "privacy": privacy_level(report), "dp": dp_facts(report),
            "gate_status": status, "warnings": warnings_for(report),
            "worst_group": worst_group(report)}


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def format_number(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.0e}"
        return f"{value:.3g}"
    return str(value)
