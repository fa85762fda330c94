"""The one JSON-safe encoder: every artefact spells non-finite numbers the same way."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from synthdata.jsonsafe import json_safe


def test_numpy_values_become_plain_types() -> None:
    out = json_safe({"a": np.int64(3), "b": np.float32(0.5), "c": np.bool_(True),
                     "d": np.array([1, 2]), 4: (1, 2)})
    assert out == {"a": 3, "b": 0.5, "c": True, "d": [1, 2], "4": [1, 2]}
    assert type(out["a"]) is int and type(out["c"]) is bool
    json.dumps(out, allow_nan=False)


def test_nan_is_null_and_infinity_is_a_string_by_default() -> None:
    out = json_safe([math.nan, math.inf, -math.inf, np.float64("inf"), 1.5])
    assert out == [None, "inf", "-inf", "inf", 1.5]
    assert float(out[1]) == math.inf  # round-trips


def test_infinity_null_for_finite_only_consumers() -> None:
    assert json_safe({"x": [math.inf, -math.inf, math.nan]}, infinity="null") == {
        "x": [None, None, None]}


def test_objects_with_to_dict_and_others() -> None:
    class Thing:
        def to_dict(self) -> dict:
            return {"v": np.float64(math.inf)}

    assert json_safe(Thing()) == {"v": "inf"}
    assert json_safe(pd.Timestamp("2020-01-02")).startswith("2020-01-02")


@pytest.mark.parametrize("module, function", [
    ("synthdata.evaluate.report", "to_jsonable"), ("synthdata.service.jobs", "json_safe")])
def test_report_and_service_delegate_with_null_infinity(module: str, function: str) -> None:
    import importlib

    try:
        fn = getattr(importlib.import_module(module), function)
    except ImportError as err:  # the service extra
        pytest.skip(str(err))
    assert fn({"e": math.inf, "n": np.int64(2)}) == {"e": None, "n": 2}
