"""Parameter checks shared by the generators: each raises ``ConfigError`` naming the parameter."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthdata.errors import ConfigError
from synthdata.models.base import BaseGenerator


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
