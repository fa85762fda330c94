"""Torch generators fitted by streaming a Parquet dataset: time, CPU, peak memory, fidelity.

``flchain`` resampled with replacement to ``--rows`` rows (``bench_scale.write_parquet_dataset``,
``--files`` files under ``--parquet-dir``, default /tmp; not in git) is fitted by
``fit_streaming`` (no table in memory: read batches of ``--batch-rows`` rows, ``--shuffle``
of them shuffled together) with each generator of ``--generators`` for ``--epochs`` epochs,
each in a fresh child process with one torch/BLAS thread. Measured per run: wall and CPU
seconds of the fit, peak RSS of the child (``_common.run_measured``), the RSS after the
metadata pass and after every epoch (flat when memory is bounded), and the detection AUC
(``_common.detection_auc``) of ``--detect-rows`` synthetic rows against the rows of flchain
(the table the dataset was resampled from: every real row is also a training row here).

    python benchmarks/bench_stream_fit.py --rows 2000000 --generators vae --epochs 2
    python benchmarks/bench_stream_fit.py --rows 2000000 --generators vae --epochs 2 --modes memory

``--modes memory`` runs, per generator, the ordinary fit on the whole table loaded with
``pd.read_parquet`` (same data, epochs and steps) as the reference for memory and fidelity.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED_DATASETS, column_infos, detection_auc, encode, run_measured  # noqa: E402
from bench_scale import write_parquet_dataset  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(name: str, parquet: Path, result: Path, epochs: int, batch_rows: int, shuffle: int,
          detect_rows: int, ray_address: str | None, in_memory: bool = False) -> None:
    import synthdata as sd
    from synthdata.models.streaming import ParquetSource, fit_streaming

    source = ParquetSource(parquet, batch_rows=batch_rows)
    schema = sd.Schema.infer(source.head(10_000))
    gen = sd.make_generator(name, schema, seed=0, epochs=epochs)
    gen.threads = 1
    rss: dict[str, float] = {"start": round(_rss_mb())}

    def progress(step: str, done: int, total: int) -> None:
        if step == "stream.metadata":
            rss["after_metadata"] = round(_rss_mb())
        elif step == f"{name}.fit":  # the model's epochs (not the transformer's steps)
            rss[f"after_epoch_{done}"] = round(_rss_mb())

    t0, c0 = time.perf_counter(), time.process_time()
    if in_memory:  # the reference: the whole table loaded, the ordinary fit
        table = pd.read_parquet(parquet)
        rss["after_load"] = round(_rss_mb())
        gen.fit(table, progress=progress)
        del table
    else:
        fit_streaming(gen, source, shuffle_batches=shuffle, ray_address=ray_address,
                      progress=progress)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    synth = gen.sample(detect_rows, seed=1)
    real = pd.read_csv(SHARED_DATASETS / "flchain.csv")
    infos = column_infos(real)
    auc = detection_auc(encode(real, infos), encode(synth, infos), infos, seed=0)
    result.write_text(json.dumps({
        "generator": name, "rows": gen.n_train_rows_, "columns": len(schema),
        "files": len(source.files), "batch_rows": batch_rows, "shuffle_batches": shuffle,
        "epochs": epochs, "batch_size": gen.batch_size, "ray": ray_address is not None,
        "mode": "in memory" if in_memory else "streaming",
        "max_transformed_rows_held": getattr(gen, "stream_max_rows_held_", None),
        "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu, 1), "rss_mb": rss,
        "detection_auc": round(auc, 3), "detect_rows": min(detect_rows, len(real)),
        "load_average_end": "%.2f %.2f %.2f" % os.getloadavg()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--generators", nargs="*", default=["vae"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-rows", type=int, default=100_000)
    ap.add_argument("--shuffle", type=int, default=4)
    ap.add_argument("--detect-rows", type=int, default=20_000)
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--modes", nargs="*", default=["stream"], choices=["stream", "memory"],
                    help="memory: the ordinary fit on the whole table loaded (reference)")
    ap.add_argument("--parquet-dir", type=Path, default=Path(tempfile.gettempdir()) / "synthdata_scale")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream_fit.json")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, parquet, result, epochs, batch, shuffle, detect, ray, mode = args.child
        child(name, Path(parquet), Path(result), int(epochs), int(batch), int(shuffle),
              int(detect), None if ray == "-" else ray, in_memory=mode == "memory")
        return
    pdir = args.parquet_dir / f"flchain_{args.rows}_{args.files}"
    if not pdir.exists():
        t0 = time.perf_counter()
        write_parquet_dataset(args.rows, pdir, files=args.files, seed=0)
        print(f"wrote {pdir} in {time.perf_counter() - t0:.0f} s", flush=True)
    load_start = "%.2f %.2f %.2f" % os.getloadavg()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, mode in ((g, m) for g in args.generators for m in args.modes):
            result, log = tmp / f"{name}_{mode}.json", tmp / f"{name}_{mode}.log"
            code, wall, peak = run_measured(
                [sys.executable, __file__, "--child", name, str(pdir), str(result),
                 str(args.epochs), str(args.batch_rows), str(args.shuffle),
                 str(args.detect_rows), args.ray_address or "-", mode], env=env, log_path=log)
            out = json.loads(result.read_text()) if code == 0 else \
                {"generator": name, "error": log.read_text()[-1500:]}
            out.update(wall_s=round(wall, 1), peak_rss_mb=round(peak))
            runs.append(out)
            print(json.dumps(out), flush=True)
    record = {"runs": runs, "bytes_on_disk": sum(f.stat().st_size for f in pdir.glob("*.parquet")),
              "load_average_start": load_start,
              "load_average_end": "%.2f %.2f %.2f" % os.getloadavg(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "threads": "one torch/OMP/BLAS thread in the child"}
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    record["previous"] = previous.get("runs", [])  # kept: stream and memory run separately
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
