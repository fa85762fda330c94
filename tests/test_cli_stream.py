"""`synthdata fit --stream`: the gmm fitted from a folder of Parquet files, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.test_cli import run


def _folder(tmp_path: Path, flchain: pd.DataFrame) -> Path:
    folder = tmp_path / "parts"
    folder.mkdir()
    df = flchain.sample(1200, random_state=0).reset_index(drop=True)
    df = df.drop(columns=["age"])  # no column a Safe Harbor rule (ages over 89) applies to
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 4)):
        df.iloc[rows].to_parquet(folder / f"p{i}.parquet", index=False)
    return folder


def test_fit_stream_writes_a_model_that_samples(tmp_path, capsys, flchain) -> None:
    folder = _folder(tmp_path, flchain)
    model = tmp_path / "m.sdg"
    code, out, err = run(capsys, "fit", str(folder), "-o", str(model), "--stream",
                         "--batch-rows", "300", "--passes", "3", "-p", "n_components=2",
                         "-q")
    assert code == 0, err
    assert out.strip() == str(model) and model.is_file()
    synth = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample", str(model), "-n", "40", "-o", str(synth), "-q")
    assert code == 0, err
    assert list(pd.read_csv(synth).columns) == [c for c in flchain.columns if c != "age"]


def test_fit_stream_errors_are_one_line(tmp_path, capsys, flchain, small_csv) -> None:
    folder = _folder(tmp_path, flchain)
    out = str(tmp_path / "m.sdg")
    cases = [
        (["fit", str(folder), "-o", out, "--stream", "-g", "aim"],
         "generator 'aim' cannot fit by streaming; use one of gmm, vae, ctgan, ddpm"),
        (["fit", str(folder), "-o", out, "--ray-address", "auto"], "--ray-address needs --stream"),
        (["fit", str(small_csv), "-o", out, "--stream"], "is not Parquet"),
        (["fit", str(tmp_path / "nope"), "-o", out, "--stream"], "no such file or folder"),
    ]
    for args, message in cases:
        code, _, err = run(capsys, *args)
        assert code == 2, (args, err)
        assert message in err and "Traceback" not in err
    # rules that would rewrite columns (ages over 89 top-coded) cannot run on the files
    raw = flchain.head(300)
    (tmp_path / "raw").mkdir()
    raw.to_parquet(tmp_path / "raw" / "a.parquet", index=False)
    assert raw["age"].max() > 89
    code, _, err = run(capsys, "fit", str(tmp_path / "raw"), "-o", out, "--stream",
                       "--unmarked", "transform")
    assert code == 2 and "de-identification rules apply (age: top_code_90)" in err
    assert not Path(out).exists()


def test_fit_stream_vae_writes_a_model_that_samples(tmp_path, capsys, flchain) -> None:
    folder = _folder(tmp_path, flchain)
    model = tmp_path / "vae.sdg"
    code, out, err = run(capsys, "fit", str(folder), "-o", str(model), "--stream", "-g", "vae",
                         "--batch-rows", "200", "--shuffle-batches", "2",
                         "-p", "epochs=2", "-p", "batch_size=100",
                         "-p", "compress_dims=[16]", "-p", "decompress_dims=[16]",
                         "-p", "threads=1", "-q")
    assert code == 0, err
    assert out.strip() == str(model) and model.is_file()
    synth = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample", str(model), "-n", "40", "-o", str(synth), "-q")
    assert code == 0, err
    got = pd.read_csv(synth)
    assert list(got.columns) == [c for c in flchain.columns if c != "age"] and len(got) == 40
    assert set(got["sex"]) <= {"F", "M"}


def test_fit_stream_refuses_privacy_in_one_line(tmp_path, capsys, flchain) -> None:
    folder = _folder(tmp_path, flchain)
    out = tmp_path / "m.sdg"
    code, _, err = run(capsys, "fit", str(folder), "-o", str(out), "--stream", "-g", "ctgan",
                       "-p", "privacy={epsilon: 1.0}")
    assert code == 2 and "privacy is not supported" in err and "Traceback" not in err
    assert not out.exists()
