"""Constraints: rules synthetic rows never break, declared in the schema or discovered.

Kinds (:mod:`.kinds`): ``Inequality``, ``Range``, ``Positive``, ``Negative``,
``FixedCombinations``, ``Derived``, ``OneHot``, ``Proportional``, ``Unique``. Enforcement (:mod:`.enforce`)
reparameterises the table before the transformer sees it where it can (a difference
column for ``low <= high``, one categorical for a fixed combination or a one-hot group,
derived columns dropped and recomputed, a proportional column modelled as its ratio to
the product of its factors, constant ranges clipped) and falls back to
bounded, vectorised reject-and-resample. Discovery (:mod:`.discover`) proposes rules that
hold on every row; :mod:`.report` counts violations for the run report.
"""

from synthdata.constraints.kinds import (
    Constraint,
    Derived,
    FixedCombinations,
    Inequality,
    Negative,
    OneHot,
    Positive,
    Proportional,
    Range,
    Unique,
    constraint_from_dict,
    constraint_to_dict,
)

__all__ = ["Constraint", "Derived", "FixedCombinations", "Inequality", "Negative", "OneHot",
           "Positive", "Proportional", "Range", "Unique", "constraint_from_dict",
           "constraint_to_dict"]
