"""Chunked sampling and export: bounded memory, reproducible from the seed, checks per chunk."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthdata.pipeline.runner import run_pipeline
from synthdata.pipeline.stream import chunk_seed, chunk_sizes


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"patient_id": np.arange(1, n + 1), "age": rng.normal(60, 8, n).round(1),
                       "note": rng.choice(["=cmd|'/c calc'!A0", "ok", "+1"], n),
                       "grp": rng.choice(["a", "b", "c"], n)})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    (tmp_path / "s.yaml").write_text("columns:\n  - {name: patient_id, kind: id, pii: none}\n")
    return path


def _cfg(data, out, *, rows, chunk, fmt="csv", gate="none", seed=3):
    return {"seed": seed, "data": {"path": str(data), "schema": str(data.parent / "s.yaml")},
            "split": {"holdout": 0.2},
            "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 5}},
            "sample": {"rows": rows, "chunk_rows": chunk}, "evaluate": {"full": False},
            "deid": {"enabled": False}, "gate": gate, "output": {"dir": str(out), "format": fmt}}


def _read(path):
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def test_chunk_plan_and_seeds():
    assert chunk_sizes(2500, 1000) == [1000, 1000, 500]
    assert chunk_sizes(2000, 1000) == [1000, 1000]
    assert chunk_seed(7, 0) == 7  # a one-chunk table is drawn as before chunking
    seeds = {chunk_seed(7, i) for i in range(1, 50)} | {chunk_seed(8, i) for i in range(1, 50)}
    assert len(seeds) == 98 and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_streamed_export_is_complete_reproducible_and_neutralised(data, tmp_path, fmt):
    first = run_pipeline(_cfg(data, tmp_path / "a", rows=2500, chunk=1000, fmt=fmt))
    again = run_pipeline(_cfg(data, tmp_path / "b", rows=2500, chunk=1000, fmt=fmt))
    df, df2 = _read(first.synthetic_path), _read(again.synthetic_path)
    assert len(df) == 2500
    pd.testing.assert_frame_equal(df, df2)  # same seed + chunk_rows: the same rows
    assert df["patient_id"].tolist() == list(range(1, 2501))  # ids continue across chunks
    if fmt == "csv":  # every chunk's formula cells are neutralised
        assert not df["note"].str.match(r"^[=+\-@]").any()
        assert df["note"].iloc[1000:].str.startswith("'").any()
    assert not list(first.run_dir.glob(".*partial*"))
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert manifest["rows"]["synthetic"] == 2500
    report = json.loads((first.run_dir / "report.json").read_text())
    assert report["sections"]["sample"]["evaluated_rows"] == 1000
    other = run_pipeline(_cfg(data, tmp_path / "c", rows=2500, chunk=1000, fmt=fmt, seed=4))
    assert not _read(other.synthetic_path)["age"].equals(df["age"])


def test_one_chunk_is_the_unchunked_sample(data, tmp_path):
    small = run_pipeline(_cfg(data, tmp_path / "a", rows=800, chunk=1000))
    big_chunk = run_pipeline(_cfg(data, tmp_path / "b", rows=800, chunk=100_000))
    pd.testing.assert_frame_equal(_read(small.synthetic_path), _read(big_chunk.synthetic_path))


def test_a_refused_stream_leaves_no_rows(data, tmp_path):
    gate = {"shapes": {"min": 1.01}}  # impossible: the gate must refuse
    result = run_pipeline(_cfg(data, tmp_path / "a", rows=2500, chunk=1000, gate=gate))
    assert not result.passed and result.synthetic_path is None
    assert not [p.name for p in result.run_dir.iterdir() if "synthetic" in p.name]
