"""The named metrics a report carries and a gate may refer to, with their direction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means; ``higher_is_better`` is None when neither direction is good."""

    name: str
    higher_is_better: bool | None
    description: str
    needs: str = ""   # what must be given for it to be computed ("holdout", "target", ...)


_INFO = [
    MetricInfo("shapes", True, "mean over columns of 1 - (KS or TV distance) vs train"),
    MetricInfo("shapes_holdout", True, "as shapes, against the holdout", "holdout"),
    MetricInfo("column_distance_mean", False, "mean per-column distance (KS numeric, TV "
               "discrete) vs train"),
    MetricInfo("missing_rate_difference", False, "mean absolute missing-rate difference"),
    MetricInfo("pair_trends", True, "mean pair similarity: 1-|dr|/2 (numeric pairs), "
               "1-TV of joint distribution (others), over the pairs with a real trend "
               "(|r| > 0.5 or Cramér's V > 0.3; all pairs if none)"),
    MetricInfo("pair_trends_all", True, "as pair_trends, over every pair"),
    MetricInfo("correlation_difference", False, "mean |difference| of the association matrix "
               "(Pearson / Cramér's V / correlation ratio)"),
    MetricInfo("quality_score", True, "mean of shapes and pair_trends"),
    MetricInfo("detection_auc", False, "ROC AUC of a real-vs-synthetic classifier; 0.5 is "
               "indistinguishable"),
    MetricInfo("utility_ratio", True, "TSTR / TRTR (AUC for classification, R² for "
               "regression)", "target and holdout"),
    MetricInfo("tstr_auc", True, "ROC AUC of a model trained on synthetic, tested on holdout",
               "classification target and holdout"),
    MetricInfo("trtr_auc", True, "ROC AUC of a model trained on train, tested on holdout",
               "classification target and holdout"),
    MetricInfo("tstr_f1", True, "macro-F1, trained on synthetic, tested on holdout",
               "classification target and holdout"),
    MetricInfo("trtr_f1", True, "macro-F1, trained on train, tested on holdout",
               "classification target and holdout"),
    MetricInfo("tstr_r2", True, "R², trained on synthetic, tested on holdout",
               "regression target and holdout"),
    MetricInfo("trtr_r2", True, "R², trained on train, tested on holdout",
               "regression target and holdout"),
    MetricInfo("coverage_categories", True, "share of real categories present in synthetic"),
    MetricInfo("coverage_range", True, "share of the real numeric range covered"),
    MetricInfo("exact_copies", False, "synthetic rows identical to a training row"),
    MetricInfo("exact_copy_share", False, "exact_copies / synthetic rows"),
    MetricInfo("exact_copy_excess", False, "exact_copy_share minus holdout_exact_copy_share: "
               "copies beyond what an independent real sample has", "holdout"),
    MetricInfo("holdout_exact_copy_share", None, "share of holdout rows identical to a "
               "training row (natural baseline for exact_copy_share)", "holdout"),
    MetricInfo("holdout_exact_copy_upper", None, "one-sided 95% Clopper-Pearson upper bound "
               "of holdout_exact_copy_share (an exact_copy_share below it is within the "
               "natural rate's sampling uncertainty)", "holdout"),
    MetricInfo("rare_value_replay", False, "share of synthetic rows holding, verbatim, a "
               "discrete value or pii: quasi combination that fewer than 10 training rows "
               "hold (names, rare diagnoses, rare quasi-identifier combinations)"),
    MetricInfo("holdout_rare_value_replay", None, "the same share for holdout rows: the "
               "natural rate an independent real sample reaches", "holdout"),
    MetricInfo("rare_value_replay_excess", False, "rare_value_replay minus "
               "holdout_rare_value_replay: rare training values replayed beyond the natural "
               "rate", "holdout"),
    MetricInfo("dcr_share", False, "share of synthetic rows closer to train than to holdout, "
               "reweighted to equal sizes; 0.5 ideal", "holdout"),
    MetricInfo("dcr_median_ratio", True, "median DCR to train / median DCR to holdout; 1 "
               "ideal, near 0 = copies", "holdout"),
    MetricInfo("nndr", True, "median nearest / second-nearest training distance ratio"),
    MetricInfo("mia_auc", False, "largest membership-inference ROC AUC over the attacks; "
               "0.5 = no leak", "holdout"),
    MetricInfo("mia_auc_distance", False, "distance attack ROC AUC", "holdout"),
    MetricInfo("mia_auc_density", False, "density-ratio (DOMIAS-style) attack ROC AUC",
               "holdout"),
    MetricInfo("mia_auc_classifier", False, "classifier attack ROC AUC", "holdout"),
    MetricInfo("mia_tpr_at_1pct_fpr", False, "largest TPR at 1% FPR over the attacks",
               "holdout"),
    MetricInfo("singling_out_risk", False, "Anonymeter-style singling-out risk", "holdout"),
    MetricInfo("singling_out_risk_ci_low", False, "95% CI low", "holdout"),
    MetricInfo("singling_out_risk_ci_high", False, "95% CI high", "holdout"),
    MetricInfo("linkability_risk", False, "Anonymeter-style linkability risk", "holdout"),
    MetricInfo("linkability_risk_ci_low", False, "95% CI low", "holdout"),
    MetricInfo("linkability_risk_ci_high", False, "95% CI high", "holdout"),
    MetricInfo("inference_risk", False, "Anonymeter-style attribute-inference risk (worst "
               "secret)", "holdout and a sensitive column or target"),
    MetricInfo("inference_risk_ci_low", False, "95% CI low",
               "holdout and a sensitive column or target"),
    MetricInfo("inference_risk_ci_high", False, "95% CI high",
               "holdout and a sensitive column or target"),
    # filled by the pipeline from the privacy ledger, listed so gates may use them
    MetricInfo("epsilon", False, "differential-privacy epsilon spent (privacy ledger)",
               "the pipeline's privacy ledger"),
    MetricInfo("delta", False, "differential-privacy delta spent (privacy ledger)",
               "the pipeline's privacy ledger"),
    MetricInfo("constraint_violations", False, "rows of the synthetic data breaking a declared "
               "constraint (0 when enforcement works)"),
    # per-group numbers (filled by the pipeline when there are sensitive columns:
    # evaluate.sensitive or pii: sensitive; see synthdata.evaluate.groups)
    MetricInfo("worst_group_shapes", True, "lowest within-group shapes over the groups of the "
               "sensitive columns", "a sensitive column"),
    MetricInfo("group_share_difference", False, "largest |real share - synthetic share| of a "
               "group of a sensitive column", "a sensitive column"),
    MetricInfo("tstr_worst_group_ratio", True, "lowest per-group TSTR ROC AUC / TRTR ROC AUC "
               "on the holdout", "a sensitive column, a two-class target and holdout"),
    MetricInfo("tstr_dp_difference", False, "demographic parity difference (fairlearn) of the "
               "model trained on synthetic data, worst sensitive column",
               "a sensitive column, a two-class target and holdout"),
    MetricInfo("trtr_dp_difference", None, "the same for the model trained on real data (the "
               "reference)", "a sensitive column, a two-class target and holdout"),
    MetricInfo("tstr_eo_difference", False, "equalised odds difference (fairlearn) of the "
               "model trained on synthetic data, worst sensitive column",
               "a sensitive column, a two-class target and holdout"),
    MetricInfo("trtr_eo_difference", None, "the same for the model trained on real data (the "
               "reference)", "a sensitive column, a two-class target and holdout"),
    # linked tables (filled by the multi-table pipeline)
    MetricInfo("referential_integrity", True, "share of child rows pointing to an existing "
               "parent (1 = 100%)", "linked tables"),
    MetricInfo("history_detection_auc", False, "AUC of a classifier telling real from synthetic "
               "patients by their whole history (counts, gaps, first/last values, slopes); the "
               "worst child table (0.5 = indistinguishable)", "linked tables"),
    MetricInfo("history_rule_violations", False, "synthetic rows breaking a within-patient rule "
               "(declared, or discovered without DP) in any child table (0 expected)",
               "linked tables"),
    MetricInfo("history_rule_violations_real", False, "real training rows breaking a "
               "within-patient rule (for comparison)", "linked tables"),
]
# linked tables: one value per link or table, named e.g. "km_max_distance[pbc]"
_FAMILIES = [
    MetricInfo("children_per_parent_tv", False, "total-variation distance of the number of "
               "children per parent, e.g. children_per_parent_tv[pbcseq.id -> pbc.id]",
               "linked tables"),
    MetricInfo("km_max_distance", False, "largest vertical gap between the Kaplan-Meier curves "
               "of a survival endpoint, e.g. km_max_distance[pbc]", "a survival endpoint"),
    MetricInfo("survival_time_violations", False, "synthetic survival times missing, negative "
               "or after the end of follow-up (0 expected)", "a survival endpoint"),
    MetricInfo("c_index_tstr", True, "Harrell's C on the real holdout of a Cox model trained on "
               "synthetic data", "a survival endpoint, a holdout and the survival extra"),
    MetricInfo("c_index_trtr", True, "Harrell's C on the real holdout of a Cox model trained on "
               "real data (the reference)", "a survival endpoint, a holdout and the survival "
               "extra"),
    MetricInfo("survival_concordance_ratio", True, "c_index_tstr / c_index_trtr, e.g. "
               "survival_concordance_ratio[pbc]",
               "a survival endpoint, a holdout and the survival extra"),
]
_FAMILIES += [
    MetricInfo("history_detection_auc", False, "whole-patient detection AUC of one child table, "
               "e.g. history_detection_auc[pbcseq]", "linked tables"),
    MetricInfo("history_tstr_auc", True, "per-patient TSTR: AUC on held-out real patients of a "
               "model trained on synthetic patients (parent columns + first visits), e.g. "
               "history_tstr_auc[pbcseq]", "linked tables, a target and a holdout"),
    MetricInfo("history_trtr_auc", True, "per-patient TRTR: the same model trained on real "
               "patients (the reference)", "linked tables, a target and a holdout"),
    MetricInfo("history_tstr_r2", True, "per-patient TSTR R² (numeric target)",
               "linked tables, a target and a holdout"),
    MetricInfo("history_trtr_r2", True, "per-patient TRTR R² (numeric target)",
               "linked tables, a target and a holdout"),
]
PATIENT_PREFIX = "patient_"   # leakage with one record per patient, e.g. patient_mia_auc

METRIC_INFO: dict[str, MetricInfo] = {m.name: m for m in _INFO}
KNOWN_METRICS: tuple[str, ...] = tuple(METRIC_INFO)
FAMILY_INFO: dict[str, MetricInfo] = {m.name: m for m in _FAMILIES}


def metric_info(name: str) -> MetricInfo | None:
    """The entry for ``name``: a plain metric, ``family[label]`` or ``patient_<leakage metric>``."""
    if name in METRIC_INFO:
        return METRIC_INFO[name]
    base, bracket, rest = name.partition("[")
    if bracket and rest.endswith("]") and base in FAMILY_INFO:
        return FAMILY_INFO[base]
    if name.startswith(PATIENT_PREFIX):
        inner = METRIC_INFO.get(name[len(PATIENT_PREFIX):])
        if inner is not None and inner.needs.startswith("holdout"):
            return MetricInfo(name, inner.higher_is_better, f"{inner.description} (one record "
                              "per patient)", "linked tables and a holdout")
    return None
