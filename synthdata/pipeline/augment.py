"""``sample.augment`` in a one-table pipeline: extra rows for under-represented groups.

    sample:
      augment: {column: race, target_share: balanced}   # or {target_share: {Black: 0.3}}
      rows: 2000                                         # optional: exactly this many extra

The run's synthetic output is the extra rows only, drawn group by group with conditional
sampling (:func:`synthdata.augment`); the evaluation and the gate read those rows. How many
rows each group gets depends on the group counts:

* without DP, the exact counts of the training split (the ledger records that the plan read
  the real rows);
* under DP, the DP model's own group shares (a sample of ``PROBE_ROWS`` unconditioned rows)
  times the DP count of the training rows, and every category the schema declares: the plan
  is post-processing of DP releases and costs no budget (the ledger records it as public).

The report's ``augmentation`` section holds the plan and a measured effect
(:func:`synthdata.evaluate.groups.augmentation_effect`): a model trained on real + synthetic
rows vs on the real rows alone, on the worst group of the holdout. That measurement reads the
real rows: under DP it is internal QA, not private, and the ledger says so.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from synthdata.augmentation import augment, augment_plan
from synthdata.errors import ConfigError
from synthdata.pipeline.config import PipelineConfig
from synthdata.schema.model import Schema

SECTION = "augmentation"
PROBE_ROWS = 10_000   # unconditioned DP-model rows that estimate the group shares under DP


def augment_rows(gen: Any, train: pd.DataFrame, cfg: PipelineConfig, schema: Schema, *,
                 n_noisy: int | None, ledger: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The extra rows of ``sample.augment`` and the report section that describes them."""
    spec = cfg.sample.augment
    assert spec is not None
    column = spec.column
    if n_noisy is None:
        counts = train[column].value_counts(dropna=True).to_dict()
        source = "the exact group counts of the training split (not private)"
        ledger.record_not_private("sample.augment", reason="how many extra rows each group "
                                  "gets depends on the exact group counts of the training "
                                  "rows", shapes_release=True)
    else:
        probe = gen.sample(min(PROBE_ROWS, max(n_noisy, 1)), seed=cfg.seed)[column]
        shares = probe.value_counts(normalize=True, dropna=True)
        counts = {value: 0 for value in schema[column].categories or ()}
        counts.update({value: int(round(share * n_noisy)) for value, share in shares.items()})
        source = ("the DP model's own group shares times the DP count of the training rows "
                  "(post-processing of DP releases)")
        ledger.record_public("sample.augment", reason="the rows per group come from the DP "
                             "model's own group shares and the DP count: post-processing, no "
                             "budget")
    target_share = _match_values(spec.target_share, counts, column)
    plan = augment_plan(counts, target_share, cfg.sample.rows)
    if sum(plan.values()) == 0:
        raise ConfigError(f"sample.augment: the groups of {column!r} already meet "
                          f"target_share {spec.target_share!r} (group counts from {source}); "
                          "nothing to add: lower a share or set sample.rows")
    extra = augment(gen, train, by=column, target_share=target_share, rows=cfg.sample.rows,
                    counts=counts, seed=cfg.seed)
    section = {"column": column, "target_share": spec.target_share,
               "rows": {str(k): v for k, v in plan.items()}, "total_rows": len(extra),
               "counts_from": source,
               "note": "the synthetic output is these extra rows only: add them to the real "
                       "training rows (the evaluation and the gate read them; their group "
                       "shares differ from the real data's by design)"}
    return extra, section


def _match_values(target_share: Any, counts: dict[Any, int], column: str) -> Any:
    """``target_share`` with its keys as the data's values (YAML reads ``1`` for ``"1"``)."""
    if isinstance(target_share, str):
        return target_share
    by_text = {str(value): value for value in counts}
    out = {}
    for key, share in target_share.items():
        if key not in counts and str(key) not in by_text:
            raise ConfigError(f"sample.augment.target_share: {column!r} has no group {key!r}; "
                              f"groups are {sorted(map(str, counts))}")
        out[key if key in counts else by_text[str(key)]] = share
    return out


def add_effect(report: Any, section: dict[str, Any], train: pd.DataFrame, extra: pd.DataFrame,
               holdout: pd.DataFrame | None, schema: Schema, cfg: PipelineConfig,
               ledger: Any) -> None:
    """Measure real + synthetic vs real only on the worst group; add the report section."""
    from synthdata.evaluate.groups import augmentation_effect

    section["effect"] = augmentation_effect(
        train, extra, holdout=holdout, schema=schema, by=section["column"],
        target=cfg.evaluate.target, min_group_size=cfg.evaluate.min_group_size, seed=cfg.seed,
        exclude=cfg.evaluate.exclude)
    report.add_section(SECTION, section)
    ledger.record_not_private("evaluate.augmentation", reason="the effect of the extra rows "
                              "is measured by models trained on the real training rows and "
                              "scored on the real holdout")
