"""SmartNoise MST as a peer of benchmarks/bench_privacy.py, run in its own interpreter.

smartnoise-synth 1.0.8 pins opendp<0.15 (synthdata needs 0.16), so it lives in .venv-mst
(``make .venv-mst/.installed``, benchmarks/requirements-mst.txt) and never imports
synthdata; bench_privacy.py starts this script with that interpreter, hands it the train
table as CSV and scores the CSV it writes with the same functions as every other system.

Usage: ``.venv-mst/bin/python benchmarks/_mst_peer.py TRAIN.csv OUT.csv --epsilon 3
--delta 1e-5 --seed 0 --rows 5512 --categorical a,b --continuous c,d``. Numeric columns are
binned by SmartNoise's own preprocessor, whose bounds are DP estimates paid from
``--preprocessor-share`` of ε (as synthdata's preprocessing share); the fit and sample
times and MST's spent ε print as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train")
    parser.add_argument("out")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--categorical", default="")
    parser.add_argument("--continuous", default="")
    parser.add_argument("--preprocessor-share", type=float, default=0.1)
    args = parser.parse_args(argv)
    import numpy as np
    import pandas as pd
    from snsynth import Synthesizer

    cats = [c for c in args.categorical.split(",") if c]
    conts = [c for c in args.continuous.split(",") if c]
    df = pd.read_csv(args.train)
    for c in cats:  # MST's cube transformer wants hashable labels without NaN ambiguity
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    np.random.seed(args.seed)  # MST draws its noise from numpy's global generator
    t0, c0 = time.perf_counter(), time.process_time()
    synth = Synthesizer.create("mst", epsilon=args.epsilon, delta=args.delta, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth.fit(df, categorical_columns=cats, continuous_columns=conts, nullable=True,
                  preprocessor_eps=args.preprocessor_share * args.epsilon)
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        out = synth.sample(args.rows)
    out = pd.DataFrame(out, columns=df.columns)
    out.to_csv(args.out, index=False)
    print(json.dumps({"fit_s": fit_s, "fit_cpu_s": fit_cpu, "spent": args.epsilon}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
