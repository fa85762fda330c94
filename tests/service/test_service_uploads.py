"""Upload validation: type, size, encoding, column count, with clear 4xx messages."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.service.conftest import open_api


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """An app with small limits (64 KiB, 12 columns) and no job workers."""
    client, api = open_api(tmp_path_factory.mktemp("uploads"), max_upload_mb=1 / 16,
                           max_columns=12, workers=0)
    try:
        yield api
    finally:
        client.__exit__(None, None, None)


def _leftovers(api) -> list[str]:
    return sorted(p.name for p in api.app.state.settings.datasets_dir.iterdir())


@pytest.mark.parametrize("name, content, status, message", [
    ("data.xlsx", b"a,b\n1,2\n", 415, "unsupported file type '.xlsx'"),
    ("data.parquet", b"a,b\n1,2\n", 415, "not a Parquet file"),
    ("data.csv", b"PAR1\x00\x00", 415, "content is a Parquet file"),
    ("data.csv", "name,city\nJosé,Málaga\n".encode("latin-1"), 422, "not valid UTF-8"),
    ("data.csv", b"a,b\n1,\x002\n", 415, "binary content"),
    ("data.csv", b"", 422, "the file is empty"),
    ("data.csv", b"a,b\n", 422, "no rows"),
    ("data.csv", (",".join(f"c{i}" for i in range(13)) + "\n" + ",".join("1" * 13) + "\n").encode(),
     422, "13 columns is more than the limit of 12"),
])
def test_bad_uploads_are_refused_clearly(up, name, content, status, message):
    before = _leftovers(up)
    resp = up.upload(None, name=name, content=content)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["detail"]
    assert name in resp.json()["detail"] or status == 413 or not name
    assert "/" not in resp.json()["detail"].replace("multipart/form-data", "")  # no server paths
    assert _leftovers(up) == before


def test_too_large_is_413_and_nothing_is_kept(up):
    before = _leftovers(up)
    big = b"a,b\n" + b"1,2\n" * 20_000  # 80 KB > 64 KiB
    resp = up.upload(None, name="big.csv", content=big)
    assert resp.status_code == 413 and "upload limit" in resp.json()["detail"]
    assert _leftovers(up) == before


def test_not_multipart_or_no_file_field(up):
    resp = up.client.post("/v1/datasets", headers=up.a, json={"file": "a,b"})
    assert resp.status_code == 415 and "multipart/form-data" in resp.json()["detail"]
    resp = up.client.post("/v1/datasets", headers=up.a, files={"other": ("x.csv", b"a\n1\n")})
    assert resp.status_code == 422 and "'file'" in resp.json()["detail"]


def test_parquet_and_bom_csv_are_accepted(up):
    buf = io.BytesIO()
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]}).to_parquet(buf, index=False)
    resp = up.upload(None, name="t.parquet", content=buf.getvalue())
    assert resp.status_code == 201, resp.text
    assert resp.json()["format"] == "parquet" and resp.json()["n_rows"] == 3
    resp = up.upload(None, name="../../etc/bom.csv", content="\ufeffx,y\n1,a\n2,b\n".encode())
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["columns"] == ["x", "y"] and body["name"] == "bom.csv"
    stored = up.app.state.settings.datasets_dir / body["id"]
    assert [p.name for p in stored.iterdir()] == ["data.csv"]
