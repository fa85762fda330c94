"""Input shapes the readers refuse or convert, with messages that say what to do."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError, DataError
from synthdata.io.files import normalize_cells, read_table
from synthdata.schema.infer import check_frame


def test_duplicate_csv_header_is_refused_not_renamed(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"column name\(s\) \['a'\] occur more than once"):
        read_table(path)


def test_duplicate_names_in_a_frame_are_refused():
    df = pd.DataFrame([[1, 2], [3, 4]], columns=["x", "x"])
    with pytest.raises(DataError, match=r"\['x'\] occur more than once"):
        check_frame(df)


def test_integers_beyond_64_bits_in_a_csv_stay_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("acct,v\n" + "".join(f"{10**24 + i},{i}\n" for i in range(5)))
    df = read_table(path)
    assert df["acct"].tolist() == [str(10**24 + i) for i in range(5)]


@pytest.mark.parametrize("values, message", [
    ([1.0, np.inf, 2.0], r"column 'v' has 1 infinite value\(s\) \(first: inf, row 1\)"),
    ([1.0, -np.inf, -np.inf], r"2 infinite value\(s\)"),
    ([1.0, 1e308, 2.0], r"1 value\(s\) beyond ±1e\+100"),
    ([[1], [2], [3]], r"column 'v' holds nested values \(list"),
    ([{"a": 1}, None, {"a": 2}], r"nested values \(dict"),
    ([b"x", b"y", b"z"], r"holds bytes values"),
    ([10**30, 1, 2], r"1 integer\(s\) beyond 64 bits"),
    ([decimal.Decimal("1.5"), "a", 2], r"decimal.Decimal values"),
    ([1 + 2j, 2j, 3j], r"complex numbers"),
])
def test_refused_values_name_column_count_and_remedy(values, message):
    with pytest.raises(DataError, match=message):
        check_frame(pd.DataFrame({"v": values}), where="t.csv")


def test_nan_and_64_bit_edges_are_accepted():
    check_frame(pd.DataFrame({"v": [1.0, np.nan, 1e99],
                              "i": np.array([2**63 - 1, 0, -2**63], dtype=np.int64)}))


def test_whole_decimal_and_date_columns_are_converted():
    df = pd.DataFrame({"d": [decimal.Decimal("1.25"), None, decimal.Decimal(3)],
                       "t": [datetime.date(2020, 1, 2), None, datetime.date(2021, 3, 4)],
                       "s": ["a", "b", "c"]})
    out = normalize_cells(df)
    assert out["d"].dtype == np.float64 and out["d"].iloc[0] == 1.25 and np.isnan(out["d"].iloc[1])
    assert pd.api.types.is_datetime64_any_dtype(out["t"])
    assert out["s"].tolist() == ["a", "b", "c"]


def test_nested_parquet_column_is_refused_by_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "tags": [["a"], ["b", "c"]]}), path)
    df = read_table(path)
    with pytest.raises(DataError, match=r"column 'tags' holds nested values"):
        sd.Schema.infer(df)


def test_a_table_with_nothing_to_learn_is_a_data_error():
    df = pd.DataFrame({"user_id": [f"u{i}" for i in range(40)]})
    gen = sd.make_generator("gmm", sd.Schema.infer(df), max_iter=2)
    with pytest.raises(DataError, match=r"no column a generator can learn: \['user_id \(id\)'\]"):
        gen.fit(df)


def test_negative_seeds_are_config_errors():
    df = pd.DataFrame({"a": np.arange(30.0), "b": ["x", "y"] * 15})
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        sd.make_generator("gmm", sd.Schema.infer(df), seed=-1).fit(df)
    gen = sd.make_generator("gmm", sd.Schema.infer(df), max_iter=2).fit(df)
    with pytest.raises(ConfigError, match=r"sample\(seed=...\) must be a non-negative integer"):
        gen.sample(5, seed=-3)
    from synthdata.pipeline.config import PipelineConfig

    with pytest.raises(ConfigError, match=r"seed: Input should be greater than or equal to 0"):
        PipelineConfig.from_dict({"seed": -1, "data": {"path": "x.csv"}})
    with pytest.raises(ConfigError, match=r"split.seed"):
        PipelineConfig.from_dict({"split": {"seed": -5}, "data": {"path": "x.csv"}})
