"""200k-row tables: fit time, peak memory, sampling speed and detection AUC per generator.

The table: no shared table has 200,000 rows and 40 columns, so one is built by resampling.
``telco_churn`` (20 columns), ``nmes1988`` (19) and ``flchain`` (11) are each resampled with replacement (seeded, independently) to the same
number of rows and put side by side, columns prefixed ``t_``, ``n_``, ``f_``: 50 columns of
real values whose dependencies hold within each source table and are absent between them.
The first ``--rows`` rows train, the next ``--holdout`` rows are the held-out real rows.

Each generator runs in its own fresh child process (peak RSS = the child's ``ru_maxrss`` and
its process tree, see ``_common.run_measured``): fit on the train rows, sample as many rows,
score detection AUC (``_common.detection_auc``: holdout vs synthetic, at most
``--detect-rows`` per side), and time ``synthdata.evaluate`` on the full train/synthetic
tables (it subsamples internally: model rows, nearest-neighbour references and queries,
membership rows; sizes in the report). gmm also samples ``--gmm-sample-rows`` rows to measure
sampling speed (rows/s of ``gen.sample``, inverse transform included).

``--curve vae=5,10,20`` scores detection AUC at several epochs from one fit per generator
(vae, ctgan: see ``child_curve``); each point is appended to ``<out>_curve_<gen>.jsonl`` as
it comes. Torch generators also append one line per epoch (CPU and wall seconds so far, peak
RSS) to ``<out>_progress_<gen>.jsonl``.

``--parquet-rows N`` adds the out-of-core run: ``flchain`` resampled to N rows written as a
Parquet dataset of many files under ``--parquet-dir`` (default /tmp; not in git), then
``fit_streaming`` (gmm) over it in a fresh child: wall time and peak RSS.

    python benchmarks/bench_scale.py --generators gmm vae ctgan ddpm
    python benchmarks/bench_scale.py --generators gmm --parquet-rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED_DATASETS, column_infos, detection_auc, encode, run_measured  # noqa: E402

SOURCES = (("telco_churn", "t_"), ("nmes1988", "n_"), ("flchain", "f_"))
# epochs per generator when --epochs does not say: none, so every generator runs its own
# default (vae/ctgan/ddpm: epochs="auto", the step cap of models/_params.EpochBudget)
DEFAULT_EPOCHS: dict[str, int] = {}


def build_table(n_rows: int, seed: int, data_dir: Path = SHARED_DATASETS) -> pd.DataFrame:
    """``n_rows`` rows: each source table resampled with replacement, side by side."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, prefix in SOURCES:
        df = pd.read_csv(data_dir / f"{name}.csv")
        idx = rng.integers(0, len(df), n_rows)
        parts.append(df.iloc[idx].reset_index(drop=True).add_prefix(prefix))
    return pd.concat(parts, axis=1)


