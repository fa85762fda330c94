"""The report page's patient-history section, and the page built from one renderer per
section (each function of _html.py within the house 80-line limit)."""

import ast
import inspect
import re

import numpy as np
import pandas as pd
import pytest

from synthdata.evaluate import _html
from synthdata.evaluate.history import evaluate_histories
from synthdata.pipeline.multitable import split_by_root
from synthdata.relational.schema import MultiTableSchema
from tests.medical.history_data import cohort, schema


def _broken(tables):
    """Believable rows, incoherent histories: the 'ever' flag shuffled across visits."""
    visits = tables["visits"].copy()
    visits["ever_diabetes"] = np.random.default_rng(0).permutation(
        visits["ever_diabetes"].to_numpy())
    return {**tables, "visits": visits}


@pytest.fixture(scope="module")
def history():
    ms = schema()
    train, hold = split_by_root(cohort(300, seed=1), ms, 0.4, 0)
    return evaluate_histories(train, _broken(train), ms, holdout=hold, target="death", seed=0)


def _page(history, **sections):
    return _html.render({"sections": {"history": {"note": "n", **history["tables"],
                                                  "warnings": history["warnings"]},
                                      **sections}})


def _section(page, anchor):
    start = page.index(f"<section id='{anchor}'>")
    return page[start:page.index("</section>", start)]


def test_history_section_shows_detection_tstr_rules_and_plots(history):
    page = _page(history)
    body = _section(page, "history")
    assert "<h2>Patient histories</h2>" in body and "<a href='#history'>" in page
    visits = history["tables"]["visits"]
    auc = visits["detection"]["auc"]
    assert f"Whole-patient detection AUC {_html._fmt(auc)}</b>" in body
    assert f"AUC <b>{_html._fmt(visits['tstr']['tstr_auc'])}</b>" in body
    assert "<code>patients.death</code>" in body
    # the rule table: the broken 'ever' flag, real 0 rows vs synthetic > 0 rows
    rule = next(r for r in visits["rules"] if r["rule"].startswith("ever_diabetes"))
    assert rule["real_rows"] == 0 and rule["synthetic_rows"] > 0
    row = re.search(r"<tr><td>ever_diabetes non-decreasing[^<]*</td>(.*?)</tr>", body)
    assert row is not None
    cells = re.findall(r"<td class='num'>([^<]*)</td>", row.group(1))
    assert cells[:4] == [str(rule["real_rows"]), str(rule["real_patients"]),
                         str(rule["synthetic_rows"]), str(rule["synthetic_patients"])]
    # rows-per-patient histogram, column marginals, pair scatter plots
    assert body.count("<img class='plot'") == 3
    assert "alt='rows of visits per patient, real vs synthetic'" in body
    counts = visits["rows_per_patient"]
    assert sum(counts["real"]) == pytest.approx(1, abs=1e-3)
    assert len(counts["edges"]) == len(counts["synthetic"]) + 1
    assert "joint distributions of the most correlated number pairs" in body
    # the pairs are bin shares over a grid, never rows of the real data
    pair = visits["pairs"][0]
    assert np.array(pair["real"]).shape == (20, 20)
    assert sum(map(sum, pair["real"])) == pytest.approx(1, abs=1e-3)
    assert len(pair["x_edges"]) == 21 and 0 <= pair["real_abs_correlation"] <= 1
    # no raw pair points dumped as a generic table
    assert "history" not in re.findall(r"<section id='s-([^']+)'>", page)


def test_history_section_is_marked_not_private_under_dp(history):
    label = "not private (internal QA, do not publish)"
    page = _page(history, release={"label": label, "not_private": ["history"]})
    assert f"<h2>Patient histories<span class='badge'>{label}</span></h2>" in page
    assert "<h2>Patient histories</h2>" not in page


def test_history_section_without_target_explains_missing_tstr():
    ms = schema()
    train, hold = split_by_root(cohort(200, seed=2), ms, 0.4, 0)
    out = evaluate_histories(train, train, ms, holdout=hold, seed=0)
    body = _section(_page(out), "history")
    assert "Per-patient TSTR not run" in body and "evaluate.target" in body


def _labs(n, seed):
    """Long-format labs (one row per measurement): a code column and a value column."""
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame({"pid": np.arange(1, n + 1), "age": rng.uniform(30, 80, n)})
    k = rng.integers(1, 6, n)
    pid = np.repeat(patients["pid"].to_numpy(), k)
    test = rng.choice(["hdl", "ldl", "a1c"], len(pid))
    value = np.where(test == "a1c", rng.normal(6, 1, len(pid)), rng.normal(100, 20, len(pid)))
    labs = pd.DataFrame({"pid": pid, "day": rng.integers(0, 900, len(pid)), "test": test,
                         "value": value.round(2)})
    return {"patients": patients, "labs": labs.drop_duplicates(["pid", "day"])}


LABS = {"version": 1, "name": "labs", "tables": {
    "patients": {"primary_key": "pid", "columns": [
        {"name": "pid", "kind": "id", "dtype": "int64"},
        {"name": "age", "kind": "continuous", "dtype": "float64"}]},
    "labs": {"primary_key": ["pid", "day"], "columns": [
        {"name": "pid", "kind": "id", "dtype": "int64"},
        {"name": "day", "kind": "integer", "dtype": "int64"},
        {"name": "test", "kind": "categorical", "dtype": "object"},
        {"name": "value", "kind": "continuous", "dtype": "float64"}]}},
    "foreign_keys": [{"child": "labs", "column": "pid", "parent": "patients",
                      "parent_column": "pid", "order_by": "day"}]}


def test_per_code_distributions_for_a_long_format_table():
    ms = MultiTableSchema.from_dict(LABS)
    real, synth = _labs(150, 0), _labs(150, 1)
    synth["labs"]["value"] *= 1.5            # every code's values shifted: KS well above 0
    out = evaluate_histories(real, synth, ms, seed=0)
    labs = out["tables"]["labs"]
    assert labs["code_column"] == "test"
    assert set(labs["per_code"]) == {"hdl", "ldl", "a1c"}
    body = _section(_page(out), "history")
    assert "Values per code of <code>test</code>" in body
    for code in ("hdl", "ldl", "a1c"):
        ks = labs["per_code"][code]["value"]["ks"]
        assert ks > 0.3
        assert f"<td>{code}</td>" in body and _html._fmt(ks) in body
    assert "alt='real vs synthetic distribution of every column'" in body
    # rows per patient, columns, the one number pair (day, value), values per code
    assert body.count("<img class='plot'") == 4
    assert "No within-patient rule is declared" in body


def test_no_function_of_the_report_page_is_over_80_lines():
    tree = ast.parse(inspect.getsource(_html))
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 80]
    assert long == []


def test_page_is_built_from_one_renderer_per_section():
    calls = []

    def extra(page, report):
        calls.append(report["marker"])
        page.section("extra", "Extra section", "<p>body</p>")

    _html.SECTION_RENDERERS.append(extra)
    try:
        page = _html.render({"marker": 7})
    finally:
        _html.SECTION_RENDERERS.remove(extra)
    assert calls == [7]
    assert "<section id='extra'><h2>Extra section</h2><p>body</p></section>" in page
    assert "<a href='#extra'>Extra section</a>" in page
    assert page.index("id='extra'") < page.index("<h2>Appendix</h2>")
