"""Per-dataset privacy budgets in pipeline runs and the ``synthdata budget`` commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from synthdata.cli import main
from synthdata.errors import PrivacyBudgetError
from synthdata.pipeline import runner
from synthdata.privacy.budget import MAX_DEFAULT_DELTA, BudgetStore

DP_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "flchain_dp.yaml"


@pytest.fixture()
def small_csv(tmp_path, flchain) -> Path:
    path = tmp_path / "data" / "small.csv"
    path.parent.mkdir()
    flchain.sample(300, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def no_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the great-expectations suite (reads only the synthetic table; seconds a run)."""
    monkeypatch.setattr(runner, "_validate", lambda *a, **k: (None, None))


def write_pipeline(tmp_path: Path, data: Path, privacy: dict | None, name: str = "p") -> Path:
    cfg = {"data": {"path": str(data), "drop": ["chapter", "futime"]},
           "generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 5}},
           "evaluate": {"full": False}, "split": {"holdout": 0.2},
           "output": {"dir": str(tmp_path / "out")}}
    if privacy is not None:  # a DP run infers nothing: the declared schema
        cfg["privacy"] = privacy
        cfg["data"]["schema"] = str(DP_SCHEMA)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``main(args)``; a finished run whose gate refused export (3) counts as 0 here: the
    budget is about the run, not the gate's verdict."""
    code = main(list(args))
    code = 0 if code == 3 else code
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


def report_of(out: str) -> dict:
    return json.loads((Path(out.strip().splitlines()[-1]) / "report.json").read_text())


def test_runs_on_the_same_data_add_up_and_the_overrun_is_refused(tmp_path, capsys, small_csv):
    budget = {"file": "budget.json", "total_epsilon": 2.5, "total_delta": 1e-4}
    pipe = write_pipeline(tmp_path, small_csv, {"epsilon": 1.0, "budget": budget})
    code, out, err = run(capsys, "run", str(pipe), "--quiet")
    assert code == 0, err
    path = tmp_path / "budget.json"  # relative to the YAML's folder
    store = BudgetStore(path)
    (status,) = store.datasets()
    report = report_of(out)
    spent = report["sections"]["privacy"]["spent"]
    spent_eps, spent_delta = spent["epsilon"], spent["delta"]
    (first,) = status.runs
    assert first["status"] == "committed" and first["generator"] == "gmm"
    assert first["epsilon"] == pytest.approx(spent_eps) and 0 < spent_eps <= 1.0
    assert first["delta"] == pytest.approx(spent_delta)
    assert first["reserved_delta"] == MAX_DEFAULT_DELTA  # δ derived from n: reserve the most
    section = report["sections"]["budget"]
    assert section["tracked"] and section["earlier_runs"] == 0
    assert section["this_run_epsilon"] == pytest.approx(spent_eps)
    assert section["remaining_epsilon"] == pytest.approx(2.5 - spent_eps)
    assert "sha256" not in json.dumps(section) and status.dataset_key not in json.dumps(section)

    code, out, err = run(capsys, "run", str(pipe), "--quiet")
    assert code == 0, err
    assert report_of(out)["sections"]["budget"]["earlier_epsilon"] == pytest.approx(spent_eps)
    runs_dir = sorted((tmp_path / "out").iterdir())

    code, out, err = run(capsys, "run", str(pipe), "--quiet")  # 3 × 1.0 > 2.5
    assert code == 2 and "Traceback" not in err
    assert "privacy budget of dataset small.csv" in err and "exceeded" in err
    # the declared schema leaves a little of each run's ε unspent: what is spent is the sum
    need = re.search(r"ε: this run needs 1, ([\d.]+) of the declared total 2\.5 is spent, "
                     r"([\d.]+) remains", err)
    assert need and float(need.group(1)) == pytest.approx(2 * spent_eps, abs=0.01)
    assert float(need.group(2)) == pytest.approx(2.5 - 2 * spent_eps, abs=0.01)
    assert "lower privacy.epsilon" in err
    assert sorted((tmp_path / "out").iterdir()) == runs_dir  # refused before any output
    assert len(store.datasets()[0].runs) == 2

    # a smaller ε that fits still runs
    small = write_pipeline(tmp_path, small_csv, {"epsilon": 0.3, "budget": budget}, "q")
    code, out, err = run(capsys, "run", str(small), "--quiet")
    assert code == 0, err
    assert len(store.datasets()[0].runs) == 3


def test_budget_file_option_and_failed_run_releases(tmp_path, capsys, small_csv):
    pipe = write_pipeline(tmp_path, small_csv, {"epsilon": 1.0})
    file = tmp_path / "elsewhere" / "b.json"
    code, out, err = run(capsys, "run", str(pipe), "--quiet", "--budget-file", str(file))
    assert code == 2 and "has no total for this dataset (small.csv)" in err
    BudgetStore(file).declare(_key(small_csv), total_epsilon=3, total_delta=1e-4)
    # a run that fails before any DP step (unknown column to drop) gives its reservation back
    bad = yaml.safe_load(pipe.read_text())
    bad["data"]["drop"] = ["no_such_column"]
    bad_pipe = tmp_path / "bad.yaml"
    bad_pipe.write_text(yaml.safe_dump(bad))
    code, out, err = run(capsys, "run", str(bad_pipe), "--quiet", "--budget-file", str(file))
    assert code == 2 and "no_such_column" in err
    assert BudgetStore(file).status(_key(small_csv)).runs == ()
    code, out, err = run(capsys, "run", str(pipe), "--quiet", "--budget-file", str(file))
    assert code == 0, err
    assert len(BudgetStore(file).status(_key(small_csv)).runs) == 1


