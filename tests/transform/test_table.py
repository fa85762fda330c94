
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthdata.errors import DataError, NotFittedError
from synthdata.schema import ColumnKind, Schema
from synthdata.transform import Activation, SpanRole, TableTransformer
from tests.conftest import shared_csvs


def assert_round_trip(df: pd.DataFrame, schema: Schema, back: pd.DataFrame) -> None:
    assert list(back.columns) == list(df.columns)
    for col in schema:
        if not col.kind.is_learned:
            continue
        a, b = df[col.name], back[col.name]
        assert a.dtype == b.dtype, (col.name, a.dtype, b.dtype)
        assert (a.isna().to_numpy() == b.isna().to_numpy()).all(), col.name
        av, bv = a.dropna(), b.dropna()
        if pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a):
            np.testing.assert_allclose(av.to_numpy(float), bv.to_numpy(float), rtol=1e-6,
                                       atol=1e-9, err_msg=col.name)
        else:
            assert (av.to_numpy() == bv.to_numpy()).all(), col.name


@pytest.mark.parametrize("numeric", ["mode", "quantile"])
def test_round_trip_flchain(flchain, numeric):
    schema = Schema.infer(flchain)
    tt = TableTransformer(schema, numeric=numeric).fit(flchain, rng=0)
    matrix = tt.transform(flchain)
    assert matrix.shape == (len(flchain), tt.n_features_)
    assert_round_trip(flchain, schema, tt.inverse_transform(matrix))


@pytest.mark.parametrize("path", shared_csvs(), ids=lambda p: p.stem)
def test_round_trip_every_shared_dataset(path):
    df = pd.read_csv(path, low_memory=False)
    if len(df) > 50_000:
        df = df.sample(50_000, random_state=0).reset_index(drop=True)
    schema = Schema.infer(df)
    for numeric in ("quantile", "mode"):
        tt = TableTransformer(schema, numeric=numeric, max_modes=5).fit(df, rng=1)
        assert_round_trip(df, schema, tt.inverse_transform(tt.transform(df)))


def test_layout_roles(flchain_small):
    flchain = flchain_small
    schema = Schema.infer(flchain)
    tt = TableTransformer(schema, numeric="mode").fit(flchain)
    spans = {(s.column, s.role): s for s in tt.layout_}
    assert spans[("kappa", SpanRole.VALUE)].kind == Activation.TANH
    assert spans[("kappa", SpanRole.MODE)].kind == Activation.SOFTMAX
    assert ("creatinine", SpanRole.MISSING) in spans
    assert spans[("sex", SpanRole.CATEGORY)].width == 2
    assert spans[("chapter", SpanRole.CATEGORY)].width == len(schema["chapter"].categories) + 1
    assert "death" in tt.discrete_columns()


def test_ids_regenerated_text_empty():
    df = pd.DataFrame({"pid": np.arange(100, 160), "name": [f"N{i}" for i in range(60)],
                       "x": np.linspace(0, 1, 60)})
    schema = Schema.infer(df).with_overrides({"columns": [{"name": "name", "kind": "text"}]})
    tt = TableTransformer(schema).fit(df)
    back = tt.inverse_transform(tt.transform(df))
    assert back["pid"].tolist() == list(range(1, 61))  # new keys, never the real ones
    assert back["name"].isna().all()


def test_datetimes_keep_format_and_order():
    df = pd.DataFrame({"d": ["03/01/2021 10:15", "04/02/2021 11:00", None, "05/12/2022 08:30"] * 5})
    schema = Schema.infer(df)
    assert schema["d"].kind == ColumnKind.DATETIME
    tt = TableTransformer(schema, numeric="quantile").fit(df)
    back = tt.inverse_transform(tt.transform(df))
    assert back["d"].tolist() == df["d"].tolist()


def test_errors_name_the_column(flchain_small):
    schema = Schema.infer(flchain_small)
    with pytest.raises(NotFittedError, match="call fit"):
        TableTransformer(schema).transform(flchain_small)
    tt = TableTransformer(schema, numeric="quantile").fit(flchain_small)
    with pytest.raises(DataError, match="'sex'"):
        tt.transform(flchain_small.drop(columns=["sex"]))
    bad = flchain_small.copy()
    bad.loc[0, "sex"] = "X"
    with pytest.raises(DataError, match=r"column 'sex' has value\(s\) \['X'\]"):
        tt.transform(bad)


