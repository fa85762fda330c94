"""The report's gate section: every rule with operator, threshold, value and verdict."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from synthdata.evaluate.gate import check_gate
from synthdata.evaluate.report import Report

RULES = {"exact_copy_excess": {"max": 0.005}, "mia_auc": {"max": 0.6},
         "shapes": {"min": 0.8}, "constraint_violations": {"equals": 0}}
METRICS = {"exact_copy_excess": 0.25, "mia_auc": 0.5123, "shapes": 0.7, "constraint_violations": 0}


class _GateRows(HTMLParser):
    """Collect the cells of ``tr.gate-rule`` rows and the banner text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.banner = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_banner = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "gate-rule" in (attrs.get("class") or ""):
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        if tag == "div" and attrs.get("id") == "gate-banner":
            self._in_banner = 1
        elif self._in_banner and tag == "div":
            self._in_banner += 1

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "div" and self._in_banner:
            self._in_banner -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_banner:
            self.banner += data


def _report(metrics=METRICS, rules=RULES) -> Report:
    report = Report(metrics=metrics, meta={"n_train": 10})
    report.add_section("gate", check_gate(metrics, rules).to_dict())
    return report


def parse(page: str) -> _GateRows:
    parser = _GateRows()
    parser.feed(page)
    return parser


def test_every_rule_is_a_row_with_threshold_value_and_verdict() -> None:
    parsed = parse(_report().to_html())
    by = {row[0]: row for row in parsed.rows}
    assert set(by) == set(RULES)
    assert by["exact_copy_excess"] == ["exact_copy_excess", "<=", "0.005", "0.25", "FAIL",
                                       "0.25 is not <= 0.005"]
    assert by["mia_auc"][1:5] == ["<=", "0.6", "0.5123", "pass"]
    assert by["shapes"][1:5] == [">=", "0.8", "0.7", "FAIL"]
    assert by["constraint_violations"][1:5] == ["==", "0", "0", "pass"]
    # the banner counts the failures it lists
    assert parsed.banner.startswith("FAILED — 2 of 4 gate rule(s) do not hold")
    assert "PASSED" not in parsed.banner


def test_banner_passed_not_judged_and_old_reports() -> None:
    ok = parse(_report(rules={"mia_auc": {"max": 0.6}}).to_html())
    assert ok.banner.startswith("PASSED — all 1 gate rule(s) hold")
    none = Report(metrics=METRICS, meta={})
    none.add_section("gate", check_gate(METRICS, "none").to_dict())
    page = none.to_html()
    assert "NOT JUDGED" in parse(page).banner and "PASSED" not in page
    assert "NOT JUDGED" in parse(Report(metrics=METRICS, meta={}).to_html()).banner
    # reports written before the key was "results" named the list "rules"
    old = Report(metrics=METRICS, meta={})
    old.add_section("gate", {"passed": False, "rules": [
        {"metric": "mia_auc", "rule": "<= 0.6", "value": 0.9, "passed": False,
         "reason": "0.9 is not <= 0.6"}]})
    parsed = parse(old.to_html())
    assert parsed.rows == [["mia_auc", "<=", "0.6", "0.9", "FAIL", "0.9 is not <= 0.6"]]
    assert parsed.banner.startswith("FAILED — 1 of 1 gate rule(s)")


def test_json_round_trip_keeps_the_rows() -> None:
    report = Report.from_json(_report().to_json())
    assert len(parse(report.to_html()).rows) == len(RULES)


@pytest.mark.slow
def test_gate_rows_render_in_headless_chromium(tmp_path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(_report().to_html())
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           page.as_uri()], check=True, timeout=120, capture_output=True,
                          text=True)
    parsed = parse(done.stdout)  # the DOM as the browser built it
    by = {row[0]: row for row in parsed.rows}
    assert set(by) == set(RULES)
    assert by["exact_copy_excess"][1:5] == ["<=", "0.005", "0.25", "FAIL"]
    assert by["shapes"][1:5] == [">=", "0.8", "0.7", "FAIL"]
    assert "FAILED — 2 of 4 gate rule(s)" in parsed.banner


def test_advisory_rules_of_a_dp_run_do_not_count_as_failures() -> None:
    from synthdata.evaluate.gate import dp_verdict

    metrics = {"epsilon": 2.9, "mia_auc": 0.9}
    verdict = dp_verdict(check_gate(metrics, {"epsilon": {"max": 3}, "mia_auc": {"max": 0.6}}))
    assert verdict.passed and verdict.failures == []
    report = Report(metrics=metrics, meta={})
    report.add_section("gate", verdict.to_dict())
    parsed = parse(report.to_html())
    assert parsed.banner.startswith("PASSED — the 1 deciding gate rule(s) hold; 1 advisory")
    by = {row[0]: row for row in parsed.rows}
    assert by["mia_auc"][4] == "FAIL (advisory (not private))" and by["epsilon"][4] == "pass"
    only = dp_verdict(check_gate(metrics, {"mia_auc": {"max": 0.6}}))
    report.add_section("gate", only.to_dict())
    assert "no rule decides under differential privacy" in parse(report.to_html()).banner
