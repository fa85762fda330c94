"""Exported files: formula cells neutralised, private modes."""

from __future__ import annotations

import stat

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from synthdata.io.files import is_formula, neutralize_formulas, private_dir, write_table


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_formula_cells_get_a_quote_and_numbers_do_not() -> None:
    df = pd.DataFrame({
        "text": ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-1+1", "@SUM(A1)",
                 "\tTAB", "\rCR", "plain", None, "a|b!c", "'=already"],
        "num": [-1.5, -2.0, 3.0, -4.0, 5.0, -6.0, 7.0, np.nan, -9.0, 10.0],
        "int": np.arange(-5, 5),
        "cat": pd.Series(["-x", "ok"] * 5, dtype="string")})
    out = neutralize_formulas(df)
    assert out["text"].tolist() == [
        "'=HYPERLINK(\"http://evil\",\"x\")", "'+cmd|' /C calc'!A0", "'-1+1", "'@SUM(A1)",
        "'\tTAB", "'\rCR", "plain", None, "'a|b!c", "'=already"]
    assert out["num"].equals(df["num"]) and out["int"].equals(df["int"])
    assert out["cat"].tolist() == ["'-x", "ok"] * 5
    assert df["text"].iloc[0].startswith("=")  # the input is not modified
    clean = pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})
    assert neutralize_formulas(clean) is clean


def test_a_quoted_dde_lookalike_is_not_quoted_again() -> None:
    # found by hypothesis: "'!|" holds "|" and "!" and was quoted on every pass
    assert neutralize_formulas(pd.DataFrame({"v": ["!|", "'!|"]}))["v"].tolist() == ["'!|", "'!|"]
    assert not is_formula("'!|") and is_formula("!|") and not is_formula("'=1+1")


@given(st.lists(st.text(max_size=12), min_size=1, max_size=20))
def test_no_cell_a_spreadsheet_would_run_survives(values) -> None:
    out = neutralize_formulas(pd.DataFrame({"v": values}))["v"].tolist()
    for before, after in zip(values, out):
        assert not is_formula(after) or after.startswith("'")
        assert after in (before, "'" + before)
    assert neutralize_formulas(pd.DataFrame({"v": out}))["v"].tolist() == out  # idempotent


def test_write_table_neutralises_csv_by_default_and_is_private(tmp_path) -> None:
    df = pd.DataFrame({"note": ["=1+1", "ok"], "x": [-1, 2]})
    path = write_table(df, tmp_path / "a.csv")
    assert path.read_text().splitlines() == ["note,x", "'=1+1,-1", "ok,2"]
    assert _mode(path) == 0o600
    raw = write_table(df, tmp_path / "b.csv", neutralize=False)
    assert raw.read_text().splitlines()[1] == "=1+1,-1"


def test_private_dir_creates_0700_and_leaves_existing_parents(tmp_path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    made = private_dir(shared / "a" / "b")
    assert _mode(made) == 0o700 and _mode(shared / "a") == 0o700
    assert _mode(shared) == 0o755
    assert private_dir(made) == made  # exists: fine
