"""Shared vocabulary of the package: column kinds, privacy roles, plain values.

A leaf module (numpy and pandas only): the schema, the constraints, the transformers and the
metrics all speak these types, so each imports them from here and none imports another
for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd


class ColumnKind(str, Enum):
    """What a column holds; decides its transformer."""

    CONTINUOUS = "continuous"
    INTEGER = "integer"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    ID = "id"
    TEXT = "text"

    @property
    def is_numeric(self) -> bool:
        return self in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER)

    @property
    def is_discrete(self) -> bool:
        return self in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN)

    @property
    def is_learned(self) -> bool:
        """Ids and free text are never learned from the data."""
        return self not in (ColumnKind.ID, ColumnKind.TEXT)


class PiiRole(str, Enum):
    """Privacy role of a column (used by de-identification and risk metrics)."""

    DIRECT = "direct"
    QUASI = "quasi"
    SENSITIVE = "sensitive"
    # Reviewed and not an identifier: silences the identifier check for this column
    # (synthdata.medical.identifiers); de-identification leaves it as it is.
    NONE = "none"


def to_native(value: Any) -> Any:
    """Convert numpy/pandas scalars to plain Python values (YAML/JSON safe)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


# A progress callback: ``progress(step, done, total)``, e.g. ``("fit", 3, 300)`` after epoch 3.
Progress = Callable[[str, int, int], None]


def no_progress(step: str, done: int, total: int) -> None:
    """The default :data:`Progress`: report nothing."""
    return None
