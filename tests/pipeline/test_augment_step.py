"""sample.augment through the CLI: the plan, the extra rows, the measured effect, the ledger,
and every config mistake as one line and exit 2 before any training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from synthdata.augmentation import augment_plan
from synthdata.cli import main
from synthdata.pipeline import runner
from tests.conftest import DATA

DP_SCHEMA = DATA.parent / "schemas" / "flchain_dp.yaml"


@pytest.fixture()
def fl_csv(tmp_path: Path, flchain: pd.DataFrame) -> Path:
    path = tmp_path / "fl.csv"
    table = flchain.drop(columns=["futime", "chapter"]).sample(600, random_state=3)
    table.assign(age=table["age"].clip(upper=89)).to_csv(path, index=False)  # no Safe Harbor age
    return path


@pytest.fixture()
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the great-expectations suite (it reads only the synthetic table; ~6 s a run)."""
    monkeypatch.setattr(runner, "_validate", lambda *a, **k: (None, None))


def _pipeline(tmp_path: Path, csv: Path, augment: dict[str, Any], **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "data": {"path": str(csv)},
        "generator": {"kind": "gmm", "params": {"n_components": 3, "max_iter": 20}},
        "sample": {"augment": augment},
        "evaluate": {"full": False, "target": "death", "sensitive": ["sex"]},
        "output": {"dir": str(tmp_path / "out")},
        "gate": {"exact_copy_excess": {"max": 0.005}}} | extra
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    code = main(["run", str(path), "--quiet"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_augment_writes_extra_rows_for_the_smaller_group(tmp_path, capsys, fl_csv,
                                                         no_validation):
    code, out, err = _run(capsys, _pipeline(tmp_path, fl_csv,
                                            {"column": "sex", "target_share": {"M": 0.6}}))
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    synth = pd.read_csv(run_dir / "synthetic.csv")
    report = json.loads((run_dir / "report.json").read_text())
    section = report["sections"]["augmentation"]
    # the plan is the fewest rows that lift M to 60% of real + synthetic, from the exact
    # counts of the training split (70% of the table, split seed 0)
    train, _ = runner.split_frame(pd.read_csv(fl_csv), 0.3, 0)
    plan = augment_plan(train["sex"].value_counts().to_dict(), {"M": 0.6})
    assert plan["F"] == 0 and plan["M"] > 0
    assert section["rows"] == {"F": 0, "M": plan["M"]} == {"F": 0, "M": len(synth)}
    assert set(synth["sex"]) == {"M"}
    effect = section["effect"]
    assert {r["group"] for r in effect["groups"]} == {"F", "M"}
    assert 0.5 < effect["overall_real"] <= 1 and 0.5 < effect["overall_augmented"] <= 1
    assert effect["helped"] == (effect["worst_group_gain"] > 0
                                and effect["overall_change"] >= -0.005)
    steps = {e["step"]: e for e in report["sections"]["privacy"]["entries"]}
    assert steps["sample.augment"]["mechanism"] == "not_private"
    assert steps["sample.augment"]["params"]["shapes_release"] is True
    assert steps["evaluate.augmentation"]["mechanism"] == "not_private"
    html = (run_dir / "report.html").read_text()
    assert "Worst group: sex = " in html and "gap" in html


def test_dp_augment_plans_from_dp_facts_and_marks_the_measurement(tmp_path, capsys, fl_csv,
                                                                  no_validation):
    path = _pipeline(tmp_path, fl_csv, {"column": "sex", "target_share": "balanced"},
                     sample={"augment": {"column": "sex"}, "rows": 300},
                     data={"path": str(fl_csv), "schema": str(DP_SCHEMA)},
                     generator={"kind": "gmm"}, privacy={"epsilon": 3.0},
                     evaluate={"full": False, "target": "death", "sensitive": ["sex"],
                               "min_group_size": 25},
                     gate={"epsilon": {"max": 3.0}, "worst_group_shapes": {"min": 0.99}})
    code, out, err = _run(capsys, path)
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    report = json.loads((run_dir / "report.json").read_text())
    section = report["sections"]["augmentation"]
    assert section["total_rows"] == 300 and sum(section["rows"].values()) == 300
    assert "DP model" in section["counts_from"]
    label = report["sections"]["release"]["label"]
    assert section["privacy_label"] == label and report["sections"]["groups"][
        "privacy_label"] == label
    assert report["sections"]["groups"]["min_group_size"] == 25
    steps = {e["step"]: e["mechanism"] for e in report["sections"]["privacy"]["entries"]}
    assert steps["sample.augment"] == "public"          # post-processing of DP releases
    assert steps["evaluate.augmentation"] == steps["evaluate.groups"] == "not_private"
    # the group rule is computed and shown, but under DP it is advisory and does not decide
    rule = next(r for r in report["sections"]["gate"]["results"]
                if r["metric"] == "worst_group_shapes")
    assert rule["decides"] is False and "advisory" in rule
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["rows"]["synthetic"] == 300
    html = (run_dir / "report.html").read_text()
    i = html.index("Worst group: sex = ")
    assert label in html[i:i + 400]


@pytest.mark.parametrize(("augment", "extra", "message"), [
    ({"column": "race"}, {}, "sample.augment.column: 'race' is not a column"),
    ({"column": "sex", "target_share": {"X": 0.5}}, {},
     "sample.augment.target_share: condition sex='X': value not seen in training"),
    ({"column": "kappa"}, {}, "sample.augment.column: 'kappa' is continuous"),
    ({"column": "sex", "target_share": {"M": 1.5}}, {}, "each target share must be a number"),
    ({"column": "sex", "target_share": "equal"}, {}, "sample.augment"),
    ({"column": "sex"}, {"conditions": {"mgus": 1}}, "either sample.augment"),
])
def test_augment_mistakes_are_one_line_and_exit_2(tmp_path, capsys, fl_csv, monkeypatch,
                                                  augment, extra, message):
    import synthdata.models.gmm as gmm

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("fit ran")
    monkeypatch.setattr(gmm.GMMGenerator, "_fit", boom)   # refused before any training
    path = _pipeline(tmp_path, fl_csv, augment)
    if extra:
        cfg = yaml.safe_load(path.read_text())
        cfg["sample"].update(extra)
        path.write_text(yaml.safe_dump(cfg))
    code, _, err = _run(capsys, path)
    assert code == 2, err
    assert "Traceback" not in err and message in " ".join(err.split()), err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_groups_that_already_meet_the_target_stop_the_run(tmp_path, capsys, fl_csv):
    table = pd.read_csv(fl_csv)
    even = pd.concat([table[table["sex"] == s].head(250) for s in ("F", "M")])
    even.to_csv(fl_csv, index=False)
    path = _pipeline(tmp_path, fl_csv, {"column": "sex"}, split={"holdout": 0})
    code, _, err = _run(capsys, path)
    assert code == 2, err
    assert "the groups of 'sex' already meet target_share 'balanced'" in " ".join(err.split())
    assert not any((tmp_path / "out").iterdir())       # no half-written run folder
