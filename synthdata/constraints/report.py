"""The run report's constraints section: violations of declared and proposed rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from synthdata.constraints.enforce import ConstraintEnforcer
from synthdata.errors import DataError
from synthdata.schema.model import Schema

DISCOVERY_OFF_UNDER_DP = ("disabled: privacy is set, and rules discovered from the data are a "
                          "property of the private table (declared constraints are public and "
                          "free)")


def _counts(schema: Schema, rules: tuple, real: pd.DataFrame,
            synth: pd.DataFrame) -> list[tuple[Any, int, int]]:
    sub = dataclasses.replace(schema, constraints=tuple(rules), proposed_constraints=())
    enf = ConstraintEnforcer(sub).learn(real)
    on_real, on_synth = enf.violation_counts(real), enf.violation_counts(synth)
    return [(r, on_real[r.describe()], on_synth[r.describe()]) for r in rules]


def constraints_section(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, *,
                        discover: bool = True) -> dict[str, Any]:
    """Violations per declared rule in ``synth`` (0 when enforcement works) and, for
    proposed rules (the schema's and, with ``discover``, those found on ``real``), how many
    the real data satisfies but the synthetic data breaks."""
    declared = [{"rule": r.describe(), "kind": r.kind, "violations": s}
                for r, _, s in _counts(schema, schema.constraints, real, synth)]
    proposed_rules = list(schema.proposed_constraints)
    source = {r.describe(): "schema" for r in proposed_rules}
    note = DISCOVERY_OFF_UNDER_DP
    if discover:
        from synthdata.constraints.discover import discover as find

        note = "ran on the training split"
        known = {r.describe() for r in (*schema.constraints, *proposed_rules)}
        try:
            found = [r for r in find(real, schema) if r.describe() not in known]
        except DataError as err:  # never fail a run on discovery
            found, note = [], f"failed: {err}"
        proposed_rules += found
        source.update({r.describe(): "discovered" for r in found})
    proposed = [{"rule": r.describe(), "kind": r.kind, "source": source[r.describe()],
                 "real_violations": real_v, "synthetic_violations": syn_v}
                for r, real_v, syn_v in _counts(schema, tuple(proposed_rules), real, synth)]
    return {
        "declared": declared,
        "declared_violations": sum(d["violations"] for d in declared),
        "proposed": proposed,
        "proposed_broken_by_synthetic": sum(1 for p in proposed if p["real_violations"] == 0
                                            and p["synthetic_violations"] > 0),
        "discovery": note,
    }


def synthetic_violations(synth: pd.DataFrame, schema: Schema) -> int:
    """Rows of ``synth`` breaking a declared rule, checked against the declared rules alone
    (no combination or lookup learned from real rows): DP-safe post-processing, so a DP
    gate may decide on it. Learned fixed combinations count as met here (the DP
    transformer's released set is what enforcement uses)."""
    sub = dataclasses.replace(schema, proposed_constraints=())
    enf = ConstraintEnforcer(sub).learn(synth.iloc[:0], private=True)
    return int(sum(enf.violation_counts(synth).values()))
