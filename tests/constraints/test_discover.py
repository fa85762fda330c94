"""Discovery: rules found on 70% of each shared table hold on the other 30%; fast on wide tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.constraints.kinds import combination_keys
from synthdata.constraints.report import constraints_section
from tests.conftest import requires_shared, shared_csvs

EXPECTED = {"flchain.csv": {"fixed combinations of (death, chapter)"},
            "rotterdam.csv": {"rtime <= dtime"}, "pbcseq.csv": {"day <= futime"},
            "telco_churn.csv": {"fixed combinations of (phone_service, multiple_lines)",
                                "fixed combinations of (internet_service, online_security)",
                                "monthly_charges <= total_charges"}}


def _split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    perm = np.random.default_rng(0).permutation(len(df))
    cut = int(0.7 * len(df))
    return df.iloc[perm[:cut]].reset_index(drop=True), df.iloc[perm[cut:]].reset_index(drop=True)


@requires_shared()
@pytest.mark.parametrize("path", shared_csvs(), ids=lambda p: p.name)
def test_discovered_rules_hold_on_the_held_out_part(path) -> None:
    df = pd.read_csv(path)
    if len(df) > 60_000:
        df = df.sample(60_000, random_state=0)
    train, hold = _split(df)
    schema = sd.Schema.infer(train, discover_constraints=True)
    found = {r.describe() for r in schema.proposed_constraints}
    assert EXPECTED.get(path.name, set()) <= found
    for rule in schema.proposed_constraints:
        if rule.kind == "fixed_combinations":
            # only rows whose values were all seen in the 70% can speak to a combination rule
            seen = np.ones(len(hold), dtype=bool)
            for c in rule.columns:
                seen &= combination_keys(hold, (c,)).isin(set(combination_keys(train, (c,)))).to_numpy()
            allowed = set(combination_keys(train, rule.columns))
            broken = (~combination_keys(hold, rule.columns).isin(allowed)).to_numpy() & seen
        else:
            broken = rule.violations(hold, schema)
        assert broken.sum() == 0, (path.name, rule.describe())


def test_discovery_finds_a_planted_rule_in_a_wide_table() -> None:
    # speed (target < 10 s for 50k x 50) is measured by benchmarks/bench_speed.py
    rng = np.random.default_rng(0)
    n = 50_000
    cols = {f"x{i}": rng.normal(size=n).round(3) for i in range(30)}
    cols |= {f"c{i}": rng.choice(list("abcde"), size=n) for i in range(15)}
    cols |= {f"k{i}": rng.integers(0, 1000, size=n) for i in range(5)}
    cols["x1"] = cols["x0"] + np.abs(cols["x1"])          # a planted inequality
    df = pd.DataFrame(cols)
    schema = sd.Schema.infer(df)
    found = sd.Schema.infer(df, discover_constraints=True).proposed_constraints
    assert "x0 <= x1" in {r.describe() for r in found}
    assert len(schema) == 50


def test_infer_writes_proposed_rules_to_yaml(flchain, tmp_path) -> None:
    schema = sd.Schema.infer(flchain, discover_constraints=True)
    text = schema.save(tmp_path / "f.yaml").read_text()
    assert "kind: fixed_combinations" in text and "proposed: true" in text
    back = sd.Schema.load(tmp_path / "f.yaml")
    assert back.constraints == () and back.proposed_constraints == schema.proposed_constraints


def test_report_section_counts_declared_and_proposed(flchain) -> None:
    schema = sd.Schema.infer(flchain).with_constraints(sd.Positive("kappa"))
    synth = flchain.copy()
    synth.loc[:4, "kappa"] = -1.0
    synth.loc[synth.index[synth["death"] == 1][:10], "chapter"] = None  # breaks (death, chapter)
    section = constraints_section(flchain, synth, schema)
    assert section["declared"] == [{"rule": "kappa >= 0", "kind": "positive", "violations": 5}]
    assert section["declared_violations"] == 5
    broken = [p for p in section["proposed"] if p["synthetic_violations"]]
    assert [p["rule"] for p in broken] == ["fixed combinations of (death, chapter)"]
    assert section["proposed_broken_by_synthetic"] == 1
    off = constraints_section(flchain, synth, schema, discover=False)
    assert off["proposed"] == [] and off["discovery"].startswith("disabled: privacy")


def test_report_section_names_where_each_proposed_rule_comes_from(flchain) -> None:
    """A rule the schema proposes is marked ``schema``; rules discovery adds on the training
    split are marked ``discovered``."""
    import dataclasses

    schema = dataclasses.replace(sd.Schema.infer(flchain),
                                 proposed_constraints=(sd.Positive("kappa"),))
    section = constraints_section(flchain, flchain, schema)
    source = {p["rule"]: p["source"] for p in section["proposed"]}
    assert source["kappa >= 0"] == "schema"
    assert source["fixed combinations of (death, chapter)"] == "discovered"
    assert set(source.values()) == {"schema", "discovered"}
    assert section["discovery"] == "ran on the training split"


def _two_numbers_and_two_dates(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n).round(3)
    start = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D")
    end = start + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    return pd.DataFrame({"x": x, "y": x + np.abs(rng.normal(size=n)).round(3),
                         "start": start.strftime("%Y-%m-%d"), "end": end.strftime("%Y-%m-%d")})


def test_an_inequality_between_the_only_two_number_columns_is_found() -> None:
    from synthdata.constraints.discover import discover

    df = _two_numbers_and_two_dates()[["x", "y"]]
    assert [r.describe() for r in discover(df, sd.Schema.infer(df))] == ["x <= y"]


def test_max_pairs_bounds_the_pairs_tested_across_numbers_and_dates() -> None:
    """Numbers are tested first; the dates only get the pairs the numbers left over."""
    from synthdata.constraints.discover import discover

    df = _two_numbers_and_two_dates()
    schema = sd.Schema.infer(df)
    assert schema["start"].kind == schema["end"].kind == sd.ColumnKind.DATETIME
    assert [r.describe() for r in discover(df, schema, max_pairs=1)] == ["x <= y"]
    assert [r.describe() for r in discover(df, schema, max_pairs=2)] == ["x <= y", "start <= end"]


def test_a_lookup_target_needs_more_than_min_key_support_rows_per_value() -> None:
    """A one-to-one code/label pair (25 values, too many to combine) where each value is
    seen on exactly MIN_KEY_SUPPORT rows is not proposed (the label is close to a row
    identifier); with one more row per value both lookups are."""
    from synthdata.constraints.discover import MIN_KEY_SUPPORT, discover

    found = {}
    for reps in (MIN_KEY_SUPPORT, MIN_KEY_SUPPORT + 1):
        codes = np.repeat(np.arange(25), reps)
        df = pd.DataFrame({"code": [f"C{c:02d}" for c in codes],
                           "label": [f"label {c}" for c in codes]})
        found[reps] = [r.describe() for r in discover(df, sd.Schema.infer(df))]
    assert found[MIN_KEY_SUPPORT] == []
    assert found[MIN_KEY_SUPPORT + 1] == ["label = lookup(code)", "code = lookup(label)"]
