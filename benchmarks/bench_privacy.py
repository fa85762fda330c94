"""Utility against ε for the generators that support differential privacy.

For each dataset (70/30 split, split seed 0, leak columns and the primary key dropped) and
each ε in {1, 3, 10, ∞}, fit every DP-capable generator with 3 generator seeds and score
the synthetic table with ``benchmarks/_common.evaluate`` (the same functions as the tabular
benchmark): TSTR / TRTR ROC AUC, detection AUC, mean column distance, pair difference.
ε = ∞ is the non-private fit. Fit time is wall and process-CPU seconds of ``gen.fit``; the
DP overhead is the DP fit time over the non-private fit of the *same model* (for the GMM:
one Gaussian copula, ``n_components=1``, which is what DP-GMM fits by default).

Run (a few minutes for the GMM on 2 cores)::

    .venv/bin/python benchmarks/bench_privacy.py --out benchmarks/results/privacy.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

EPSILONS = (1.0, 3.0, 10.0, math.inf)
SEEDS = (0, 1, 2)
# name -> (registry kind, params); "gmm[k=4]" is DP-EM with 4 components (8 iterations)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gmm": ("gmm", {}),
    "gmm[k=1]": ("gmm", {"n_components": 1}),
    "gmm[k=4]": ("gmm", {"n_components": 4}),
    "gmm+grid": ("gmm", {}),
    "vae": ("vae", {"epochs": 30}),
    "ctgan": ("ctgan", {"epochs": 20}),
    # marginal-based (docs/marginal.md); "declared": precision and sign declared public
    "aim": ("aim", {"declared": True}),
    "mst": ("aim", {"mode": "mst", "declared": True}),
}
# DP overhead reference: the non-private fit of the same model at the same epochs
REFERENCE = {"gmm": "gmm[k=1]", "gmm[k=1]": "gmm[k=1]", "gmm[k=4]": "gmm[k=1]",
             "gmm+grid": "gmm[k=1]", "vae": "vae", "ctgan": "ctgan", "aim": "aim", "mst": "mst"}


def _fit(kind: str, params: dict[str, Any], train: pd.DataFrame, epsilon: float,
         seed: int) -> tuple[Any, float, float]:
    import synthdata as sd
    from synthdata.privacy import DPConfig, PrivacyLedger

    params = dict(params)
    schema = sd.Schema.infer(train, name="train")
    if params.pop("declared", False):
        schema = declare_precision_and_sign(train, schema)
    privacy = None if math.isinf(epsilon) else DPConfig(epsilon=epsilon)
    gen = sd.make_generator(kind, schema, privacy=privacy, seed=seed, **params)
    ledger = PrivacyLedger.from_config(privacy, n_rows=len(train))
    t0, c0 = time.perf_counter(), time.process_time()
    gen.fit(train, ledger=ledger)
    return gen, time.perf_counter() - t0, time.process_time() - c0


def declare_precision_and_sign(train: pd.DataFrame, schema: Any) -> Any:
    """The schema a custodian would declare: each continuous column's recording precision
    (decimals that 99.9 % of values fit) and, for numbers that are never negative, a public
    lower bound 0 (upper bound left to DP). Read here from the data, as the what-if
    ``public_grid`` does, but the run then treats them as declared (public on the ledger)."""
    import dataclasses

    cols = []
    for col in schema.columns:
        if col.kind.value in ("continuous", "integer"):
            v = train[col.name].dropna().to_numpy(dtype=float)
            if col.kind.value == "continuous":
                tol = 1e-9 * np.maximum(1.0, np.abs(v))
                dec = next((d for d in range(7)
                            if np.mean(np.abs(np.round(v, d) - v) <= tol) >= 0.999), None)
                col = dataclasses.replace(col, precision=dec)
            nonneg = bool(v.size) and bool((v >= 0).all())
            col = dataclasses.replace(col, min=0 if nonneg else None, max=None, public=nonneg)
        cols.append(col)
    return schema.replace_columns(cols)


def public_grid(train: pd.DataFrame, synth: pd.DataFrame) -> pd.DataFrame:
    """Round each numeric column to the decimals the real column is recorded with and
    clip it at 0 when the real column is non-negative: a what-if in which the recording
    precision and the sign are public knowledge (read here from the data, not on the ledger;
    a schema would have to declare them)."""
    out = synth.copy()
    for col in train.columns:
        s = train[col]
        if not pd.api.types.is_float_dtype(s) or col not in out:
            continue
        v = s.dropna().to_numpy()
        decimals = next((d for d in range(7) if np.allclose(v, np.round(v, d), atol=1e-9)), None)
        if decimals is not None:
            out[col] = out[col].round(decimals)
        if (v >= 0).all():
            out[col] = out[col].clip(lower=0.0)
    return out


def dp_available(kind: str, train: pd.DataFrame) -> str | None:
    """None if ``kind`` fits under DP, else the reason (tried on 200 rows, ε=3)."""
    try:
        _fit(kind, {"epochs": 1} if kind in ("vae", "ctgan") else {}, train.iloc[:200], 3.0, 0)
    except Exception as err:  # noqa: BLE001 - any failure means "not available"
        return f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return None


def run(datasets: list[str], variants: list[str], seeds: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in datasets:
        spec = _common.dataset_spec(name)
        df = _common.load_dataset(spec)
        train, holdout = _common.split(df, seed=0)
        trtr = None
        rows: list[dict[str, Any]] = []
        unavailable: dict[str, str] = {}
        for variant in variants:
            kind, params = VARIANTS[variant]
            reason = dp_available(kind, train)
            if reason is not None:
                unavailable[variant] = reason
                print(f"[{name}] {variant}: DP not available ({reason})", flush=True)
                continue
            for eps in EPSILONS:
                if variant in ("gmm[k=4]", "gmm+grid") and math.isinf(eps):
                    continue  # non-private references: the default and the same-model fit
                if variant == "gmm[k=1]" and not math.isinf(eps):
                    continue  # identical to the DP default "gmm"
                for seed in seeds:
                    gen, wall, cpu = _fit(kind, params, train, eps, seed)
                    synth = gen.sample(len(train), seed=seed)
                    if variant == "gmm+grid":
                        synth = public_grid(train, synth)
                    spent = gen.ledger_.spent()[0] if not math.isinf(eps) else math.inf
                    m = _common.evaluate(train, holdout, synth, target=spec.target,
                                         task=spec.task, seed=seed, trtr=trtr)
                    trtr = m.get("trtr", trtr)
                    rows.append({"variant": variant, "epsilon": eps, "seed": seed,
                                 "fit_s": wall, "fit_cpu_s": cpu, "spent": spent, **m})
                    print(f"[{name}] {variant} eps={eps:g} seed={seed}: tstr={m.get('tstr'):.3f}"
                          f" detect={m['detect_auc']:.3f} col={m['col_dist']:.4f} "
                          f"fit={wall:.2f}s spent={spent:.4g}", flush=True)
        out[name] = {"spec": spec, "n_train": len(train), "n_holdout": len(holdout),
                     "rows": pd.DataFrame(rows), "unavailable": unavailable}
    return out


def _ms(values: pd.Series, digits: int) -> str:
    v = values.dropna().to_numpy(dtype=float)
    if not v.size:
        return "–"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def markdown(results: dict[str, Any], command: str, seeds: tuple[int, ...],
             started: dt.datetime, load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    import synthdata

    info = _common.machine_info()
    lines = [
        "# Privacy benchmark: utility against ε",
        "",
        f"- command: `{command}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, Python "
        f"{info['python']}; load average {', '.join(f'{x:.1f}' for x in load[0])} at start, "
        f"{', '.join(f'{x:.1f}' for x in load[1])} at end (shared machine: fit CPU s is the "
        "steadier time)",
        f"- synthdata {getattr(synthdata, '__version__', '?')}; split seed 0 (70/30); "
        f"generator seeds {', '.join(map(str, seeds))}; metric seed = generator seed; "
        "numbers are mean ± sd over the seeds; synthetic rows = train rows",
        "- ε = ∞ is the non-private fit; DP runs use `DPConfig(epsilon=ε)` (δ from the row "
        "count, preprocessing share 0.1, nothing declared public: bounds, quantile knots, "
        "category sets and missing rates are DP estimates); `spent ε` is the ledger total "
        "(always ≤ ε)",
        "- metrics (benchmarks/_common.py): TSTR/TRTR = HistGradientBoosting trained on "
        "synthetic / real train, ROC AUC on the real holdout; detect AUC = classifier real "
        "holdout vs synthetic, 3-fold (0.5 = indistinguishable); col dist = mean KS / TV "
        "vs real train; pair diff = mean |Δ| pairwise association",
        "- variants: `gmm` = default (under DP: one Gaussian copula from one noisy release of "
        "its sufficient statistics; non-private: mixture with k by BIC); `gmm[k=1]` = the "
        "non-private copula (the same model as DP `gmm`, the reference for DP overhead); "
        "`gmm[k=4]` = DP-EM with 4 components and 8 noisy iterations; `gmm+grid` = DP "
        "`gmm` with synthetic numbers rounded to the real recording precision and clipped at 0 for "
        "non-negative columns (a what-if: assumes precision and sign are public, not on the "
        "ledger)",
        "- DP overhead = DP fit time / non-private fit time of the same model at the same "
        "epochs (`gmm[k=1]` for the GMM variants, the ε = ∞ row of `vae`/`ctgan`), on CPU "
        "seconds of the whole `fit` (preprocessing, noise calibration and opacus import "
        "included)",
        "- `vae` (30 epochs) and `ctgan` (20 epochs): short runs to fit the time budget (defaults "
        "are 300); under DP, DP-SGD on the whole VAE / on the CTGAN critic (pac = 1, no "
        "gradient penalty, condition frequencies from noisy histograms with 10% of the "
        "training ε); the non-private CTGAN keeps pac = 10 and the gradient penalty",
        "",
    ]
    for name, res in results.items():
        spec, df = res["spec"], res["rows"]
        lines += [f"## {name}", "",
                  f"{res['n_train']} train / {res['n_holdout']} holdout rows; dropped: "
                  f"{', '.join(spec.drop) or 'none'}; target `{spec.target}`", ""]
        for variant, reason in res["unavailable"].items():
            lines.append(f"- `{variant}` under DP: **not available** ({reason})")
        if res["unavailable"]:
            lines.append("")
        if df.empty:
            continue
        def ref_cpu(variant: str) -> float:
            ref = df[(df.variant == REFERENCE[variant]) & np.isinf(df.epsilon)]
            return float(ref.fit_cpu_s.mean()) if len(ref) else float("nan")

        trtr = _ms(df.trtr, 3)
        lines += ["| generator | ε | spent ε | TSTR ROC AUC | TRTR ROC AUC | detect AUC ↓ | "
                  "col dist ↓ | pair diff ↓ | fit s | fit CPU s | DP overhead |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        order = {v: i for i, v in enumerate(VARIANTS)}
        for (variant, eps), g in sorted(df.groupby(["variant", "epsilon"]),
                                        key=lambda kv: (order[kv[0][0]], kv[0][1])):
            dp = not math.isinf(eps)
            rc = ref_cpu(variant)
            overhead = f"{g.fit_cpu_s.mean() / rc:.2f}×" if dp and rc > 0 else "–"
            lines.append(
                f"| {variant} | {'∞' if not dp else f'{eps:g}'} | "
                f"{_ms(g.spent, 3) if dp else '–'} | {_ms(g.tstr, 3)} | {trtr} | "
                f"{_ms(g.detect_auc, 3)} | {_ms(g.col_dist, 4)} | {_ms(g.pair_diff, 4)} | "
                f"{_ms(g.fit_s, 2)} | {_ms(g.fit_cpu_s, 2)} | {overhead} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="flchain,rotterdam")
    parser.add_argument("--generators", default="gmm,gmm[k=1],gmm[k=4],gmm+grid,vae,ctgan")
    parser.add_argument("--epsilons", default=None,
                        help="comma-separated ε values ('inf' = non-private); default "
                             + ",".join(f"{e:g}" for e in EPSILONS))
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="generator seeds 0..n-1")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    variants = [v.strip() for v in args.generators.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown generator(s) {unknown}; choose from {list(VARIANTS)}")
    seeds = tuple(range(args.seeds))
    if args.epsilons:
        globals()["EPSILONS"] = tuple(float(e) for e in args.epsilons.split(","))
    started = dt.datetime.now(dt.timezone.utc)
    load0 = os.getloadavg()
    with threadpool_limits(1):  # 2 shared cores: one BLAS/OpenMP thread per process
        try:
            results = run([d.strip() for d in args.datasets.split(",")], variants, seeds)
        except Exception:
            traceback.print_exc()
            return 1
    cmd = ".venv/bin/python benchmarks/bench_privacy.py " + shlex.join(argv or sys.argv[1:])
    text = markdown(results, cmd.strip(), seeds, started, (load0, os.getloadavg()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
