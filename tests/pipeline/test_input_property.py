"""Property: whatever table a user brings, a run ends in exit 0 or exit 2, never a traceback,
and never leaves a partial run folder.

Random tables mix odd dtypes (floats with inf/-inf/1e308, huge and 64-bit-edge integers,
booleans, unicode text, dates, bytes), empty/constant/all-null/duplicate columns, nested
Parquet types (list, struct, map) and unicode column names; each is written as CSV or Parquet
and run through ``synthdata run`` (in process: ``synthdata.cli.main``, which turns our errors into
exit 2 and lets any other exception through) with the fast GMM, tiny
iterations and ``evaluate.full: false``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from synthdata.cli import main

KINDS = ("float", "float_inf", "float_huge", "int", "int_edge", "bigint_text", "bool",
         "category", "unicode", "constant", "all_null", "empty_text", "date", "float_nan",
         "bytes", "list", "struct", "map", "duplicate")
NAMES = st.one_of(st.sampled_from(["a", "age", "value", "zip", "code", "id", "Größe", "名前",
                                   "col with space", "x.1", "ö"]),
                  st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                          min_size=1, max_size=6))


def _column(kind: str, n: int, rng: np.random.Generator) -> pa.Array:
    if kind == "float":
        return pa.array(rng.normal(50, 10, n))
    if kind == "float_inf":
        v = rng.normal(size=n)
        v[rng.integers(0, n, 2)] = [np.inf, -np.inf]
        return pa.array(v)
    if kind == "float_huge":
        v = rng.normal(size=n)
        v[0] = 1e308
        return pa.array(v)
    if kind == "float_nan":
        v = rng.normal(size=n)
        v[rng.random(n) < 0.3] = np.nan
        return pa.array(v, from_pandas=True)
    if kind == "int":
        return pa.array(rng.integers(0, 100, n))
    if kind == "int_edge":
        return pa.array(np.iinfo(np.int64).max - rng.integers(0, 1000, n))
    if kind == "bigint_text":
        return pa.array([str(10**25 + int(i)) for i in rng.integers(0, 5, n)])
    if kind == "bool":
        return pa.array(rng.random(n) < 0.4)
    if kind == "category":
        return pa.array(rng.choice(["=SUM(A1)", "b", "+c", "d"], n).tolist())
    if kind == "unicode":
        return pa.array(rng.choice(["é", "名前", "🙂", "ß x", ""], n).tolist())
    if kind == "constant":
        return pa.array([7.0] * n)
    if kind == "all_null":
        return pa.array([None] * n, type=pa.float64())
    if kind == "empty_text":
        return pa.array([""] * n)
    if kind == "date":
        days = rng.integers(0, 3000, n)
        return pa.array([str(np.datetime64("2015-01-01") + int(d)) for d in days])
    if kind == "bytes":
        return pa.array([bytes([int(b)]) for b in rng.integers(0, 255, n)])
    if kind == "list":
        return pa.array([[int(x), 1] for x in rng.integers(0, 5, n)])
    if kind == "struct":
        return pa.array([{"k": int(x), "v": "a"} for x in rng.integers(0, 5, n)])
    if kind == "map":
        return pa.array([[("k", int(x))] for x in rng.integers(0, 5, n)],
                        type=pa.map_(pa.string(), pa.int64()))
    raise AssertionError(kind)


@st.composite
def tables(draw):
    n = draw(st.integers(8, 40))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    names = draw(st.lists(NAMES, min_size=len(kinds), max_size=len(kinds)))
    seed = draw(st.integers(0, 2**16))
    fmt = draw(st.sampled_from(["csv", "parquet"]))
    return n, kinds, names, seed, fmt


def _write(folder: Path, n: int, kinds: list[str], names: list[str], seed: int,
           fmt: str) -> Path:
    rng = np.random.default_rng(seed)
    arrays, cols = [], []
    for kind, name in zip(kinds, names):
        if kind == "duplicate" and cols:
            arrays.append(arrays[-1])
            cols.append(cols[-1])
            continue
        arrays.append(_column("float" if kind == "duplicate" else kind, n, rng))
        cols.append(name)
    table = pa.Table.from_arrays(arrays, names=cols)
    if fmt == "parquet":
        path = folder / "data.parquet"
        pq.write_table(table, path)
        return path
    path = folder / "data.csv"
    flat = [a if not (pa.types.is_nested(a.type) or pa.types.is_binary(a.type))
            else pa.array([str(v) for v in a.to_pylist()]) for a in arrays]
    import pyarrow.csv as pcsv

    pcsv.write_csv(pa.Table.from_arrays(flat, names=cols), path)
    return path


def _run_cli(case) -> tuple[int, str, Path]:
    folder = Path(tempfile.mkdtemp(prefix="sd-prop-"))
    data = _write(folder, *case)
    pipeline = folder / "p.yaml"
    pipeline.write_text(yaml.safe_dump({
        "seed": case[3] % 7, "data": {"path": data.name},
        "split": {"holdout": 0.25},
        "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 3}},
        "evaluate": {"full": False}, "gate": "none", "deid": {"unmarked": "transform"},
        "output": {"dir": "out"}}, allow_unicode=True))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", str(pipeline), "-q"])  # any exception but ours propagates
    return code, out.getvalue() + err.getvalue(), folder


def _check(case) -> None:
    code, output, folder = _run_cli(case)
    try:
        assert code in (0, 2), f"exit {code} for {case}:\n{output}"
        event(f"exit {code}")
        assert "Traceback" not in output
        out = folder / "out"
        leftovers = [p.name for p in out.iterdir()] if out.exists() else []
        assert not [p for p in leftovers if p.startswith(".run-")], leftovers  # no temp folder
        runs = [p for p in leftovers if p.startswith("run-")]
        if code == 2:
            assert runs == [], f"a failed run left {runs}"
            assert "error:" in output
        else:
            assert len(runs) == 1
            written = {p.name for p in (out / runs[0]).iterdir()}
            assert {"report.html", "report.json", "manifest.json", "synthetic.csv"} <= written
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_SETTINGS = {"deadline": None, "derandomize": True, "database": None,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@settings(max_examples=int(os.environ.get("SYNTHDATA_PROPERTY_EXAMPLES", "100")), **_SETTINGS)
@given(case=tables())
def test_any_table_exits_0_or_2_without_partial_output(case):
    _check(case)


@pytest.mark.slow
@settings(max_examples=300, **_SETTINGS)
@given(case=tables())
def test_any_table_exits_0_or_2_many_examples(case):
    _check(case)


@pytest.mark.parametrize("kind, message", [
    ("float_inf", "infinite value(s)"), ("float_huge", "beyond ±1e+100"),
    ("list", "nested values"), ("struct", "nested values"), ("map", "nested values"),
    ("bytes", "bytes values"),
])
def test_each_refused_shape_names_the_column(kind, message):
    code, output, folder = _run_cli((20, ["float", kind], ["ok", "bad_col"], 1, "parquet"))
    shutil.rmtree(folder, ignore_errors=True)
    assert code == 2 and message in output and "'bad_col'" in output, output
