"""Schema.load reads complete schemas and, with the table, override files; the README's
call works as written."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import DataError, SchemaError
from tests.conftest import DATA

ROOT = DATA.parent
OVERRIDES = ROOT / "schemas" / "flchain.yaml"


def test_override_file_without_data_says_which_call_to_use():
    with pytest.raises(SchemaError, match=r"flchain.yaml is an override file, not a complete "
                                          r"schema: column\(s\) \['sample.yr'\] give no 'kind'.*"
                                          r"call Schema.load\(path, data=df\)"):
        sd.Schema.load(OVERRIDES)


def test_override_file_with_data(flchain):
    schema = sd.Schema.load(OVERRIDES, data=flchain)
    assert schema.names == list(flchain.columns) and schema.name == "flchain"
    assert schema["sex"].categories == ("F", "M") and schema["sex"].public
    assert schema["sample.yr"].pii == sd.PiiRole.QUASI          # from the file
    assert schema["sample.yr"].kind == sd.Schema.infer(flchain)["sample.yr"].kind  # inferred
    with pytest.raises(SchemaError, match=r"column 'age' is not in the data"):
        sd.Schema.load(OVERRIDES, data=flchain.drop(columns=["age"]))


def test_complete_schema_round_trip(tmp_path, flchain):
    full = sd.Schema.load(OVERRIDES, data=flchain)
    path = full.save(tmp_path / "schema.yaml")
    assert sd.Schema.load(path) == full
    assert sd.Schema.load(path, data=flchain) == full  # checked against the table
    with pytest.raises(DataError, match=r"column\(s\) \['age'\] named in schema 'flchain' are "
                                        r"missing"):
        sd.Schema.load(path, data=flchain.drop(columns=["age"]))


def test_readme_schema_call_runs(flchain, monkeypatch):
    """Every `Schema.load(...)` line of the README's Python example runs from the repo root."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Use it from Python", 1)[1].split("```python", 1)[1].split("```")[0]
    calls = [line.split("#")[0].strip() for line in block.splitlines()
             if "Schema.load(" in line.split("#")[0]]
    assert calls, "the README shows no Schema.load call"
    monkeypatch.chdir(ROOT)
    for line in calls:
        scope = {"sd": sd, "df": flchain, "pd": pd}
        exec(line, scope)  # noqa: S102 - our own README
        assert isinstance(scope["schema"], sd.Schema)


def test_readme_lists_all_generators():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r'"gmm" \| "vae" \| "ctgan" \| "ddpm"', readme)
    for cls in ("GMMGenerator", "VAEGenerator", "CTGANGenerator", "DDPMGenerator"):
        assert f"sd.{cls}" in readme
