"""A stand-in for ``run_pipeline`` in worker processes: same call, no training.

The pipeline's ``name`` picks the behaviour: ``reject`` (the gate refuses), ``boom`` (a
DataError), ``slow...`` (reports progress for a minute, for cancel/limit tests), ``hog`` (asks for
8 GB); anything
else succeeds at once. It writes the run folder the real runner writes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from synthdata.errors import DataError


def run(config: dict[str, Any], *, output_dir: Path, progress: Any = None,
        data: Any = None) -> SimpleNamespace:
    progress = progress or (lambda *a: None)
    name = config.get("name") or ""
    if not Path(config["data"]["path"]).is_file():
        raise DataError("data file not found")
    if name == "boom":
        raise DataError("the table is unusable (fake runner)")
    if name == "hog":  # more memory than any worker limit in the tests
        bytearray(8 * 1024**3)
    if name.startswith("slow"):
        for i in range(600):
            progress("gmm.fit", i, 600)
            time.sleep(0.1)
    progress("sample", 1, 1)
    run_dir = Path(output_dir) / f"run-fake-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    passed = name != "reject"
    (run_dir / "report.json").write_text(json.dumps({
        "metrics": {"shapes": 0.9}, "schema_override": config["data"].get("schema"),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}))
    (run_dir / "report.html").write_text("<html><body>fake report</body></html>")
    synthetic = None
    if passed:
        synthetic = run_dir / "synthetic.csv"
        synthetic.write_text("age,sex\n70,F\n55,M\n")
    gate = [{"metric": "exact_copies", "passed": passed, "value": float("nan"),
             "reason": "fake"}]
    metrics = {}
    if config.get("privacy"):  # a DP run spends a little less than its ε (like a ledger)
        metrics = {"epsilon": 0.9 * config["privacy"]["epsilon"], "delta": 5e-6}
    return SimpleNamespace(run_dir=run_dir, passed=passed, synthetic_path=synthetic, gate=gate,
                           metrics=metrics, timings={})
