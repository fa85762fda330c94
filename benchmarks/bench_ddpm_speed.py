"""ddpm sampling speed at the default steps: rows per wall second and per CPU second (issue 24).

Loads saved fits (``gen.save``), draws one warm-up sample, then times
``gen.sample(--rows, seed=7)`` (inverse transform included) for each ``--threads`` count and
prints one JSON line per run with the 1-minute load average before and after. Run it once per
code version to compare them on the same fits, side by side::

    PYTHONPATH=. python benchmarks/bench_ddpm_speed.py --models build/models/flchain_s0.sdg
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_ddpm_speed.py --threads 1 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", type=Path, required=True)
    p.add_argument("--rows", type=int, default=32768)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    args = p.parse_args(argv)
    import synthdata as sd

    for path in args.models:
        gen = sd.load_generator(path)
        if args.steps is not None:
            gen.sampling_steps = args.steps
        for threads in [int(t) for t in args.threads.split(",")]:
            gen.threads = threads
            gen.sample(500, seed=0)
            load_before = os.getloadavg()[0]
            w0, c0 = time.perf_counter(), time.process_time()
            gen.sample(args.rows, seed=7)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            print(json.dumps({"code": str(Path(sd.__file__).parents[1]), "model": path.name,
                              "steps": gen.sampling_steps, "threads": threads,
                              "rows": args.rows, "rows_per_s": round(args.rows / wall),
                              "rows_per_cpu_s": round(args.rows / cpu), "wall_s": round(wall, 1),
                              "cpu_s": round(cpu, 2),
                              "load_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)]}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
