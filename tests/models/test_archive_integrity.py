"""Damaged, truncated or edited model archives are refused with a DataError that says why."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import DataError


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.choice(["x", "y", "z"], 60)})
    gen = sd.make_generator("gmm", sd.Schema.infer(df), n_components=2, max_iter=3).fit(df)
    return gen.save(tmp_path_factory.mktemp("m") / "m.sdg")


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = change(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)
    return dst


def test_a_saved_archive_lists_every_member_checksum_and_loads(archive):
    with zipfile.ZipFile(archive) as zf:
        sums = json.loads(zf.read("checksums.json"))
        assert set(sums) == set(zf.namelist()) - {"checksums.json"}
    assert len(sd.load_generator(archive).sample(5, seed=0)) == 5


def test_truncated_archive(archive, tmp_path):
    cut = tmp_path / "cut.sdg"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="not a valid synthdata model archive.*truncated or damaged"):
        sd.load_generator(cut)


def test_garbage_file(tmp_path):
    bad = tmp_path / "x.sdg"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not a valid synthdata model archive"):
        sd.load_generator(bad)


def test_edited_json_member(archive, tmp_path):
    def edit(name, data):
        if name == "transformer.json":
            return data.replace(b'"', b"'", 1)  # one changed byte
        return data

    with pytest.raises(DataError, match=r"member transformer.json was modified after saving"):
        sd.load_generator(_rewrite(archive, tmp_path / "e.sdg", edit))


def test_tampered_arrays(archive, tmp_path):
    def edit(name, data):
        if name != "arrays.npz":
            return data
        with np.load(io.BytesIO(data)) as npz:
            arrays = {k: npz[k] for k in npz.files}
        key = min(arrays)
        arrays[key] = arrays[key] * 2
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    with pytest.raises(DataError, match=r"member arrays.npz was modified"):
        sd.load_generator(_rewrite(archive, tmp_path / "t.sdg", edit))


def test_removed_checksums_and_removed_member(archive, tmp_path):
    no_sums = _rewrite(archive, tmp_path / "n.sdg",
                       lambda name, data: None if name == "checksums.json" else data)
    with pytest.raises(DataError, match="has no checksums.json"):
        sd.load_generator(no_sums)
    no_member = _rewrite(archive, tmp_path / "m.sdg",
                         lambda name, data: None if name == "ledger.json" else data)
    with pytest.raises(DataError, match=r"members changed after saving.*missing \['ledger.json'\]"):
        sd.load_generator(no_member)
