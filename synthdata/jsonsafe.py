"""The one JSON-safe encoder: plain JSON types out of numpy/pandas values.

Every artefact the product writes (report.json, manifest.json, ledger, audit, service
responses) goes through :func:`json_safe`, so all of them spell a non-finite number the same
way. NaN is ``null`` (a value that was not computed). Infinity depends on what it means:
``infinity="string"`` (the default) writes ``"inf"`` / ``"-inf"`` — an unbounded ε must read
as unbounded, never as a missing value, and it round-trips through ``float("inf")``;
``infinity="null"`` writes ``null`` for consumers that only take finite numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

Infinity = Literal["string", "null"]


def json_safe(value: Any, *, infinity: Infinity = "string") -> Any:
    """``value`` with only dict/list/str/int/float/bool/None inside (see the module doc).

    Mappings get string keys, tuples and arrays become lists, numpy scalars are unwrapped,
    objects with ``to_dict()`` are converted, anything else becomes its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, infinity=infinity) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, infinity=infinity) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy array/scalar
        return json_safe(value.tolist(), infinity=infinity)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value) or infinity == "null":
            return None
        return "inf" if value > 0 else "-inf"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return json_safe(value.to_dict(), infinity=infinity)
    return str(value)
