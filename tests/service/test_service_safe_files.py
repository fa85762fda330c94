"""The service keeps real data private (0700 folders, 0600 files), refuses `gate: none`
and serves CSVs whose formula cells are neutralised."""

from __future__ import annotations

import io
import stat

import numpy as np
import pandas as pd
import pytest

from synthdata.service.settings import DEFAULT_RUNNER
from tests.service.conftest import open_api


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_uploads_database_and_folders_are_private(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=0)
    try:
        settings = api.app.state.settings
        for folder in (settings.data_dir, settings.datasets_dir, settings.jobs_dir):
            assert _mode(folder) == 0o700, folder
        db = settings.data_dir / "synthdata.db"
        assert _mode(db) == 0o600
        ds = api.upload(small_csv).json()["id"]
        folder = settings.datasets_dir / ds
        assert _mode(folder) == 0o700 and _mode(folder / "data.csv") == 0o600
        assert {_mode(p) for p in settings.data_dir.glob("synthdata.db*")} == {0o600}
    finally:
        client.__exit__(None, None, None)


def test_gate_none_is_refused_by_the_service(tmp_path, small_csv):
    client, api = open_api(tmp_path / "svc", workers=0)
    try:
        ds = api.upload(small_csv).json()["id"]
        resp = api.submit(ds, {"gate": "none"})
        assert resp.status_code == 422, resp.text
        assert "pipeline.gate: 'none' is not allowed in the service" in resp.text
    finally:
        client.__exit__(None, None, None)


@pytest.mark.slow
def test_downloaded_csv_has_neutralised_formulas(tmp_path):
    formulas = ["=HYPERLINK(\"http://x.invalid\")", "+cmd|' /C calc'!A0", "@SUM(A1)", "-1+2"]
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"note": [formulas[i % 4] for i in range(400)],
                         "delta": np.round(rng.normal(-5, 1, 400), 2)})
    path = tmp_path / "formulas.csv"
    data.to_csv(path, index=False)
    client, api = open_api(tmp_path / "svc", runner=DEFAULT_RUNNER)
    try:
        ds = api.upload(path).json()["id"]
        pipeline = {"generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
                    "evaluate": {"full": False}, "gate": {"exact_copy_excess": {"max": 0.005}}}
        job = api.wait(api.submit(ds, pipeline).json()["id"], timeout=600)
        assert job["status"] == "succeeded", job
        body = api.client.get(f"/v1/jobs/{job['id']}/synthetic", headers=api.a).content
        synth = pd.read_csv(io.BytesIO(body))
        assert set(synth["note"]) <= {"'" + f for f in formulas}
        assert (synth["delta"] < 0).all()
        run_dir = api.app.state.settings.data_dir / next(
            p for p in api.app.state.settings.jobs_dir.rglob("synthetic.csv")).relative_to(
                api.app.state.settings.data_dir).parent
        assert _mode(run_dir) == 0o700 and _mode(run_dir / "synthetic.csv") == 0o600
    finally:
        client.__exit__(None, None, None)
