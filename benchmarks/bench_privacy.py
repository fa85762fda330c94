"""Utility against ε for the generators that support differential privacy, with SmartNoise
MST as a peer in the same run.

For each dataset (70/30 split, split seed 0, leak columns and the primary key dropped) and
each ε in {0.5, 1, 3, 10, ∞}, fit every DP-capable generator with 3 generator seeds and score
the synthetic table with ``benchmarks/_common.evaluate`` (the same functions as the tabular
benchmark): TSTR / TRTR ROC AUC, detection AUC, mean column distance, pair difference.
ε = ∞ is the non-private fit. Fit time is wall and process-CPU seconds of ``gen.fit``; the
DP overhead is the DP fit time over the non-private fit of the *same model* (for the GMM:
one Gaussian copula, ``n_components=1``, which is what DP-GMM fits by default).

Declarations: the ``gmm`` variants fit on a *declared* schema, the draft of
``synthdata.schema.public.draft_declared_schema`` (kinds, nullability, recording precision,
``min: 0`` marked public for non-negative numbers, the two values of boolean columns), i.e.
what a custodian would declare after reviewing ``synthdata schema infer --dp``;
``gmm[undeclared]`` is the same model on ``Schema.infer`` with nothing declared public (the
state before declarations: full-precision output, DP bounds). Every DP fit makes its own
DP count of the rows (ledger step ``data.count``).

The ``mst`` peer (SmartNoise MST 1.0.8) runs in its own interpreter, ``.venv-mst`` (it pins
opendp<0.15; synthdata needs 0.16), through ``benchmarks/_mst_peer.py``: the train table
goes out as CSV, the synthetic CSV comes back and is scored here by the same functions.

Run (the GMM takes seconds; MST minutes per fit on 2 cores)::

    make .venv-mst/.installed
    .venv/bin/python benchmarks/bench_privacy.py --out benchmarks/results/privacy.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

EPSILONS = (0.5, 1.0, 3.0, 10.0, math.inf)
SEEDS = (0, 1, 2)
ROOT = Path(__file__).resolve().parents[1]
MST_PYTHON = ROOT / ".venv-mst" / "bin" / "python"
# name -> (registry kind or "mst" for the peer, params); "gmm[k=4]" is DP-EM with 4
# components (8 iterations); the "declared" flag picks the schema (see the module doc)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gmm": ("gmm", {}),
    "gmm[undeclared]": ("gmm", {"declared": False}),
    "gmm[k=1]": ("gmm", {"n_components": 1}),
    "gmm[k=4]": ("gmm", {"n_components": 4}),
    "vae": ("vae", {"epochs": 30}),
    "ctgan": ("ctgan", {"epochs": 20}),
    "mst": ("mst", {}),
    # marginal-based (docs/marginal.md); "aim[mst]" is its spanning-tree mode, not the peer
    "aim": ("aim", {}),
    "aim[mst]": ("aim", {"mode": "mst"}),
    # the same without the dataset's declared rules (RULES): what the rules are worth
    "aim[no rules]": ("aim", {"rules": False}),
    "gmm[no rules]": ("gmm", {"rules": False}),
}
# DP overhead reference: the non-private fit of the same model at the same epochs
REFERENCE = {"gmm": "gmm[k=1]", "gmm[undeclared]": "gmm[k=1]", "gmm[k=1]": "gmm[k=1]",
             "gmm[k=4]": "gmm[k=1]", "vae": "vae", "ctgan": "ctgan", "mst": "gmm[k=1]",
             "aim": "aim", "aim[mst]": "aim[mst]", "aim[no rules]": "aim",
             "gmm[no rules]": "gmm[k=1]"}
# Rules a custodian declares from domain knowledge (public: no data read, nothing charged),
# added to the declared schema of every synthdata generator (not MST, which has no rules):
# telco: an add-on service exists only with internet service, extra lines only with phone
# service (conditionals, repaired on output: to "No internet service" / "No phone service",
# or to "No" where the service exists -- the first value of the `in` list), and a total charge accrues as
# tenure × monthly charge (``proportional``: the model learns the ratio, not the total).
_ADDONS = ("online_security", "online_backup", "device_protection", "tech_support",
           "streaming_tv", "streaming_movies")
RULES: dict[str, list[dict[str, Any]]] = {
    "telco_churn": [
        {"kind": "proportional", "column": "total_charges",
         "factors": ["tenure", "monthly_charges"]},
        *({"kind": "conditional", "if": 'internet_service == "No"',
           "then": f'{a} == "No internet service"'} for a in _ADDONS),
        *({"kind": "conditional", "if": 'internet_service != "No"',
           "then": f'{a} in ["No", "Yes"]'} for a in _ADDONS),
        {"kind": "conditional", "if": "phone_service == 0",
         "then": 'multiple_lines == "No phone service"'},
        {"kind": "conditional", "if": "phone_service == 1",
         "then": 'multiple_lines in ["No", "Yes"]'},
    ],
}
# variants that run only under DP (their non-private reference is another row)
DP_ONLY = {"gmm[undeclared]", "gmm[k=4]", "mst"}


def declared(train: pd.DataFrame, rules: list[dict[str, Any]] | None = None) -> Any:
    """The declared schema of the benchmark: the reviewed draft (see the module doc), plus
    the dataset's declared ``rules`` (RULES)."""
    from synthdata.schema.public import declared_dict, declared_schema, draft_declared_schema

    draft = declared_dict(draft_declared_schema(train, name="train"))
    if rules:
        draft["constraints"] = [*draft.get("constraints", []), *rules]
    return declared_schema(draft, list(train.columns), name="train")