def write_parquet_dataset(n_rows: int, out: Path, *, files: int, seed: int,
                          data_dir: Path = SHARED_DATASETS) -> None:
    """flchain resampled with replacement to ``n_rows`` rows, ``files`` Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.read_csv(data_dir / "flchain.csv")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    per = -(-n_rows // files)
    for i in range(files):
        m = min(per, n_rows - i * per)
        if m <= 0:
            break
        part = df.iloc[rng.integers(0, len(df), m)].reset_index(drop=True)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), out / f"part-{i:04d}.parquet")


# -- child processes -----------------------------------------------------------------------

def child_generator(gen_name: str, data: Path, result: Path, epochs: int | None,
                    detect_rows: int, gmm_sample_rows: int, evaluate_full: bool,
                    progress_path: Path) -> None:
    import resource

    import synthdata as sd

    train = pd.read_parquet(data / "train.parquet")
    holdout = pd.read_parquet(data / "holdout.parquet")
    schema = sd.Schema.infer(train)
    params = {} if epochs is None else {"epochs": epochs}
    gen = sd.make_generator(gen_name, schema, seed=0, **params)
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(step: str, done: int, total: int) -> None:
        # one line per epoch (a run stopped early still shows its pace)
        if step == f"{gen_name}.fit":
            with progress_path.open("a") as fh:
                fh.write(json.dumps({
                    "generator": gen_name, "epoch": done, "of": total,
                    "fit_cpu_s": round(time.process_time() - c0, 1),
                    "fit_s": round(time.perf_counter() - t0, 1),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                    "load_average": "%.2f %.2f %.2f" % os.getloadavg()}) + "\n")

    gen.fit(train, progress=progress)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    synth = gen.sample(len(train), seed=1)
    sample_s, sample_cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict = {"generator": gen_name, "epochs": epochs, "rows": len(train),
                 "columns": train.shape[1], "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu, 1),
                 "sample_s": round(sample_s, 2), "sample_cpu_s": round(sample_cpu, 2),
                 "sample_rows_per_s": round(len(synth) / sample_s),
                 "sample_rows_per_cpu_s": round(len(synth) / sample_cpu)}
    if gen_name == "gmm":
        out["n_components"] = int(gen.n_components_)
        del synth
        t0, c0 = time.perf_counter(), time.process_time()
        big = gen.sample(gmm_sample_rows, seed=2)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        out.update(big_sample_rows=len(big), big_sample_s=round(dt, 2),
                   big_sample_rows_per_s=round(len(big) / dt),
                   big_sample_rows_per_cpu_s=round(len(big) / cpu))
        del big
        synth = gen.sample(len(train), seed=1)
    infos = column_infos(train)
    rng = np.random.default_rng(0)
    n = min(detect_rows, len(holdout), len(synth))
    ho = holdout.iloc[np.sort(rng.choice(len(holdout), n, replace=False))]
    sy = synth.iloc[np.sort(rng.choice(len(synth), n, replace=False))]
    import sklearn.ensemble  # noqa: F401  (load libgomp before limiting threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        out["detect_auc"] = round(detection_auc(encode(ho, infos), encode(sy, infos), infos,
                                                seed=0), 3)
    out["detect_rows_per_side"] = n
    if evaluate_full:
        t0 = time.perf_counter()
        report = sd.evaluate(train, synth, holdout=holdout, schema=schema, seed=0)
        out["evaluate_s"] = round(time.perf_counter() - t0, 1)
        out["evaluate_detection_auc"] = report.metrics.get("detection_auc")
        meta = report.meta
        out["evaluate_subsampling"] = meta.get("subsampling")
        out["evaluate_timings"] = {k: round(v, 1) for k, v in (meta.get("timings") or {}).items()}
    result.write_text(json.dumps(out, default=str))


def child_curve(gen_name: str, data: Path, result: Path, checkpoints: list[int],
                detect_rows: int, points_path: Path) -> None:
    """Detection AUC against epochs from ONE vae/ctgan fit of ``max(checkpoints)`` epochs.

    At each checkpoint epoch (progress callback) the model as it stands samples
    ``detect_rows`` rows (seed 1) and is scored; each point is appended to ``points_path``
    as it comes (a run stopped early keeps its points). vae and ctgan have no learning-rate
    schedule and their training stream does not depend on ``epochs`` (sampling uses its own
    seeded generator), so the model after ``k`` epochs of this run IS the model an
    ``epochs=k`` fit gives: one run gives the whole curve. (Not ddpm: its learning rate
    decays over the planned steps.) ``fit_cpu_s`` of a point is the fit's CPU seconds up to
    that epoch, scoring excluded."""
    import synthdata as sd
    from synthdata.models import ctgan as ctgan_mod
    from synthdata.models import vae as vae_mod

    mod = {"vae": vae_mod, "ctgan": ctgan_mod}[gen_name]
    built: list = []
    original = mod.build_module

    def recording(factory, generator):  # the first module built is the one that samples
        net = original(factory, generator)
        built.append(net)
        return net

    mod.build_module = recording
    train = pd.read_parquet(data / "train.parquet")
    holdout = pd.read_parquet(data / "holdout.parquet")
    schema = sd.Schema.infer(train)
    gen = sd.make_generator(gen_name, schema, seed=0, epochs=max(checkpoints))
    infos = column_infos(train)
    rng = np.random.default_rng(0)
    n = min(detect_rows, len(holdout))
    ho = encode(holdout.iloc[np.sort(rng.choice(len(holdout), n, replace=False))], infos)
    import sklearn.ensemble  # noqa: F401  (load libgomp before limiting threads)
    from threadpoolctl import threadpool_limits

    points: list[dict] = []
    scoring = [0.0, 0.0]  # CPU and wall seconds spent scoring, taken off the fit's
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(step: str, done: int, total: int) -> None:
        if step != f"{gen_name}.fit" or done not in checkpoints or done in {p["epoch"] for p in points}:
            return
        t1, c1 = time.perf_counter(), time.process_time()
        net = built[0]
        was_training = net.training
        setattr(gen, "net_" if gen_name == "vae" else "generator_", net)
        net.eval()
        synth = gen.sample(n, seed=1)
        net.train(was_training)
        with threadpool_limits(1):
            auc = detection_auc(ho, encode(synth, infos), infos, seed=0)
        points.append({"generator": gen_name, "epoch": done,
                       "fit_cpu_s": round(c1 - c0 - scoring[0], 1),
                       "fit_s": round(t1 - t0 - scoring[1], 1), "detect_auc": round(auc, 3),
                       "load_average": "%.2f %.2f %.2f" % os.getloadavg()})
        with points_path.open("a") as fh:
            fh.write(json.dumps(points[-1]) + "\n")
        scoring[0] += time.process_time() - c1
        scoring[1] += time.perf_counter() - t1

    gen.fit(train, progress=progress)
    fit_s = time.perf_counter() - t0 - scoring[1]
    fit_cpu = time.process_time() - c0 - scoring[0]
    t1, c1 = time.perf_counter(), time.process_time()
    synth = gen.sample(len(train), seed=1)
    sample_s, sample_cpu = time.perf_counter() - t1, time.process_time() - c1
    result.write_text(json.dumps({
        "generator": f"{gen_name}_curve", "rows": len(train), "columns": train.shape[1],
        "epochs": max(checkpoints), "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu, 1),
        "sample_rows_per_s": round(len(synth) / sample_s),
        "sample_rows_per_cpu_s": round(len(synth) / sample_cpu), "detect_rows_per_side": n,
        "curve": points}))


def child_gmm_fit(data: Path, result: Path, threads: int) -> None:
    """The gmm fit alone (own process): wall, CPU, peak RSS up to the end of the fit."""
    import resource

    import synthdata as sd

    train = pd.read_parquet(data / "train.parquet")
    gen = sd.make_generator("gmm", sd.Schema.infer(train), seed=0, threads=threads)
    load = "%.2f %.2f %.2f" % os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    gen.fit(train)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.write_text(json.dumps({
        "generator": f"gmm_fit_threads{threads}", "rows": len(train), "columns": train.shape[1],
        "threads": threads, "n_components": int(gen.n_components_), "fit_s": round(fit_s, 1),
        "fit_cpu_s": round(fit_cpu, 1), "fit_peak_rss_mb": round(peak),
        "load_average_start": load, "load_average_end": "%.2f %.2f %.2f" % os.getloadavg()}))


def child_gmm_sample(data: Path, result: Path, threads: int, fit_rows: int, rows: int) -> None:
    """gmm sampling speed: fit on the first ``fit_rows`` rows of the 200k table and on
    flchain, then ``rows`` rows per model with ``threads``: rows per wall- and CPU-second."""
    import synthdata as sd

    tables = {"scale_table": pd.read_parquet(data / "train.parquet").iloc[:fit_rows],
              "flchain": pd.read_csv(SHARED_DATASETS / "flchain.csv")}
    out: dict = {"generator": f"gmm_sample_threads{threads}", "threads": threads,
                 "fit_rows": fit_rows, "load_average_start": "%.2f %.2f %.2f" % os.getloadavg()}
    for name, table in tables.items():
        gen = sd.make_generator("gmm", sd.Schema.infer(table), seed=0, threads=threads)
        gen.fit(table)
        gen.sample(1000, seed=0)  # warm
        t0, c0 = time.perf_counter(), time.process_time()
        synth = gen.sample(rows, seed=1)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = {"columns": table.shape[1], "n_components": int(gen.n_components_),
                     "rows": len(synth), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                     "rows_per_s": round(len(synth) / wall),
                     "rows_per_cpu_s": round(len(synth) / cpu)}
    out["load_average_end"] = "%.2f %.2f %.2f" % os.getloadavg()
    result.write_text(json.dumps(out))


def child_streaming(parquet_dir: Path, result: Path, batch_rows: int, max_iter: int) -> None:
    import synthdata as sd
    from synthdata.models.streaming import ParquetSource, fit_streaming

    source = ParquetSource(parquet_dir, batch_rows=batch_rows)
    schema = sd.Schema.infer(source.head(10_000))
    gen = sd.make_generator("gmm", schema, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    fit_streaming(gen, source, passes=max_iter)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    synth = gen.sample(1_000_000, seed=1)
    sample_s = time.perf_counter() - t0
    result.write_text(json.dumps({
        "rows": gen.n_train_rows_, "columns": len(schema), "files": len(source.files),
        "batch_rows": batch_rows, "max_iter": max_iter, "n_components": int(gen.n_components_),
        "em_passes": gen.stream_passes_, "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu, 1),
        "sample_1m_s": round(sample_s, 2), "synth_rows": len(synth)}))


# -- parent --------------------------------------------------------------------------------

def run_child(argv: list[str], result: Path, log: Path, threads: int = 1) -> dict:
    # one BLAS/OpenMP thread per child unless asked: on the shared, overloaded 2-core machine
    # two OpenBLAS threads spun (a 200k-row GEMM loop: 50 s of CPU against 2.2 s with one)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    code, wall, peak = run_measured([sys.executable, __file__, *argv], env=env, log_path=log)
    if code != 0:
        return {"error": log.read_text()[-1500:], "wall_s": round(wall, 1)}
    out = json.loads(result.read_text())
    out.update(wall_s=round(wall, 1), peak_rss_mb=round(peak))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generators", nargs="*", default=["gmm", "vae", "ctgan", "ddpm"])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--holdout", type=int, default=20_000)
    ap.add_argument("--detect-rows", type=int, default=20_000)
    ap.add_argument("--gmm-sample-rows", type=int, default=2_000_000)
    ap.add_argument("--epochs", nargs="*", default=[], help="gen=epochs, e.g. ddpm=30")
    ap.add_argument("--gmm-fit-threads", type=int, nargs="*", default=[],
                    help="also fit gmm alone in a fresh child per thread count (no OMP cap)")
    ap.add_argument("--gmm-sample-threads", type=int, nargs="*", default=[],
                    help="gmm sampling speed alone (fit on --gmm-sample-fit-rows rows, sample "
                    "--gmm-sample-rows) in a fresh child per thread count")
    ap.add_argument("--gmm-sample-fit-rows", type=int, default=50_000)
    ap.add_argument("--curve", nargs="*", default=[],
                    help="gen=e1,e2,... detection AUC at these epochs from one fit (vae, ctgan)")
    ap.add_argument("--no-evaluate", action="store_true", help="skip timing synthdata.evaluate")
    ap.add_argument("--parquet-rows", type=int, default=0)
    ap.add_argument("--parquet-files", type=int, default=100)
    ap.add_argument("--parquet-dir", type=Path, default=Path(tempfile.gettempdir()) / "synthdata_scale")
    ap.add_argument("--stream-batch-rows", type=int, default=200_000)
    ap.add_argument("--stream-max-iter", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.md")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "gmmsample":
            data, result, threads, fit_rows, rows = rest
            child_gmm_sample(Path(data), Path(result), int(threads), int(fit_rows), int(rows))
        elif kind == "curve":
            name, data, result, points, detect, points_path = rest
            child_curve(name, Path(data), Path(result), [int(e) for e in points.split(",")],
                        int(detect), Path(points_path))
        elif kind == "gmmfit":
            data, result, threads = rest
            child_gmm_fit(Path(data), Path(result), int(threads))
        elif kind == "gen":
            name, data, result, epochs, detect, big, full, progress_path = rest
            child_generator(name, Path(data), Path(result), None if epochs == "-" else int(epochs),
                            int(detect), int(big), full == "1", Path(progress_path))
        else:
            parquet, result, batch, iters = rest
            child_streaming(Path(parquet), Path(result), int(batch), int(iters))
        return
    epochs = {**DEFAULT_EPOCHS, **{k: int(v) for k, v in (e.split("=") for e in args.epochs)}}
    load_start = "%.2f %.2f %.2f" % os.getloadavg()
    runs, stream = [], None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.generators or args.gmm_fit_threads or args.gmm_sample_threads or args.curve:
            table = build_table(args.rows + args.holdout, seed=0)
            table.iloc[:args.rows].to_parquet(tmp / "train.parquet")
            table.iloc[args.rows:].reset_index(drop=True).to_parquet(tmp / "holdout.parquet")
            del table
        for i, name in enumerate(args.generators):
            result = tmp / f"{name}.json"
            ep = str(epochs[name]) if name in epochs else "-"
            full = "0" if args.no_evaluate or i > 0 else "1"  # time evaluate once (gmm's rows)
            progress_path = args.out.with_name(f"{args.out.stem}_progress_{name}.jsonl")
            out = run_child(["--child", "gen", name, str(tmp), str(result), ep,
                             str(args.detect_rows), str(args.gmm_sample_rows), full,
                             str(progress_path)],
                            result, tmp / f"{name}.log")
            out.setdefault("generator", name)
            runs.append(out)
            print(json.dumps(out), flush=True)
        for spec in args.curve:
            name, points = spec.split("=")
            result = tmp / f"{name}_curve.json"
            points_path = args.out.with_name(f"{args.out.stem}_curve_{name}.jsonl")
            out = run_child(["--child", "curve", name, str(tmp), str(result), points,
                             str(args.detect_rows), str(points_path)], result,
                            tmp / f"{name}_curve.log")
            out.setdefault("generator", f"{name}_curve")
            runs.append(out)
            print(json.dumps(out), flush=True)
        for threads in args.gmm_fit_threads:
            result = tmp / f"gmmfit{threads}.json"
            out = run_child(["--child", "gmmfit", str(tmp), str(result), str(threads)], result,
                            tmp / f"gmmfit{threads}.log", threads=threads)
            out.setdefault("generator", f"gmm_fit_threads{threads}")
            runs.append(out)
            print(json.dumps(out), flush=True)
        for threads in args.gmm_sample_threads:
            result = tmp / f"gmmsample{threads}.json"
            out = run_child(["--child", "gmmsample", str(tmp), str(result), str(threads),
                             str(args.gmm_sample_fit_rows), str(args.gmm_sample_rows)], result,
                            tmp / f"gmmsample{threads}.log", threads=threads)
            out.setdefault("generator", f"gmm_sample_threads{threads}")
            runs.append(out)
            print(json.dumps(out), flush=True)
        if args.parquet_rows:
            pdir = args.parquet_dir / f"flchain_{args.parquet_rows}"
            if not pdir.exists():
                t0 = time.perf_counter()
                write_parquet_dataset(args.parquet_rows, pdir, files=args.parquet_files, seed=0)
                print(f"wrote {pdir} in {time.perf_counter() - t0:.0f} s", flush=True)
            result = tmp / "stream.json"
            stream = run_child(["--child", "stream", str(pdir), str(result),
                                str(args.stream_batch_rows), str(args.stream_max_iter)],
                               result, tmp / "stream.log")
            stream["bytes_on_disk"] = sum(f.stat().st_size for f in pdir.glob("*.parquet"))
            print(json.dumps(stream), flush=True)
    json_path = args.out.with_suffix(".json")
    previous = json.loads(json_path.read_text()) if json_path.exists() else {}
    merged = {r["generator"]: r for r in previous.get("runs", [])}
    merged.update({r["generator"]: r for r in runs})
    record = {"runs": list(merged.values()), "stream": stream or previous.get("stream"),
              "load_average_start": load_start,
              "load_average_end": "%.2f %.2f %.2f" % os.getloadavg(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "threads": "OMP/OPENBLAS/MKL_NUM_THREADS=1 in every child"}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=2, default=str))
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
