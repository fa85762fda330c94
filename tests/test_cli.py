"""CLI behaviour: exit codes, one-paragraph errors, atomic outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from synthdata.cli import main
from tests.conftest import DATA

# the fast evaluation computes exact copies but not the default preset's other metrics
COPY_RULE = {"exact_copy_excess": {"max": 0.005}}
# flchain has ages over 89 (a Safe Harbor identifier): its shipped schema marks them
FLCHAIN_SCHEMA = DATA.parent / "schemas" / "flchain.yaml"


def write_pipeline(tmp_path: Path, data_path: Path, schema: Path | None = None, **extra) -> Path:
    """A quick pipeline; ``gate=None`` leaves the gate out (the default preset judges)."""
    data = {"path": str(data_path)} | ({"schema": str(schema)} if schema is not None else {})
    cfg = {"data": data, "generator": {"kind": "gmm",
           "params": {"n_components": 2, "max_iter": 10}},
           "evaluate": {"full": False}, "output": {"dir": str(tmp_path / "out")},
           "gate": COPY_RULE}
    for key, value in extra.items():
        cfg[key] = value
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_run_directory(tmp_path, capsys, small_csv):
    code, out, err = run(capsys, "run", str(write_pipeline(tmp_path, small_csv, FLCHAIN_SCHEMA)),
                         "--quiet")
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    names = {p.name for p in run_dir.iterdir()}
    assert {"synthetic.csv", "report.json", "report.html", "manifest.json", "schema.yaml"} <= names
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["input"]["sha256"] and manifest["seed"] == 0
    assert "fit" in manifest["timings_s"] and manifest["versions"]["pandas"]
    synth = pd.read_csv(run_dir / "synthetic.csv")
    assert len(synth) == 210 and list(synth.columns) == list(pd.read_csv(small_csv).columns)
    # nothing temporary is left behind
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def _expect_error(capsys, args, pattern, code=2):
    got, out, err = run(capsys, *args)
    assert got == code, (out, err)
    assert "Traceback" not in err
    assert pattern in " ".join(err.split()), err


def test_missing_file(tmp_path, capsys):
    _expect_error(capsys, ["run", str(write_pipeline(tmp_path, tmp_path / "nope.csv"))],
                  "data file not found")


def test_missing_pipeline(tmp_path, capsys):
    _expect_error(capsys, ["run", str(tmp_path / "nope.yaml")], "pipeline file not found")


@pytest.mark.parametrize("content,pattern", [
    (b"", "is empty"),
    (b"a,b,c\n", "has a header but no rows"),
    (b"a,b\n1,\xff\xfe\n2,3\n", "not valid utf-8"),
])
def test_bad_files(tmp_path, capsys, content, pattern):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    _expect_error(capsys, ["run", str(write_pipeline(tmp_path, path))], pattern)


def test_single_row_table(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("a,b\n1,x\n")
    _expect_error(capsys, ["run", str(write_pipeline(tmp_path, path))], "too few to split")


def test_unknown_key_and_wrong_type(tmp_path, capsys, small_csv):
    p = write_pipeline(tmp_path, small_csv, generatr={"kind": "gmm"})
    _expect_error(capsys, ["run", str(p)], "generatr: unknown key")
    p = write_pipeline(tmp_path, small_csv, split={"holdout": "lots"})
    _expect_error(capsys, ["run", str(p)], "split.holdout:")
    p = write_pipeline(tmp_path, small_csv, sample={"rows": 0})
    _expect_error(capsys, ["run", str(p)], "sample.rows:")
    p = write_pipeline(tmp_path, small_csv, sample={"rows": -3})
    _expect_error(capsys, ["run", str(p)], "sample.rows:")


def test_schema_naming_missing_column(tmp_path, capsys, small_csv):
    schema = tmp_path / "s.yaml"
    schema.write_text(yaml.safe_dump({"columns": [{"name": "ghost", "kind": "integer"}]}))
    p = write_pipeline(tmp_path, small_csv, data={"path": str(small_csv), "schema": str(schema)})
    _expect_error(capsys, ["run", str(p)], "column 'ghost' is not in the data")


def test_mixed_types_declared_numeric(tmp_path, capsys):
    path = tmp_path / "mixed.csv"
    rows = [f"{i},{'abc' if i == 7 else i}" for i in range(40)]
    path.write_text("a,b\n" + "\n".join(rows) + "\n")
    schema = tmp_path / "s.yaml"
    schema.write_text(yaml.safe_dump({"columns": [{"name": "b", "kind": "integer"}]}))
    p = write_pipeline(tmp_path, path, data={"path": str(path), "schema": str(schema)})
    _expect_error(capsys, ["run", str(p)], "column 'b' has 1 non-numeric value(s) (first: 'abc'")


def test_entirely_null_and_constant_columns_run(tmp_path, capsys, flchain):
    df = flchain.sample(200, random_state=0).copy()
    df["empty"] = None
    df["const"] = "same"
    path = tmp_path / "edge.csv"
    df.to_csv(path, index=False)
    code, out, err = run(capsys, "run", str(write_pipeline(tmp_path, path, FLCHAIN_SCHEMA)),
                         "--quiet")
    assert code == 0, err
    synth = pd.read_csv(Path(out.strip().splitlines()[-1]) / "synthetic.csv")
    assert synth["empty"].isna().all() and (synth["const"] == "same").all()


def test_unwritable_output_dir(tmp_path, capsys, small_csv):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = write_pipeline(tmp_path, small_csv, output={"dir": str(blocker / "sub")})
    _expect_error(capsys, ["run", str(p)], "is not writable")


def test_debug_shows_traceback(tmp_path, small_csv):
    from synthdata.errors import DataError

    with pytest.raises(DataError):
        main(["run", str(write_pipeline(tmp_path, tmp_path / "nope.csv")), "--debug"])


def test_schema_infer_fit_sample(tmp_path, capsys, small_csv):
    out = tmp_path / "s.yaml"
    code, stdout, err = run(capsys, "schema", "infer", str(small_csv), "-o", str(out))
    assert code == 0 and out.is_file(), err
    model = tmp_path / "m.sdg"
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(model), "-p", "n_components=2",
                       "--quiet")
    assert code == 2 and "'age' looks like age" in " ".join(err.split())  # ages over 89
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(model), "-p", "n_components=2",
                       "--schema", str(FLCHAIN_SCHEMA), "--quiet")
    assert code == 0, err
    assert "deid: age: age -> top_code_90" in err
    synth = tmp_path / "syn.csv"
    code, _, err = run(capsys, "sample", str(model), "-n", "25", "-o", str(synth), "-c", "sex=F")
    assert code == 0, err
    df = pd.read_csv(synth)
    assert len(df) == 25 and (df["sex"] == "F").all()
    _expect_error(capsys, ["sample", str(model), "-n", "0", "-o", str(tmp_path / "z.csv")],
                  "positive integer")
    assert not (tmp_path / "z.csv").exists()


def test_shipped_demo_pipeline_is_valid():
    from synthdata.pipeline.config import PipelineConfig

    root = DATA.parent
    for path in sorted((root / "pipelines").glob("*.yaml")):
        cfg = PipelineConfig.from_yaml(path)
        files = [cfg.data.path] if cfg.data.path else list(cfg.data.tables.values())
        if any("shared" in p.parts for p in files) and not files[0].is_file():
            continue  # reads ../shared/datasets, absent on a fresh clone
        assert all(p.is_file() for p in files), path


def test_gate_refusal_exits_3_and_writes_no_synthetic(tmp_path, capsys, small_csv):
    p = write_pipeline(tmp_path, small_csv, FLCHAIN_SCHEMA,
                       gate={"column_distance_mean": {"max": 0.0}})
    code, out, err = run(capsys, "run", str(p), "--quiet")
    assert code == 3, err
    run_dir = Path(out.strip().splitlines()[-1])
    names = {p.name for p in run_dir.iterdir()}
    assert "report.json" in names and not any(n.startswith("synthetic") for n in names)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["sections"]["gate"]["passed"] is False
    assert "column_distance_mean failed" in " ".join(err.split())


def test_run_without_gate_is_judged_by_the_default_preset(tmp_path, capsys, small_csv):
    # the fast evaluation does not compute the leakage metrics the default preset needs:
    # the run fails closed and says what is missing
    code, out, err = run(capsys, "run", str(write_pipeline(tmp_path, small_csv, FLCHAIN_SCHEMA, gate=None)),
                         "--quiet")
    assert code == 3, err
    text = " ".join(err.split())
    assert "mia_auc failed: metric mia_auc was not computed" in text
    assert "evaluate.full: false" in text and "PASSED" not in text
    run_dir = Path(out.strip().splitlines()[-1])
    assert not list(run_dir.glob("synthetic*"))
    gate = json.loads((run_dir / "report.json").read_text())["sections"]["gate"]
    assert gate["preset"] == "default" and gate["status"] == "failed"
    assert gate["n_failed"] == sum(not r["passed"] for r in gate["results"]) > 0


def test_gate_none_exports_as_not_judged(tmp_path, capsys, small_csv):
    code, out, err = run(capsys, "run", str(write_pipeline(tmp_path, small_csv, FLCHAIN_SCHEMA, gate="none")),
                         "--quiet")
    assert code == 0, err
    assert "NOT JUDGED" in err and "PASSED" not in err
    run_dir = Path(out.strip().splitlines()[-1])
    assert (run_dir / "synthetic.csv").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["gate"]["status"] == "not_judged" and manifest["gate"]["passed"] is None
    page = (run_dir / "report.html").read_text()
    assert "NOT JUDGED" in page and "PASSED" not in page


def test_run_folder_and_files_are_private(tmp_path, capsys, small_csv):
    code, out, err = run(capsys, "run", str(write_pipeline(tmp_path, small_csv, FLCHAIN_SCHEMA, gate="none")),
                         "--quiet")
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    assert run_dir.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700  # created by the run
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes


FORMULAS = ["=HYPERLINK(\"http://x.invalid\",\"x\")", "+cmd|' /C calc'!A0", "@SUM(A1:A9)",
            "-2+3"]


@pytest.fixture()
def formula_csv(tmp_path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    n = 240
    df = pd.DataFrame({"note": [FORMULAS[i % 4] for i in range(n)],
                       "delta": np.round(rng.normal(-5, 1, n), 2),
                       "size": rng.integers(1, 50, n)})
    path = tmp_path / "formulas.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("neutralize", [True, False])
def test_run_neutralizes_formula_cells_unless_told_not_to(tmp_path, capsys, formula_csv,
                                                          neutralize):
    p = write_pipeline(tmp_path, formula_csv, gate="none",
                       output={"dir": str(tmp_path / "out"), "neutralize_formulas": neutralize})
    code, out, err = run(capsys, "run", str(p), "--quiet")
    assert code == 0, err
    synth = pd.read_csv(Path(out.strip().splitlines()[-1]) / "synthetic.csv")
    notes = set(synth["note"])
    if neutralize:
        assert notes <= {"'" + f for f in FORMULAS} and len(notes) >= 2
    else:
        assert notes <= set(FORMULAS) and len(notes) >= 2
    assert (synth["delta"] < 0).all() and synth["delta"].dtype == float  # numbers untouched


def _fit_model(tmp_path, capsys, csv: Path, *schema: str) -> Path:
    model = tmp_path / "m.sdg"
    code, _, err = run(capsys, "fit", str(csv), "-o", str(model), "-p", "n_components=2",
                       *schema, "--quiet")
    assert code == 0, err
    return model


def test_sample_warns_not_judged_and_neutralizes(tmp_path, capsys, formula_csv):
    model = _fit_model(tmp_path, capsys, formula_csv)
    out = tmp_path / "syn.csv"
    code, stdout, err = run(capsys, "sample", str(model), "-n", "50", "-o", str(out))
    assert code == 0, err
    assert "NOT JUDGED" in err and "--gate" in err
    assert set(pd.read_csv(out)["note"]) <= {"'" + f for f in FORMULAS}
    assert out.stat().st_mode & 0o777 == 0o600
    raw = tmp_path / "raw.csv"
    code, _, err = run(capsys, "sample", str(model), "-n", "50", "-o", str(raw), "--keep-formulas")
    assert code == 0 and set(pd.read_csv(raw)["note"]) <= set(FORMULAS)


def test_sample_with_gate_needs_real_data_and_judges(tmp_path, capsys, flchain):
    train = tmp_path / "train.csv"
    hold = tmp_path / "hold.csv"
    rows = flchain.sample(1500, random_state=0)
    rows.iloc[:1000].to_csv(train, index=False)
    rows.iloc[1000:].to_csv(hold, index=False)
    model = _fit_model(tmp_path, capsys, train, "--schema", str(FLCHAIN_SCHEMA))
    out = tmp_path / "syn.csv"
    _expect_error(capsys, ["sample", str(model), "-n", "50", "-o", str(out), "--gate", "default"],
                  "--gate needs --real TRAIN.csv")
    _expect_error(capsys, ["sample", str(model), "-n", "50", "-o", str(out), "--gate", "strictest",
                           "--real", str(train)], "unknown gate preset 'strictest'")
    assert not out.exists()
    # a gate no data can pass: refused, report written, nothing exported
    rules = tmp_path / "rules.yaml"
    rules.write_text("column_distance_mean: {max: 0}\n")
    code, _, err = run(capsys, "sample", str(model), "-n", "300", "-o", str(out), "--gate",
                       str(rules), "--real", str(train), "--holdout", str(hold), "--quiet")
    assert code == 3, err
    assert "column_distance_mean failed" in err and not out.exists()
    report = json.loads((tmp_path / "syn-report" / "report.json").read_text())
    assert report["sections"]["gate"]["status"] == "failed"
    code, _, err = run(capsys, "sample", str(model), "-n", "1000", "-o", str(out), "--gate",
                       "default", "--real", str(train), "--holdout", str(hold), "--quiet")
    assert code == 0, err
    assert "gate PASSED" in err and out.is_file() and "NOT JUDGED" not in err


def test_evaluate_with_gate_refuses_a_copy(tmp_path, capsys, flchain):
    train, hold, other = (tmp_path / f"{n}.csv" for n in ("train", "hold", "other"))
    flchain.iloc[:500].to_csv(train, index=False)
    flchain.iloc[500:800].to_csv(hold, index=False)
    flchain.iloc[800:1300].to_csv(other, index=False)
    code, out, err = run(capsys, "evaluate", str(train), str(train), "--holdout", str(hold),
                         "--gate", "default", "-o", str(tmp_path / "copy"), "--quiet")
    assert code == 3, err
    text = " ".join(err.split())
    assert "exact_copy_excess failed" in text and "gate FAILED" in text
    gate = json.loads((tmp_path / "copy" / "report.json").read_text())["sections"]["gate"]
    assert gate["status"] == "failed" and gate["preset"] == "default"
    assert "FAILED" in (tmp_path / "copy" / "report.html").read_text()
    # an independent real sample is what good synthetic data looks like: it passes
    code, out, err = run(capsys, "evaluate", str(train), str(other), "--holdout", str(hold),
                         "--gate", "default", "-o", str(tmp_path / "other"), "--quiet")
    assert code == 0, err
    # no gate: a report, not a verdict
    code, out, err = run(capsys, "evaluate", str(train), str(other), "--holdout", str(hold),
                         "-o", str(tmp_path / "plain"), "--quiet")
    assert code == 0 and "NOT JUDGED" in err
    assert "NOT JUDGED" in (tmp_path / "plain" / "report.html").read_text()
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o700


# -- issue 19 inputs: chunked sample, negative seeds, damaged archives, odd tables ----------
def test_sample_streams_chunks_reproducibly(tmp_path, capsys, small_csv):
    model = tmp_path / "m.sdg"
    code, _, err = run(capsys, "fit", str(small_csv), "-o", str(model), "-p", "n_components=2",
                       "--schema", str(FLCHAIN_SCHEMA), "--quiet")
    assert code == 0, err
    outs = []
    for name in ("a.parquet", "b.parquet"):
        code, _, err = run(capsys, "sample", str(model), "-n", "2500", "-o", str(tmp_path / name),
                           "--chunk-rows", "1000", "--seed", "5", "-c", "sex=F")
        assert code == 0, err
        outs.append(pd.read_parquet(tmp_path / name))
    assert len(outs[0]) == 2500 and (outs[0]["sex"] == "F").all()
    pd.testing.assert_frame_equal(outs[0], outs[1])
    code, _, err = run(capsys, "sample", str(model), "-n", "5", "-o", str(tmp_path / "n.csv"),
                       "--seed", "-1")
    assert code == 2 and "--seed" in err and not (tmp_path / "n.csv").exists()
    damaged = tmp_path / "damaged.sdg"
    damaged.write_bytes(model.read_bytes()[:-200])
    code, _, err = run(capsys, "sample", str(damaged), "-n", "5", "-o", str(tmp_path / "d.csv"))
    assert code == 2 and "not a valid synthdata model archive" in " ".join(err.split())
    assert "Traceback" not in err


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"v": [1.0, float("inf")] * 20, "g": ["a", "b"] * 20}),
     "column 'v' has 20 infinite value(s)"),
    (pd.DataFrame({"v": [1.0, 1e308] * 20, "g": ["a", "b"] * 20}), "beyond ±1e+100"),
    (pd.DataFrame({"user_ref": [f"u{i:04d}" for i in range(40)]}),
     "no column a generator can learn"),
])
def test_run_refuses_unlearnable_tables_with_exit_2(tmp_path, capsys, frame, message):
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    pipeline = write_pipeline(tmp_path, data, gate="none", deid={"unmarked": "transform"})
    code, _, err = run(capsys, "run", str(pipeline), "-q")
    assert code == 2 and message in " ".join(err.split()), err
    assert not list((tmp_path / "out").glob("*run-*")) if (tmp_path / "out").exists() else True


def test_run_refuses_duplicate_column_names(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,b,a\n" + "".join(f"{i},{i % 3},{i * 2}\n" for i in range(40)))
    code, _, err = run(capsys, "run", str(write_pipeline(tmp_path, data, gate="none")), "-q")
    assert code == 2 and "['a'] occur more than once" in err


def test_evaluate_refuses_a_synthetic_table_with_infinities(tmp_path, capsys):
    real, synth = tmp_path / "r.csv", tmp_path / "s.csv"
    frame = pd.DataFrame({"v": [float(i) for i in range(40)], "g": ["a", "b"] * 20})
    frame.to_csv(real, index=False)
    frame.assign(v=[float("-inf")] + list(range(1, 40))).to_csv(synth, index=False)
    code, _, err = run(capsys, "evaluate", str(real), str(synth), "-o", str(tmp_path / "rep"))
    assert code == 2 and "s.csv: column 'v' has 1 infinite value(s)" in " ".join(err.split())


def test_schema_infer_dp_writes_a_reviewable_draft_a_dp_run_accepts(tmp_path, capsys, small_csv):
    from synthdata.schema.public import declared_schema

    out = tmp_path / "dp.yaml"
    code, stdout, err = run(capsys, "schema", "infer", str(small_csv), "-o", str(out), "--dp")
    assert code == 0, err
    text = out.read_text()
    assert text.startswith("# DRAFT") and "READ FROM THE DATA" in text
    assert "review every value as public knowledge" in " ".join(err.split())
    data = yaml.safe_load(text)
    by_name = {e["name"]: e for e in data["columns"]}
    assert by_name["creatinine"]["precision"] == 1 and by_name["kappa"]["min"] == 0
    assert "max" not in by_name["kappa"]  # learned ranges are left to DP
    columns = list(pd.read_csv(small_csv).columns)
    assert [c.name for c in declared_schema(data, columns, name="t").columns] == columns


def test_dp_run_with_a_deep_generator_warns_and_points_to_gmm():
    from synthdata.cli import dp_generator_warning

    assert dp_generator_warning("gmm", True) is None
    assert dp_generator_warning("aim", True) is None
    assert dp_generator_warning("vae", False) is None
    line = dp_generator_warning("ctgan", True)
    assert line is not None and "0.57" in line and "generator: aim" in line and "gmm" in line
    assert "0.65" in (dp_generator_warning("ddpm", True) or "")


def test_run_prints_the_deep_generator_warning_before_the_run(tmp_path, capsys):
    # the data file is missing, so the run stops at once: the warning came before it
    path = write_pipeline(tmp_path, tmp_path / "nope.csv", generator={"kind": "vae"},
                          privacy={"epsilon": 3})
    code, _, err = run(capsys, "run", str(path), "--quiet")
    assert code == 2
    assert "warning: generator 'vae' under privacy is near chance" in err


def test_dp_run_prints_the_report_warnings(tmp_path, capsys, small_csv):
    # 300 rows at ε = 0.2: no bucket of a numeric column's range histogram clears the noise
    data = {"path": str(small_csv), "schema": str(DATA.parent / "schemas" / "flchain_dp.yaml"),
            "drop": ["chapter", "futime"]}
    pipe = write_pipeline(tmp_path, small_csv, data=data, deid={"types": {"age": "age"}},
                          privacy={"epsilon": 0.2}, gate={"epsilon": {"max": 0.2}})
    code, stdout, err = run(capsys, "run", str(pipe))
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert any("no range could be estimated for" in line and "carry no information" in line
               for line in lines), err
    report = json.loads((Path(stdout.strip().splitlines()[-1]) / "report.json").read_text())
    assert [f"warning: {t}" for t in report["summary"]["warnings"]] == lines