def test_a_run_failing_after_a_dp_step_stays_charged(tmp_path, small_csv, monkeypatch):
    from synthdata.errors import DataError

    def broken_sample(self, *a, **k):
        raise DataError("sampling broke (test)")

    from synthdata.models.gmm import GMMGenerator

    monkeypatch.setattr(GMMGenerator, "sample", broken_sample)
    budget = {"file": "b.json", "total_epsilon": 3, "total_delta": 1e-4}
    with pytest.raises(DataError):
        runner.run_pipeline(write_pipeline(tmp_path, small_csv, {"epsilon": 1.0,
                                                                  "budget": budget}))
    (run_,) = BudgetStore(tmp_path / "b.json").status(_key(small_csv)).runs
    assert run_["status"] == "committed" and 0 < run_["epsilon"] <= 1.0


def test_dp_run_without_budget_says_it_is_untracked(tmp_path, capsys, small_csv):
    code, out, err = run(capsys, "run", str(write_pipeline(tmp_path, small_csv,
                                                           {"epsilon": 1.0})), "--quiet")
    assert code == 0, err
    section = report_of(out)["sections"]["budget"]
    assert section["tracked"] is False and "repeated DP runs on the same data add up" in \
        section["note"]


def test_budget_needs_a_dp_run_and_a_valid_block(tmp_path, capsys, small_csv):
    code, _, err = run(capsys, "run", str(write_pipeline(tmp_path, small_csv, None)), "--quiet",
                       "--budget-file", str(tmp_path / "b.json"))
    assert code == 2 and "--budget-file: the pipeline has no privacy block" in err
    pipe = write_pipeline(tmp_path, small_csv, {"epsilon": 1.0, "budget": {
        "file": "b.json", "total_epsilon": -1, "totl_delta": 1}})
    code, _, err = run(capsys, "run", str(pipe), "--quiet")
    assert code == 2 and "privacy.budget.total_epsilon" in err and "totl_delta: unknown key" in err


def test_budget_show_set_clear(tmp_path, capsys):
    file = tmp_path / "b.json"
    store = BudgetStore(file)
    key = "c0ffee" + "0" * 58
    store.commit(store.reserve(key, 1.0, 1e-6, total_epsilon=2, total_delta=1e-5,
                               generator="vae", label="x.csv"), 0.8, 1e-6)
    stale = store.reserve(key, 1.0, 1e-6)
    code, out, err = run(capsys, "budget", "show", str(file))
    assert code == 0, err
    assert "dataset c0ffee000000 (x.csv): ε spent 1.8 of 2 (remaining 0.2)" in out
    assert "committed" in out and f"reserved  run {stale.run_id}" in out
    assert "stays charged" in out
    code, out, _ = run(capsys, "budget", "show", str(file), "--json")
    assert json.loads(out)[0]["remaining_epsilon"] == pytest.approx(0.2)
    code, out, err = run(capsys, "budget", "clear", str(file), "c0ffee", stale.run_id)
    assert code == 0, err
    code, out, err = run(capsys, "budget", "set", str(file), "c0ffee", "--total-epsilon", "5",
                         "--total-delta", "1e-4")
    assert code == 0 and "total ε=5" in out and "spent ε=0.8" in out
    code, _, err = run(capsys, "budget", "set", str(file), "beef00", "--total-epsilon", "5",
                       "--total-delta", "1e-4")
    assert code == 2 and "no dataset in" in err
    code, _, err = run(capsys, "budget", "show", str(tmp_path / "missing.json"))
    assert code == 2 and "budget file not found" in err


def _key(path: Path) -> str:
    from synthdata.io.files import fingerprint

    return fingerprint(path)


def test_linked_tables_are_one_dataset(tmp_path):
    """The key of linked tables covers every table: changing one is another dataset."""
    from synthdata.pipeline.budget import dataset_key, reserve_budget
    from synthdata.pipeline.config import PipelineConfig

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,x\n1,2\n")
    b.write_text("id,y\n1,3\n")
    (tmp_path / "s.yaml").write_text("tables: {}\n")
    raw = {"data": {"tables": {"patients": str(a), "visits": str(b)},
                    "schema": str(tmp_path / "s.yaml")},
           "privacy": {"epsilon": 1.0, "delta": 1e-6,
                       "budget": {"file": str(tmp_path / "b.json"), "total_epsilon": 1.5,
                                  "total_delta": 1e-5}}}
    cfg = PipelineConfig.from_dict(raw)
    hold = reserve_budget(cfg)
    assert hold is not None and hold.token.delta == 1e-6  # an explicit δ is reserved as is
    (run_,) = hold.store.status(hold.token.dataset_key).runs
    assert run_["generator"] == "relational"
    assert hold.store.status(hold.token.dataset_key).label == "linked tables patients, visits"
    with pytest.raises(PrivacyBudgetError, match="exceeded"):
        reserve_budget(cfg)
    key = dataset_key(cfg)
    b.write_text("id,y\n1,4\n")
    assert dataset_key(cfg) != key
    hold.abandon()  # no ledger attached: nothing ran, the reservation is returned
    assert hold.store.status(key).runs == ()
