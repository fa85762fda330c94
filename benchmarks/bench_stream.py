"""Peak memory of a pipeline run that samples and exports many rows (chunked output).

Runs ``pipelines/flchain.yaml`` with the GMM generator, ``sample.rows`` = ROWS (default
10 million), ``evaluate.full: false`` and ``gate: none``, once per output format, each in a
fresh child process, and reports the child's peak resident memory (its own ``ru_maxrss``,
``resource.getrusage(RUSAGE_SELF)`` read at its end), the wall time, the rows written and the file
size. Writes ``benchmarks/results/stream.json`` and ``stream.md``.

    .venv/bin/python benchmarks/bench_stream.py                      # 10M rows, csv + parquet
    .venv/bin/python benchmarks/bench_stream.py --rows 1000000 --formats csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.runner import run_pipeline

rows, chunk, fmt, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
cfg = PipelineConfig.from_yaml(Path(sys.argv[5]))
raw = cfg.model_dump(by_alias=True)
raw["sample"] = {**raw["sample"], "rows": rows, "chunk_rows": chunk}
raw["evaluate"] = {**raw["evaluate"], "full": False}
raw["gate"] = "none"
raw["output"] = {**raw["output"], "format": fmt, "dir": out}
start = time.perf_counter()
result = run_pipeline(PipelineConfig.model_validate(raw))
wall = time.perf_counter() - start
path = result.synthetic_path
if fmt == "parquet":
    n = pq.ParquetFile(path).metadata.num_rows
else:
    with open(path, "rb") as fh:
        n = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 24), b"")) - 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: this process only
print(json.dumps({"rows_written": n, "bytes": path.stat().st_size, "wall_s": round(wall, 1),
                  "timings": result.timings, "peak_rss_mib": round(peak / 1024)}))
"""


def measure(rows: int, chunk: int, fmt: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(chunk), fmt, out,
                               str(ROOT / "pipelines" / "flchain.yaml")],
                              capture_output=True, text=True, cwd=ROOT, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({fmt}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(format=fmt, rows=rows, chunk_rows=chunk)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    runs = []
    for fmt in args.formats:
        runs.append(measure(args.rows, args.chunk_rows, fmt))
        print(json.dumps(runs[-1]), flush=True)
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "note": "measured on a shared 2-core machine under load from other jobs; peak RSS "
                    "is the child process's ru_maxrss"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stream.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    lines = ["# Chunked sampling and export: peak memory", "",
             f"{meta['date']}, {meta['machine']}, {meta['cpus']} CPUs; {meta['note']}.", "",
             ("`pipelines/flchain.yaml` with GMM, `evaluate.full: false`, `gate: none`; "
              "one fresh process per format."), "",
             "| format | rows written | chunk_rows | peak RSS (MiB) | wall (s) | file (MB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['format']} | {r['rows_written']:,} | {r['chunk_rows']:,} | "
                     f"{r['peak_rss_mib']} | {r['wall_s']} | {r['bytes'] / 1e6:.0f} |")
    (args.out / "stream.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
