"""Fair augmentation: extra synthetic rows for under-represented groups.

    extra = sd.augment(gen, real, by="sex", target_share="balanced")
    training_set = pd.concat([real, extra])

``target_share`` is ``"balanced"`` (every group the same share) or ``{value: share}`` (shares of
the listed groups; the rest keep their real counts). Without ``rows`` the fewest extra rows
that reach the target shares are drawn; with ``rows`` exactly that many, split over the groups
in proportion to their shortfall. Rows come from ``gen.sample(k, conditions={by: value})``.

The plan reads the exact group counts of ``real``: under DP it is not private (the extra rows
are synthetic, but how many of each group depends on the real counts); pass ``counts=`` with
public or DP counts to avoid that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError


def check_target_share(target_share: Any, where: str = "augment") -> dict[Any, float]:
    """``{value: share}`` with every share a number in (0, 1) adding up to at most 1, or
    ``"balanced"`` (returns ``{}``): what can be checked before the groups are known."""
    if isinstance(target_share, str):
        if target_share != "balanced":
            raise ConfigError(f"{where}: target_share must be 'balanced' or a mapping "
                              f"{{value: share}}, got {target_share!r}")
        return {}
    if not isinstance(target_share, Mapping) or not target_share:
        raise ConfigError(f"{where}: target_share must be 'balanced' or a non-empty mapping "
                          f"{{value: share}}, got {target_share!r}")
    bad = {g: s for g, s in target_share.items() if isinstance(s, bool)
           or not isinstance(s, (int, float, np.integer, np.floating)) or not 0 < s < 1}
    if bad or sum(float(s) for s in target_share.values()) > 1 + 1e-6:
        raise ConfigError(f"{where}: each target share must be a number in (0, 1) and the "
                          f"shares must add up to at most 1, got {dict(target_share)}")
    return {g: float(s) for g, s in target_share.items()}


def augment_plan(counts: Mapping[Any, int], target_share: str | Mapping[Any, float] = "balanced",
                 rows: int | None = None) -> dict[Any, int]:
    """Extra rows per group so that the groups reach ``target_share`` (see the module doc)."""
    groups = list(counts)
    if not groups:
        raise ConfigError("augment: there is no group to augment")
    c = np.array([float(counts[g]) for g in groups])
    if isinstance(target_share, str):
        if target_share != "balanced":
            raise ConfigError(f"augment: target_share must be 'balanced' or a mapping "
                              f"{{value: share}}, got {target_share!r}")
        share = np.full(len(groups), 1.0 / len(groups))
    elif isinstance(target_share, Mapping):
        unknown = [g for g in target_share if g not in counts]
        if unknown:
            raise ConfigError(f"augment: target_share names group(s) {unknown} that the data "
                              f"does not have; groups are {groups}")
        given = check_target_share(target_share)
        rest = [g for g in groups if g not in given]
        total_given = sum(given.values())
        if (rest and total_given >= 1) or (not rest and abs(total_given - 1) > 1e-6):
            raise ConfigError("augment: each target share must be in (0, 1); the listed "
                              "shares must add up to 1 when every group is listed and stay "
                              f"below 1 otherwise, got {given}")
        rest_share = max(1.0 - sum(given.values()), 0.0)
        rest_total = float(sum(counts[g] for g in rest)) or 1.0
        share = np.array([given[g] if g in given else rest_share * counts[g] / rest_total
                          for g in groups])
    else:
        raise ConfigError(f"augment: target_share must be 'balanced' or a mapping, got "
                          f"{type(target_share).__name__}")
    with np.errstate(divide="ignore"):
        total = float(np.max(np.where(share > 0, c / share, 0.0)))
    need = np.maximum(share * total - c, 0.0)
    if rows is not None:
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows <= 0:
            raise ConfigError(f"augment: rows must be a positive integer, got {rows!r}")
        need = np.maximum(share * (c.sum() + rows) - c, 0.0)
        need = need / need.sum() * rows if need.sum() > 0 else share * rows
        out = np.floor(need).astype(int)
        out[np.argsort(-(need - out))[: rows - out.sum()]] += 1   # largest remainders
        return {g: int(k) for g, k in zip(groups, out, strict=True)}
    return {g: int(round(k)) for g, k in zip(groups, need, strict=True)}


def augment(gen: Any, real: pd.DataFrame, *, by: str,
            target_share: str | Mapping[Any, float] = "balanced", rows: int | None = None,
            counts: Mapping[Any, int] | None = None, seed: int | None = None) -> pd.DataFrame:
    """Synthetic rows for the under-represented groups of ``by`` (see the module docstring)."""
    if by not in real.columns:
        raise ConfigError(f"augment: column {by!r} is not in the data; columns are "
                          f"{list(real.columns)}")
    if counts is None:
        counts = real[by].value_counts(dropna=True).to_dict()
    plan = augment_plan(counts, target_share, rows)
    rng = np.random.default_rng(seed)
    parts = [gen.sample(k, conditions={by: value}, seed=int(rng.integers(2**31)))
             for value, k in plan.items() if k > 0]
    if not parts:
        return real.iloc[:0].copy()
    return pd.concat(parts, ignore_index=True)
