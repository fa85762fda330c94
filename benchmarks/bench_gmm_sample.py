"""gmm sampling speed (rows per wall- and CPU-second), its stages, and fidelity on flchain.

Tables: ``flchain`` (11 columns, the whole shared table) and ``wide``, the 50-column layout
of ``bench_scale.py`` (``build_table(220_000, seed=0)``, fitted on its first
``--fit-rows`` rows). gmm is fitted once per table (``seed=0``, default parameters), then
``gen.sample(--rows, seed=1)`` is timed ``--repeat`` times per thread count (the median
run is reported; inverse transform and DataFrame build included). The sample is the same
for every thread count (checked here on the first run, hash of the frame).

``--stages`` times the steps of one sample, block by block as ``GMMGenerator`` runs them
(one thread, CPU seconds): component counts, Gaussian draw, per-component products, the
row permutation, categorical draws, the per-column inverse by kind, the DataFrame build.
``--chunk-rows 100000`` also times ``sample_chunks`` (what ``synthdata sample`` and a
pipeline run use: bounded memory, chunks not written here). ``--fidelity`` fits flchain on an 80/20 split with seeds 0, 1, 2 and reports the detection
AUC and mean column distance (``_common.draw_scores``) of ``len(holdout)`` synthetic rows;
it uses only the public API, so the same command run against another checkout
(``PYTHONPATH=<checkout>``) gives the "before" numbers.

    PYTHONPATH=. python benchmarks/bench_gmm_sample.py --threads 1 2 --chunk-rows 100000
    PYTHONPATH=. python benchmarks/bench_gmm_sample.py --tables flchain --stages --fidelity
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATASETS, dataset_spec, draw_scores, load_dataset, split  # noqa: E402
from bench_scale import build_table  # noqa: E402

import synthdata as sd  # noqa: E402


def load_table(name: str, fit_rows: int) -> pd.DataFrame:
    if name == "flchain":
        return pd.read_csv(SHARED_DATASETS / "flchain.csv")
    return build_table(220_000, seed=0).iloc[:fit_rows].reset_index(drop=True)


def frame_hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy()).hexdigest()[:16]


def time_sampling(gen, rows: int, threads: int, repeat: int) -> dict:
    gen.threads = threads
    gen.sample(1000, seed=0)  # warm: guide and alias tables are built once per model
    runs, digest = [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        synth = gen.sample(rows, seed=1)
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
        digest = digest or frame_hash(synth)
        del synth
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return {"threads": threads, "rows": rows, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "rows_per_s": round(rows / wall), "rows_per_cpu_s": round(rows / cpu),
            "sample_hash": digest, "load_average": "%.2f %.2f %.2f" % os.getloadavg()}


def time_chunks(gen, rows: int, threads: int, chunk_rows: int) -> dict:
    """The CLI / pipeline path: ``sample_chunks`` (chunks of ``chunk_rows``, not written)."""
    from synthdata.pipeline.stream import sample_chunks

    gen.threads = threads
    t0, c0 = time.perf_counter(), time.process_time()
    total = sum(len(chunk) for chunk in sample_chunks(gen, rows, chunk_rows, seed=1))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"threads": threads, "rows": total, "chunk_rows": chunk_rows,
            "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "rows_per_s": round(total / wall),
            "rows_per_cpu_s": round(total / cpu), "load_average": "%.2f %.2f %.2f" % os.getloadavg()}


def stages(gen, rows: int) -> dict[str, float]:
    """CPU seconds per step of ``GMMGenerator``'s block sampler (its code, step by step)."""
    from synthdata._rng import standard_normal_f32
    from synthdata.models import gmm as g
    from synthdata.transform.columns import CategoryEncoder, NumericEncoder

    plan = gen._sampling_plan(None)
    tt = gen.transformer_
    spent: dict[str, float] = {}
    clock = [time.process_time()]

    def tick(label: str) -> None:
        now = time.process_time()
        spent[label] = spent.get(label, 0.0) + now - clock[0]
        clock[0] = now

    arrays: dict[str, list[np.ndarray]] = {}
    k = gen.n_components_
    starts = g._block_starts(rows)
    for index in range(len(starts) - 1):
        m = int(starts[index + 1] - starts[index])
        rng = np.random.default_rng([1, 2, index])
        clock[0] = time.process_time()
        bounds = np.concatenate([[0], np.cumsum(rng.multinomial(m, plan["post"]))])
        tick("component counts (multinomial)")
        scores = standard_normal_f32(rng, (gen.means_.shape[1], m))
        tick("Gaussian draw (float32 Box-Muller normals)")
        chol, means = gen._sampling_factors()
        for j in range(k):
            lo, hi = bounds[j], bounds[j + 1]
            if hi > lo:
                scores[:, lo:hi] = chol[j] @ scores[:, lo:hi] + means[j][:, None]
        tick("per-component products")
        perm = rng.permutation(m)
        coded = np.empty((len(plan["cont_at"]) + len(plan["disc_at"]), m), dtype=np.float32)
        for i, at in enumerate(plan["cont_at"]):
            np.take(scores[i], perm, out=coded[at])
        tick("row permutation")
        comp = np.repeat(np.arange(k), np.diff(bounds))[perm]
        for j, width in enumerate(plan["widths"]):
            coded[plan["disc_at"][j]] = g._draw_categories(plan["categories"][j], width, comp, rng)
        tick("categorical draw (inverse CDF / alias)")
        matrix, pos = coded.T, 0
        for name, enc in tt.encoders_.items():
            step = len(enc.spans())
            if not step:
                continue
            block = matrix[:, pos:pos + step]
            pos += step
            if isinstance(enc, CategoryEncoder):
                out = enc.inverse_codes(block, coded=True)
                label = "ordinal category" if enc.ordinal else "one-hot category"
            else:
                assert isinstance(enc, NumericEncoder)
                out = enc.inverse_values(block, coded=True)
                label = "quantile, stepwise" if enc.stepwise_ else "quantile, interpolated"
            arrays.setdefault(name, []).append(out)
            tick(f"inverse: {label}")
    joined = {name: np.concatenate(parts) for name, parts in arrays.items()}
    clock[0] = time.process_time()
    tt.frame_from_arrays(joined, rows)
    tick("DataFrame build (dtypes, text)")
    spent["constraint repair"] = 0.0  # inferred schema: no declared constraints
    return {label: round(v, 3) for label, v in spent.items()}


