"""Survival time units: declared or read off the description; the KM plot is in years."""

import copy

import pytest

from synthdata.errors import SchemaError
from synthdata.relational.schema import MultiTableSchema, SurvivalSpec
from tests.conftest import DATA
from tests.medical.history_data import SCHEMA


def test_unit_is_declared_or_read_from_the_description():
    ms = MultiTableSchema.load(DATA.parent / "schemas" / "pbc.yaml")
    assert ms.survival["pbc"].time_unit(ms.tables["pbc"]) == "days"   # "number of days ..."
    data = copy.deepcopy(SCHEMA)
    data["survival"] = {"patients": {"time": "futime", "event": "death", "unit": "months"}}
    ms = MultiTableSchema.from_dict(data)
    assert ms.survival["patients"].time_unit(ms.tables["patients"]) == "months"
    assert MultiTableSchema.from_dict(ms.to_dict()).survival["patients"].unit == "months"
    data["survival"]["patients"].pop("unit")
    ms = MultiTableSchema.from_dict(data)
    assert ms.survival["patients"].time_unit(ms.tables["patients"]) is None
    with pytest.raises(SchemaError, match="choose one of"):
        SurvivalSpec("futime", "death", unit="weeks")


def test_km_plot_axis_in_years_when_the_unit_is_days():
    pytest.importorskip("matplotlib")
    from unittest import mock

    from synthdata.evaluate import plots

    endpoint = {"time": "futime", "event": "death", "event_values": [1], "time_unit": "days",
                "km": {"real": {"times": [0, 365.25, 730.5], "survival": [1, 0.8, 0.5]}}}
    seen = {}

    def spy(fig, alt=""):
        ax = fig.axes[0]
        seen["label"] = ax.get_xlabel()
        seen["x"] = list(ax.lines[0].get_xdata())
        return "<img alt='plot'>"

    with mock.patch.object(plots, "png", spy):
        plots.km("patients", endpoint)
    assert seen["label"] == "futime (years)"
    assert seen["x"] == pytest.approx([0, 1, 2])