def _fit(kind: str, params: dict[str, Any], train: pd.DataFrame, epsilon: float,
         seed: int, rules: list[dict[str, Any]] | None = None) -> tuple[Any, float, float]:
    import synthdata as sd
    from synthdata.privacy import DPConfig

    params = dict(params)
    rules = rules if params.pop("rules", True) else None
    schema = declared(train, rules) if params.pop("declared", True) else \
        sd.Schema.infer(train, name="train")
    privacy = None if math.isinf(epsilon) else DPConfig(epsilon=epsilon)
    gen = sd.make_generator(kind, schema, privacy=privacy, seed=seed, **params)
    t0, c0 = time.perf_counter(), time.process_time()
    gen.fit(train)  # under DP the generator makes the DP row count (data.count) itself
    return gen, time.perf_counter() - t0, time.process_time() - c0


def fit_mst(train: pd.DataFrame, epsilon: float, seed: int) -> tuple[pd.DataFrame, float, float]:
    """SmartNoise MST in .venv-mst: (synthetic table, fit wall s, fit CPU s)."""
    if not MST_PYTHON.exists():
        raise RuntimeError(f"{MST_PYTHON} is missing; run `make .venv-mst/.installed`")
    schema = declared(train)
    cats = [c.name for c in schema.columns if c.kind.is_discrete]
    conts = [c.name for c in schema.columns if not c.kind.is_discrete]
    delta = 10.0 ** math.floor(math.log10(min(1e-5, 1 / (10 * len(train)))))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "train.csv", Path(tmp) / "synth.csv"
        train.to_csv(src, index=False)
        cmd = [str(MST_PYTHON), str(ROOT / "benchmarks" / "_mst_peer.py"), str(src), str(dst),
               "--epsilon", str(epsilon), "--delta", str(delta), "--seed", str(seed),
               "--rows", str(len(train)), "--categorical", ",".join(cats),
               "--continuous", ",".join(conts)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"MST failed: {proc.stderr.strip().splitlines()[-1:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        synth = pd.read_csv(dst)
    for col in train.columns:  # CSV round trip: give numbers back the real column's type
        if pd.api.types.is_numeric_dtype(train[col]) and col in synth:
            synth[col] = pd.to_numeric(synth[col], errors="coerce")
    return synth, float(info["fit_s"]), float(info["fit_cpu_s"])


def dp_available(kind: str, train: pd.DataFrame) -> str | None:
    """None if ``kind`` fits under DP, else the reason (tried on 200 rows, ε=3)."""
    if kind == "mst":
        return None if MST_PYTHON.exists() else f"{MST_PYTHON} missing (make .venv-mst/.installed)"
    try:
        _fit(kind, {"epochs": 1} if kind in ("vae", "ctgan") else {}, train.iloc[:200], 3.0, 0)
    except Exception as err:  # noqa: BLE001 - any failure means "not available"
        return f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return None


def run(datasets: list[str], variants: list[str], seeds: tuple[int, ...],
        epsilons: tuple[float, ...] = EPSILONS, *, peer_epsilons: tuple[float, ...] | None = None,
        peer_seeds: tuple[int, ...] | None = None,
        checkpoint: Any = None) -> dict[str, Any]:
    """Fit and score every (dataset, variant, ε, seed); ``checkpoint(results)`` is called
    after each row (the markdown is rewritten, so a run cut short keeps what it measured).
    ``peer_epsilons`` / ``peer_seeds`` restrict the slow MST peer."""
    out: dict[str, Any] = {}
    for name in datasets:
        spec = _common.dataset_spec(name)
        df = _common.load_dataset(spec)
        train, holdout = _common.split(df, seed=0)
        trtr = None
        rows: list[dict[str, Any]] = []
        unavailable: dict[str, str] = {}
        out[name] = {"spec": spec, "n_train": len(train), "n_holdout": len(holdout),
                     "rows": pd.DataFrame(rows), "unavailable": unavailable}
        for variant in variants:
            kind, params = VARIANTS[variant]
            reason = dp_available(kind, train)
            if reason is not None:
                unavailable[variant] = reason
                print(f"[{name}] {variant}: DP not available ({reason})", flush=True)
                continue
            for eps in epsilons:
                if variant in DP_ONLY and math.isinf(eps):
                    continue  # non-private references: the default and the same-model fit
                if variant == "gmm[k=1]" and not math.isinf(eps):
                    continue  # identical to the DP default "gmm"
                if params.get("rules") is False and name not in RULES:
                    continue  # no rules declared: identical to the variant with rules
                if kind == "mst" and peer_epsilons is not None and eps not in peer_epsilons:
                    continue
                for seed in (peer_seeds if kind == "mst" and peer_seeds is not None else seeds):
                    if kind == "mst":
                        try:
                            synth, wall, cpu = fit_mst(train, eps, seed)
                        except RuntimeError as err:  # the peer failing is a result, not a crash
                            unavailable[variant] = str(err)[:200]
                            print(f"[{name}] {variant} eps={eps:g}: {err}", flush=True)
                            continue
                        spent = eps  # MST's own accounting (zCDP at its δ), not our ledger
                    else:
                        gen, wall, cpu = _fit(kind, params, train, eps, seed,
                                              RULES.get(name))
                        synth = gen.sample(len(train), seed=seed)
                        spent = gen.ledger_.spent()[0] if not math.isinf(eps) else math.inf
                    m = _common.evaluate(train, holdout, synth, target=spec.target,
                                         task=spec.task, seed=seed, trtr=trtr)
                    trtr = m.get("trtr", trtr)
                    rows.append({"variant": variant, "epsilon": eps, "seed": seed,
                                 "fit_s": wall, "fit_cpu_s": cpu, "spent": spent,
                                 "load1": os.getloadavg()[0], **m})
                    out[name]["rows"] = pd.DataFrame(rows)
                    print(f"[{name}] {variant} eps={eps:g} seed={seed}: tstr={m.get('tstr'):.3f}"
                          f" detect={m['detect_auc']:.3f} col={m['col_dist']:.4f} "
                          f"fit={wall:.2f}s spent={spent:.4g}", flush=True)
                    if checkpoint is not None:
                        checkpoint(out)
    return out


# the summary's systems; "aim[v0]" only exists in merged runs that measured aim before its
# selection score had the chance term (benchmarks/results/privacy_grid.md)
SUMMARY = ("aim", "aim[v0]", "gmm", "mst")


def summary(results: dict[str, Any]) -> list[str]:
    """One table over every dataset × ε: TSTR and detection AUC of aim / gmm / MST (mean
    over the seeds that finished, their count in brackets when fewer than the others)."""
    present = {v for res in results.values() if not res["rows"].empty
               for v in res["rows"].variant.unique()}
    systems = [v for v in SUMMARY if v in present]
    lines = ["## Summary: " + " / ".join(systems), "",
             "TSTR ROC AUC (higher is better) and detection AUC (0.5 = indistinguishable); "
             "`n=` is the number of seeds behind a cell when it is not 3; – = not run or "
             "not finished; ε = ∞ is non-private (MST has none).", "",
             "| dataset | ε | TRTR | " + " | ".join(f"TSTR {v}" for v in systems) + " | "
             + " | ".join(f"detect {v}" for v in systems) + " |",
             "|---|---:|---:|" + "---:|" * (2 * len(systems))]
    for name, res in results.items():
        df = res["rows"]
        if df.empty:
            continue
        trtr = f"{df.trtr.dropna().mean():.3f}" if "trtr" in df and df.trtr.notna().any() \
            else "–"
        for eps in sorted(df.epsilon.unique()):
            cells: dict[str, list[str]] = {"tstr": [], "detect_auc": []}
            for metric in cells:
                for variant in systems:
                    g = df[(df.variant == variant) & (df.epsilon == eps)][metric].dropna()
                    text = "–" if g.empty else f"{g.mean():.3f}"
                    if 0 < len(g) < 3:
                        text += f" (n={len(g)})"
                    cells[metric].append(text)
            lines.append(f"| {name} | {'∞' if math.isinf(eps) else f'{eps:g}'} | {trtr} | "
                         + " | ".join(cells["tstr"] + cells["detect_auc"]) + " |")
    return [*lines, ""]


def _rule_text(rule: dict[str, Any]) -> str:
    if rule["kind"] == "proportional":
        return f"`{rule['column']} ∝ {' × '.join(rule['factors'])}` (proportional)"
    if rule["kind"] == "conditional":
        return f"`if {rule['if']} then {rule['then']}`"
    return f"`{rule}`"


def _ms(values: pd.Series, digits: int) -> str:
    v = values.dropna().to_numpy(dtype=float)
    if not v.size:
        return "–"
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _load_line(results: dict[str, Any]) -> str:
    """Min / median / max of the 1-minute load average sampled after every fit."""
    loads = [x for res in results.values() if "load1" in res["rows"]
             for x in res["rows"]["load1"].dropna()]
    if not loads:
        return ""
    q = np.quantile(loads, [0.0, 0.5, 1.0])
    return (f"; 1-minute load average after each fit: min {q[0]:.1f}, median {q[1]:.1f}, "
            f"max {q[2]:.1f}")


def markdown(results: dict[str, Any], command: str | list[str], seeds: tuple[int, ...],
             started: dt.datetime, load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    import synthdata

    info = _common.machine_info()
    commands = [command] if isinstance(command, str) else command
    lines = [
        "# Privacy benchmark: utility against ε",
        "",
        *(f"- command: `{c}`" for c in commands),
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, Python "
        f"{info['python']}; load average {', '.join(f'{x:.1f}' for x in load[0])} at start, "
        f"{', '.join(f'{x:.1f}' for x in load[1])} at end{_load_line(results)} (shared "
        "machine: fit CPU s is the steadier time)",
        f"- synthdata {getattr(synthdata, '__version__', '?')}; split seed 0 (70/30); "
        f"generator seeds {', '.join(map(str, seeds))}; metric seed = generator seed; "
        "numbers are mean ± sd over the seeds; synthetic rows = train rows",
        "- ε = ∞ is the non-private fit; DP runs use `DPConfig(epsilon=ε)` (one DP row count "
        "`data.count` first, δ from the noisy count, preprocessing share 0.1; what is not "
        "declared -- upper bounds, quantile knots, category sets, missing rates -- are DP "
        "estimates); `spent ε` is the ledger total (always ≤ ε)",
        "- declared schema (`gmm`, `gmm[k=*]`, `vae`, `ctgan`; MST gets its column kinds "
        "from it): the reviewed draft of `synthdata schema infer --dp` "
        "(`draft_declared_schema`): kinds, nullability, recording precision of continuous "
        "columns, `min: 0` marked public for non-negative numeric columns, the two values of "
        "boolean columns; read off the train table as a custodian's declaration would be "
        "(public knowledge by assumption, not on the ledger)",
        "- metrics (benchmarks/_common.py): TSTR/TRTR = HistGradientBoosting trained on "
        "synthetic / real train, ROC AUC on the real holdout; detect AUC = classifier real "
        "holdout vs synthetic, 3-fold (0.5 = indistinguishable); col dist = mean KS / TV "
        "vs real train; pair diff = mean |Δ| pairwise association",
        "- declared rules (`RULES`, public domain knowledge, no data read, nothing "
        "charged; every synthdata generator, not MST): "
        + "; ".join(f"{ds}: " + ", ".join(_rule_text(r) for r in rules)
                    for ds, rules in RULES.items() if ds in results) + "; `[no rules]` "
        "variants fit without them",
        "- variants: `gmm` = default (under DP: one Gaussian copula from one noisy release of "
        "its sufficient statistics; non-private: mixture with k by BIC); `gmm[undeclared]` = "
        "DP `gmm` on `Schema.infer` with nothing declared (full-precision output, DP bounds: "
        "the behaviour without declarations); `gmm[k=1]` = the non-private copula (the same "
        "model as DP `gmm`, the reference for DP overhead); `gmm[k=4]` = DP-EM with 4 "
        "components and 8 noisy iterations; `mst` = SmartNoise MST 1.0.8 (`.venv-mst`, "
        "`benchmarks/_mst_peer.py`; its own DP binning with 10% of ε, δ = min(1e-5, 1/(10n)) "
        "rounded down; spent ε is its own accounting; its DP overhead is against `gmm[k=1]`)",
        "- DP overhead = DP fit time / non-private fit time of the same model at the same "
        "epochs (`gmm[k=1]` for the GMM variants, the ε = ∞ row of `vae`/`ctgan`), on CPU "
        "seconds of the whole `fit` (preprocessing, noise calibration and opacus import "
        "included)",
        "- `vae` (30 epochs) and `ctgan` (20 epochs): short runs to fit the time budget (defaults "
        "are 300); under DP, DP-SGD on the whole VAE / on the CTGAN critic (pac = 1, no "
        "gradient penalty, condition frequencies from noisy histograms with 10% of the "
        "training ε); the non-private CTGAN keeps pac = 10 and the gradient penalty",
        "",
        *summary(results),
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
            ref = df[(df.variant == REFERENCE.get(variant, variant)) & np.isinf(df.epsilon)]
            return float(ref.fit_cpu_s.mean()) if len(ref) else float("nan")

        trtr = _ms(df.trtr, 3)
        lines += ["| generator | ε | spent ε | TSTR ROC AUC | TRTR ROC AUC | detect AUC ↓ | "
                  "col dist ↓ | pair diff ↓ | fit s | fit CPU s | DP overhead |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        order = {v: i for i, v in enumerate(VARIANTS)}
        for (variant, eps), g in sorted(df.groupby(["variant", "epsilon"]),
                                        key=lambda kv: (order.get(kv[0][0], len(order)),
                                                        kv[0][0], kv[0][1])):
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


def to_json(results: dict[str, Any], run_info: dict[str, Any]) -> dict[str, Any]:
    """The results as plain JSON: ``run`` (command, times, load) and one object per dataset
    (rows as records)."""
    out: dict[str, Any] = {}
    for name, res in results.items():
        spec = res["spec"]
        rows = res["rows"].replace([np.inf], "inf").to_dict(orient="records")
        out[name] = {"spec": {"name": spec.name, "path": str(spec.path), "target": spec.target,
                              "task": spec.task, "drop": list(spec.drop)},
                     "n_train": res["n_train"], "n_holdout": res["n_holdout"],
                     "unavailable": dict(res["unavailable"]),
                     "rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                               for k, v in r.items()} for r in rows]}
    return {"run": run_info, "datasets": out}


def from_json(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge ``to_json`` outputs of several processes of one run (rows concatenated)."""
    out: dict[str, Any] = {}
    for part in parts:
        for name, res in part["datasets"].items():
            spec = _common.DatasetSpec(res["spec"]["name"], Path(res["spec"]["path"]),
                                       res["spec"]["target"], res["spec"]["task"],
                                       res["spec"]["drop"])
            rows = pd.DataFrame(res["rows"])
            if "epsilon" in rows:
                rows["epsilon"] = rows["epsilon"].replace("inf", math.inf).astype(float)
                rows["spent"] = pd.to_numeric(rows["spent"].replace("inf", math.inf))
            if name in out:
                out[name]["rows"] = pd.concat([out[name]["rows"], rows], ignore_index=True)
                out[name]["unavailable"].update(res["unavailable"])
            else:
                out[name] = {"spec": spec, "n_train": res["n_train"],
                             "n_holdout": res["n_holdout"], "rows": rows,
                             "unavailable": dict(res["unavailable"])}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="flchain,rotterdam,telco_churn,nafld")
    parser.add_argument("--generators", default="gmm,gmm[undeclared],gmm[k=1],gmm[k=4],aim,mst",
                        help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--epsilons", default=",".join(f"{e:g}" for e in EPSILONS),
                        help="comma-separated; inf = the non-private fit")
    parser.add_argument("--peer-epsilons", default=None,
                        help="ε values for the slow MST peer (default: all of --epsilons)")
    parser.add_argument("--peer-seeds", type=int, default=None,
                        help="seeds for the MST peer (default: --seeds)")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="generator seeds 0..n-1")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write")
    parser.add_argument("--json", type=Path, default=None, help="JSON file to write (rows)")
    parser.add_argument("--merge", default=None,
                        help="comma-separated JSON files of processes of one run: merge "
                        "them into --out/--json and exit (nothing is fitted)")
    args = parser.parse_args(argv)
    epsilons = tuple(float(e) for e in args.epsilons.split(",") if e.strip())
    peer_eps = None if args.peer_epsilons is None else \
        tuple(float(e) for e in args.peer_epsilons.split(",") if e.strip())
    peer_seeds = None if args.peer_seeds is None else tuple(range(args.peer_seeds))
    from threadpoolctl import threadpool_limits

    variants = [v.strip() for v in args.generators.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown generator(s) {unknown}; choose from {list(VARIANTS)}")
    seeds = tuple(range(args.seeds))
    started = dt.datetime.now(dt.timezone.utc)
    load0 = os.getloadavg()
    cmd = ".venv/bin/python benchmarks/bench_privacy.py " + shlex.join(argv or sys.argv[1:])

    def write(results: dict[str, Any], final: bool = False,
              commands: list[str] | None = None,
              span: tuple[dt.datetime, tuple[float, ...], tuple[float, ...]] | None = None) -> str:
        t0, l0, l1 = span or (started, load0, os.getloadavg())
        text = markdown(results, commands or cmd.strip(), seeds, t0, (l0, l1))
        if not final:
            text = "> PARTIAL: the run was still going when this was written.\n\n" + text
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            run_info = {"command": cmd.strip(), "started": started.isoformat(),
                        "load_start": list(load0), "load_end": list(os.getloadavg()),
                        "final": final}
            args.json.write_text(json.dumps(to_json(results, run_info), indent=1) + "\n")
        return text

    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge.split(",")]
        runs = [p["run"] for p in parts]
        first = min(runs, key=lambda r: r["started"])
        last = max(runs, key=lambda r: r["started"])
        write(from_json(parts), final=all(r["final"] for r in runs),
              commands=[r["command"] for r in runs] + [cmd.strip()],
              span=(dt.datetime.fromisoformat(first["started"]), tuple(first["load_start"]),
                    tuple(last["load_end"])))
        return 0

    with threadpool_limits(1):  # 2 shared cores: one BLAS/OpenMP thread per process
        try:
            results = run([d.strip() for d in args.datasets.split(",")], variants, seeds,
                          epsilons, peer_epsilons=peer_eps, peer_seeds=peer_seeds,
                          checkpoint=write)
        except Exception:
            traceback.print_exc()
            return 1
    text = write(results, final=True)
    print(f"wrote {args.out}" if args.out else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
