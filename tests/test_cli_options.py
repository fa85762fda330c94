"""CLI options of the typed API work: --version, -g choices, -v losses, progress when
piped, and options checked before any work (exit 2, one line)."""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[1]
FLCHAIN_SCHEMA = DATA.parent / "schemas" / "flchain.yaml"


@pytest.fixture()
def restore_logging():
    logger = logging.getLogger("synthdata")
    models = logging.getLogger("synthdata.models")
    saved = (logger.level, list(logger.handlers), models.level)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    models.setLevel(saved[2])
    import synthdata.cli as cli

    cli._log_handler = None


@pytest.fixture()
def model(tmp_path, small_csv, capsys) -> Path:
    path = tmp_path / "m.sdg"
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(path), "--schema",
                       str(FLCHAIN_SCHEMA), "-p", "n_components=2", "-p", "max_iter=10", "-q")
    assert code == 0, err
    return path


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"synthdata {metadata.version('synthdata')}"


def test_generator_choices_in_help_and_refused(capsys, small_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option: the choices are not wrapped
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0 and "[aim|ar|ctgan|ddpm|gmm|vae]" in out
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(tmp_path / "m.sdg"), "-g", "gan")
    assert code == 2
    assert "unknown generator 'gan'; choose one of ['aim', 'ar', 'ctgan', 'ddpm', 'gmm', 'vae']" in err
    assert not (tmp_path / "m.sdg").exists()


def test_registered_generators_are_accepted(capsys, small_csv, tmp_path, monkeypatch):
    from synthdata.models import registry

    monkeypatch.setitem(registry._GENERATORS, "gmm2", "synthdata.models.gmm:GMMGenerator")
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(tmp_path / "m.sdg"), "-g", "gmm2",
                       "--schema", str(FLCHAIN_SCHEMA), "-p", "n_components=2", "-q")
    assert code == 0, err


def test_unknown_param_fails_before_the_data_is_read(capsys, tmp_path):
    missing = tmp_path / "absent.csv"  # never read: the parameter is checked first
    code, _, err = run(capsys, "fit", str(missing), "-o", str(tmp_path / "m.sdg"),
                       "-p", "epochs=3")
    assert code == 2
    assert "--param: generator 'gmm': unknown parameter(s) ['epochs']" in err


def test_bad_param_value_fails_before_training(capsys, small_csv, tmp_path, monkeypatch):
    from synthdata.models.base import BaseGenerator

    monkeypatch.setattr(BaseGenerator, "_fit", lambda *a: pytest.fail("training started"))
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(tmp_path / "m.sdg"), "--schema",
                       str(FLCHAIN_SCHEMA), "-p", "max_iter=-1")
    assert code == 2 and "gmm: parameter max_iter must be a positive number, got -1" in err


def test_piped_fit_prints_plain_progress(capsys, small_csv, tmp_path):
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(tmp_path / "m.sdg"), "--schema",
                       str(FLCHAIN_SCHEMA), "-p", "n_components=2", "-p", "max_iter=10")
    assert code == 0, err
    gmm = [line for line in err.splitlines() if line.startswith("[gmm.fit]")]
    assert gmm and gmm[-1].endswith("done") and "(100%)" in gmm[-1]
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(tmp_path / "m2.sdg"), "--schema",
                       str(FLCHAIN_SCHEMA), "-p", "n_components=2", "-p", "max_iter=10", "-q")
    assert code == 0 and "[gmm.fit]" not in err


def test_piped_subprocess_progress_goes_to_stderr(small_csv, tmp_path):
    """The real thing: stdout and stderr are pipes, not a terminal."""
    out = subprocess.run([sys.executable, "-m", "synthdata.cli", "fit", str(small_csv), "-o",
                          str(tmp_path / "m.sdg"), "--schema", str(FLCHAIN_SCHEMA),
                          "-p", "n_components=2", "-p", "max_iter=10"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "m.sdg")  # stdout: only the result
    assert "[gmm.fit]" in out.stderr and "elapsed" in out.stderr


def test_verbose_shows_loss_per_epoch(capsys, small_csv, tmp_path, restore_logging):
    pytest.importorskip("torch")
    code, _, err = run(capsys, "-v", "fit", str(small_csv), "-o", str(tmp_path / "v.sdg"),
                       "--schema", str(FLCHAIN_SCHEMA), "-g", "vae", "-p", "epochs=2",
                       "-p", "batch_size=100", "-q")
    assert code == 0, err
    assert "synthdata.models.vae: vae epoch 1/2 recon" in err
    assert "vae epoch 2/2" in err


def test_sample_checks_options_before_sampling(capsys, model, tmp_path):
    code, _, err = run(capsys, "sample", str(model), "-n", "10", "-o", str(tmp_path / "s.xlsx"))
    assert code == 2
    assert "--output" in err and "unknown file type '.xlsx'; use one of ['.csv', '.parquet'," in err
    code, _, err = run(capsys, "sample", str(model), "-n", "0", "-o", str(tmp_path / "s.csv"))
    assert code == 2 and "--rows must be a positive integer (rows to generate), got 0" in err
    code, _, err = run(capsys, "sample", str(model), "-n", "10", "-o", str(tmp_path / "s.csv"),
                       "-c", "nope=1")
    assert code == 2 and "--condition: condition on unknown column 'nope'" in err
    assert not (tmp_path / "s.csv").exists()


def test_sample_with_a_range_condition(capsys, model, tmp_path):
    out = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample", str(model), "-n", "80", "-o", str(out),
                       "-c", "age={min: 60, max: 75}", "-c", "sex=F")
    assert code == 0, err
    synth = pd.read_csv(out)
    assert len(synth) == 80 and synth["age"].between(60, 75).all() and (synth["sex"] == "F").all()