def fidelity(seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    data = load_dataset(dataset_spec("flchain"))
    train, holdout = split(data, seed=0, holdout=0.2)
    runs = []
    for seed in seeds:
        gen = sd.make_generator("gmm", sd.Schema.infer(train), seed=seed, threads=1).fit(train)
        synth = gen.sample(len(holdout), seed=seed + 100)
        runs.append(draw_scores(train, holdout, synth, seed=0))
    return {"seeds": list(seeds),
            "detect_auc": [round(r["detect_auc"], 4) for r in runs],
            "col_dist": [round(r["col_dist"], 4) for r in runs],
            "detect_auc_mean": round(float(np.mean([r["detect_auc"] for r in runs])), 4),
            "col_dist_mean": round(float(np.mean([r["col_dist"] for r in runs])), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="*", default=["flchain", "wide"])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fit-rows", type=int, default=50_000)
    ap.add_argument("--chunk-rows", type=int, default=0,
                    help="also time sample_chunks with this chunk size (the CLI's: 100000)")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--fidelity", action="store_true")
    args = ap.parse_args()
    out: dict = {"code": sd.__file__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "load_average_start": "%.2f %.2f %.2f" % os.getloadavg(), "tables": {}}
    for name in args.tables:
        table = load_table(name, args.fit_rows)
        c0 = time.process_time()
        gen = sd.make_generator("gmm", sd.Schema.infer(table), seed=0, threads=1).fit(table)
        entry: dict = {"columns": table.shape[1], "fit_rows": len(table),
                       "n_components": int(gen.n_components_),
                       "fit_cpu_s": round(time.process_time() - c0, 1),
                       "runs": [time_sampling(gen, args.rows, t, args.repeat) for t in args.threads]}
        if args.chunk_rows:
            entry["chunked"] = [time_chunks(gen, args.rows, t, args.chunk_rows)
                                for t in args.threads]
        if args.stages:
            from synthdata._threads import limit_threads

            with limit_threads(1):  # as sample() runs them
                entry["stages_cpu_s"] = stages(gen, args.rows)
        out["tables"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    if args.fidelity:
        out["fidelity_flchain"] = fidelity()
        print(json.dumps({"fidelity_flchain": out["fidelity_flchain"]}), flush=True)
    out["load_average_end"] = "%.2f %.2f %.2f" % os.getloadavg()
    print(json.dumps({k: v for k, v in out.items() if k != "tables"}))


if __name__ == "__main__":
    main()