def test_state_round_trip(flchain_small):
    schema = Schema.infer(flchain_small)
    tt = TableTransformer(schema).fit(flchain_small)
    again = TableTransformer.from_state(schema, tt.get_state())
    np.testing.assert_array_equal(tt.transform(flchain_small), again.transform(flchain_small))
    assert again.layout_ == tt.layout_


def test_large_table_round_trip_100k_by_20():
    # speed (seconds, not minutes) is measured by benchmarks/bench_speed.py
    rng = np.random.default_rng(0)
    n = 100_000
    cols = {f"c{i}": rng.lognormal(size=n) for i in range(10)}
    cols |= {f"k{i}": rng.choice(["a", "b", "c", "d"], size=n) for i in range(10)}
    df = pd.DataFrame(cols)
    schema = Schema.infer(df)
    tt = TableTransformer(schema, numeric="quantile").fit(df)
    assert_round_trip(df, schema, tt.inverse_transform(tt.transform(df)))


# -- property-based round trips -------------------------------------------------------
_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)


@st.composite
def frames(draw):
    n = draw(st.integers(min_value=12, max_value=60))
    cols = {}
    cols["f"] = draw(st.lists(st.one_of(_floats, st.none()), min_size=n, max_size=n))
    cols["i"] = draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n))
    cols["c"] = draw(st.lists(st.sampled_from(["α", "b", "c d", ""]), min_size=n, max_size=n))
    cols["b"] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    df = pd.DataFrame(cols)
    df["f"] = df["f"].astype("float64")
    return df


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.sampled_from(["mode", "quantile"]))
def test_round_trip_property(df, numeric):
    schema = Schema.infer(df)
    tt = TableTransformer(schema, numeric=numeric, max_modes=3).fit(df, rng=0)
    assert_round_trip(df, schema, tt.inverse_transform(tt.transform(df)))


@pytest.mark.parametrize("numeric", ["mode", "quantile"])
def test_coded_inverse_equals_one_hot_inverse(flchain, numeric):
    # one column per span, a one-hot span as its code: the same table as the one-hot matrix
    schema = Schema.infer(flchain)
    tt = TableTransformer(schema, numeric=numeric).fit(flchain, rng=0)
    matrix = tt.transform(flchain.iloc[:500])
    coded = np.column_stack([
        np.argmax(matrix[:, sl], axis=1) if span.kind == Activation.SOFTMAX else matrix[:, sl.start]
        for span, sl in tt.span_slices()])
    assert coded.shape[1] == len(tt.layout_) < tt.n_features_
    pd.testing.assert_frame_equal(tt.inverse_transform(coded, coded=True),
                                  tt.inverse_transform(matrix))
    with pytest.raises(DataError, match=f"expected a matrix with {len(tt.layout_)} columns"):
        tt.inverse_transform(matrix, coded=True)


def test_inverse_in_row_blocks_and_on_threads_gives_the_same_frame(flchain):
    # what chunked sampling relies on: the arrays of row blocks, joined, build the frame the
    # whole matrix builds, whether the columns are built on one thread or several
    schema = Schema.infer(flchain)
    tt = TableTransformer(schema, numeric="quantile", discrete="auto").fit(flchain, rng=0)
    rng = np.random.default_rng(3)
    matrix = tt.transform(flchain.iloc[:900]) + rng.normal(0, 0.3, (900, tt.n_features_))
    whole = tt.inverse_transform(matrix)
    parts = [tt.inverse_arrays(matrix[i:i + 400]) for i in (0, 400, 800)]
    joined = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    assert joined["sex"].dtype.kind == "i" and joined["age"].dtype == np.float64
    pd.testing.assert_frame_equal(tt.frame_from_arrays(joined, 900), whole)
    pd.testing.assert_frame_equal(tt.frame_from_arrays(joined, 900, threads=3), whole)
    # the quantile map's guide tables read the scores as np.searchsorted / np.interp do
    enc = tt.encoder("futime")
    z = matrix[:, next(sl.start for span, sl in tt.span_slices() if span.column == "futime")]
    expect = np.interp(z, enc.zmid_, enc.knots_) if not enc.stepwise_ else \
        enc.knots_[np.searchsorted(enc.zedge_, z)]
    inside = (z >= enc.zmid_[0]) & (z <= enc.zmid_[-1])
    np.testing.assert_array_equal(enc._from_z(z)[inside], expect[inside])
