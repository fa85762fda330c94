"""Parameter checks shared by the generators: each raises ``ConfigError`` naming the parameter.

Also the ``epochs="auto"`` rule of the torch generators (:class:`EpochBudget`), in one place.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthdata.errors import ConfigError
from synthdata.models.base import BaseGenerator

logger = logging.getLogger(__name__)

AUTO = "auto"


def check_no_dp_early_stopping(gen: BaseGenerator) -> None:
    if getattr(gen, "privacy", None) is not None and getattr(gen, "early_stopping", False):
        raise ConfigError(f"{gen.name}: early_stopping is not available under privacy= (it reads "
                          "held-out real rows after every epoch); set early_stopping=false and "
                          "choose the number of epochs up front")


NUMERIC_ENCODINGS = ("quantile", "mode")


def check_encoding(gen: BaseGenerator) -> None:
    if gen.numeric_encoding not in NUMERIC_ENCODINGS:
        raise ConfigError(f"{gen.name}: parameter numeric_encoding must be one of "
                          f"{', '.join(NUMERIC_ENCODINGS)}, got {gen.numeric_encoding!r}")


def check_ints(gen: BaseGenerator, **params: Any) -> None:
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ConfigError(f"{gen.name}: parameter {key} must be a positive integer, got {value!r}")


def check_nonnegative(gen: BaseGenerator, **params: Any) -> None:
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not value >= 0 or not math.isfinite(value):
            raise ConfigError(f"{gen.name}: parameter {key} must be a non-negative number, "
                              f"got {value!r}")


def check_dims(gen: BaseGenerator, **params: Any) -> None:
    for key, value in params.items():
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value)
        if not ok:
            raise ConfigError(f"{gen.name}: parameter {key} must be a non-empty list of positive "
                              f"integers (layer widths), got {value!r}")


# -- epochs="auto" ------------------------------------------------------------------------

@dataclass(frozen=True)
class EpochBudget:
    """The ``epochs="auto"`` rule of a torch generator: a cap on optimizer steps.

    ``full_epochs`` passes over the training rows as long as they take at most
    ``max_steps`` optimizer steps; above that, as many whole epochs as fit in
    ``max_steps`` (at least one). Small tables keep the full epochs exactly; on large
    tables the work stops growing with the rows (the capped steps still draw their batches
    from every row). The caps were chosen by measurement (benchmarks/results/scale.md,
    "epochs='auto'").
    """

    full_epochs: int
    max_steps: int

    def epochs(self, steps_per_epoch: int) -> int:
        """Epochs for an epoch of ``steps_per_epoch`` optimizer steps."""
        steps = max(1, int(steps_per_epoch))
        return max(1, min(self.full_epochs, self.max_steps // steps))

    def full_rows(self, batch_size: int) -> int:
        """The most training rows that still get ``full_epochs`` at ``batch_size`` rows per
        step (one step per started batch)."""
        return (self.max_steps // self.full_epochs) * int(batch_size)


def check_epochs(gen: Any) -> None:
    """``epochs`` is ``"auto"`` or a positive integer."""
    if gen.epochs != AUTO:
        if isinstance(gen.epochs, str):
            raise ConfigError(f"{gen.name}: parameter epochs must be a positive integer or "
                              f"'auto', got {gen.epochs!r}")
        check_ints(gen, epochs=gen.epochs)


def resolve_epochs(gen: Any, budget: EpochBudget, steps_per_epoch: int) -> int:
    """The epochs a fit runs: an explicit ``epochs`` as given, ``"auto"`` by ``budget``.

    ``steps_per_epoch`` must come from the rows the run may plan from: under DP the noisy
    count (``BaseGenerator._planning_rows``), never the true number of rows. Logs the choice.
    """
    if gen.epochs != AUTO:
        epochs = int(gen.epochs)
        logger.info("%s: %d epochs of %d steps (epochs=%d)", gen.name, epochs, steps_per_epoch,
                    epochs)
        return epochs
    epochs = budget.epochs(steps_per_epoch)
    why = "the full {} fit within" if epochs == budget.full_epochs else "{} would exceed"
    logger.info("%s: %d epochs of %d steps (epochs='auto': %s the cap of %s steps)", gen.name,
                epochs, steps_per_epoch, why.format(budget.full_epochs), f"{budget.max_steps:,}")
    return epochs
