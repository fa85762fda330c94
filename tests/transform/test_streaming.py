"""The streaming first pass: mergeable summaries and a transformer fitted from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthdata.errors import DataError
from synthdata.schema import Schema
from synthdata.transform.streaming import TableSummary, fit_transformer_from_summary, row_hashes
from synthdata.transform.table import TableTransformer


def _mixed(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "value": np.round(rng.normal(50, 10, n), 2),          # > 1000 distinct at larger n
        "count": rng.integers(0, 30, n),
        "group": rng.choice(["a", "b", "c", "d"], n),
        "flag": rng.random(n) < 0.3,
        "day": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
    })
    df.loc[rng.random(n) < 0.1, "value"] = np.nan
    df.loc[rng.random(n) < 0.05, "group"] = None
    return df


def _summary(schema: Schema, parts: list[pd.DataFrame], **kw: int) -> TableSummary:
    total = TableSummary(schema, **kw)
    for part in parts:
        total.update(part)
    return total


def _states_equal(a: dict, b: dict) -> None:
    assert list(a["encoders"]) == list(b["encoders"])
    for name, ea in a["encoders"].items():
        eb = b["encoders"][name]
        assert set(ea) == set(eb), name
        for key, va in ea.items():
            vb = eb[key]
            if isinstance(va, list) and va and isinstance(va[0], float):
                np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-9, err_msg=f"{name}.{key}")
            else:
                assert va == vb, f"{name}.{key}: {va!r} != {vb!r}"


@pytest.mark.parametrize("discrete", ["onehot", "auto"])
def test_transformer_from_summary_equals_the_in_memory_fit(flchain: pd.DataFrame,
                                                           discrete: str) -> None:
    # flchain's futime has > 1000 distinct values: the interpolated quantile knots too
    schema = Schema.infer(flchain)
    parts = np.array_split(np.arange(len(flchain)), 7)
    summary = _summary(schema, [flchain.iloc[p] for p in parts])
    streamed = fit_transformer_from_summary(
        TableTransformer(schema, numeric="quantile", discrete=discrete), summary,
        np.random.default_rng(0))
    memory = TableTransformer(schema, numeric="quantile", discrete=discrete).fit(flchain)
    _states_equal(streamed.get_state(), memory.get_state())
    np.testing.assert_allclose(streamed.transform(flchain), memory.transform(flchain), atol=1e-9)


def test_mixed_kinds_with_missing_cells_match_the_in_memory_fit() -> None:
    df = _mixed()
    schema = Schema.infer(df)
    summary = _summary(schema, [df.iloc[:100], df.iloc[100:450], df.iloc[450:]])
    streamed = fit_transformer_from_summary(TableTransformer(schema, numeric="quantile"),
                                            summary, np.random.default_rng(0))
    memory = TableTransformer(schema, numeric="quantile").fit(df)
    _states_equal(streamed.get_state(), memory.get_state())
    assert summary.n_rows == len(df)
    out = streamed.inverse_transform(streamed.transform(df))
    assert out["value"].isna().sum() == df["value"].isna().sum()


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 599), max_size=6, unique=True))
def test_the_summary_does_not_depend_on_how_the_table_is_split(cuts: list[int]) -> None:
    df = _mixed()
    schema = Schema.infer(df)
    edges = [0, *sorted(cuts), len(df)]
    split = _summary(schema, [df.iloc[a:b] for a, b in zip(edges, edges[1:], strict=False)],
                     sample_rows=200)
    whole = _summary(schema, [df], sample_rows=200)
    assert split.n_rows == whole.n_rows == len(df)
    pd.testing.assert_frame_equal(split.sample, whole.sample)
    for name, col in whole.columns.items():
        other = split.columns[name]
        if hasattr(col, "values") and col.values is not None:
            np.testing.assert_array_equal(col.values, other.values)
            np.testing.assert_array_equal(col.counts, other.counts)
        elif col is not None:
            assert col.__dict__ == other.__dict__


def test_the_row_sample_counts_repeated_rows_exactly() -> None:
    base = _mixed(50)
    df = pd.concat([base] * 7, ignore_index=True)  # every row seven times
    schema = Schema.infer(base)
    summary = _summary(schema, [df.iloc[:123], df.iloc[123:]], sample_rows=20)
    assert len(summary.sample) == 20
    assert set(summary.sample["__synthdata_row_count"]) == {7}
    drawn = summary.row_sample(100, np.random.default_rng(0))
    assert len(drawn) == 100 and list(drawn.columns) == list(base.columns)


def test_row_hashes_ignore_the_readers_dtypes() -> None:
    df = pd.DataFrame({"n": [1, 2, 3], "s": ["x", "y", None]})
    other = pd.DataFrame({"n": [1.0, 2.0, 3.0], "s": pd.Series(["x", "y", None], dtype=object)})
    np.testing.assert_array_equal(row_hashes(df, 1), row_hashes(other, 1))
    assert not np.array_equal(row_hashes(df, 1), row_hashes(df, 2))  # seeded
    assert len(set(row_hashes(df, 1).tolist())) == 3


def test_categories_outside_the_declared_ones_are_refused() -> None:
    df = pd.DataFrame({"g": ["a", "b", "z"] * 5})
    schema = Schema.from_dict({"name": "t", "columns": [
        {"name": "g", "kind": "categorical", "categories": ["a", "b"]}]})
    summary = _summary(schema, [df])
    with pytest.raises(DataError, match=r"column 'g' holds value\(s\) \['z'\].*categories"):
        fit_transformer_from_summary(TableTransformer(schema), summary, np.random.default_rng(0))


def test_a_batch_without_a_schema_column_is_refused() -> None:
    df = _mixed(20)
    schema = Schema.infer(df)
    with pytest.raises(DataError, match=r"\['flag'\].*missing from a batch"):
        TableSummary(schema).update(df.drop(columns=["flag"]))
