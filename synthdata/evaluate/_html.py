"""Render a report dict as one self-contained HTML page (inline CSS, 2x PNG plots).

Layout: a first screen that answers "may I share this, is it good enough" (gate verdict with
ε/δ and the unit for DP runs, quality score and grade, privacy level, warnings, metric tiles
judged against their thresholds, the gate table), then the evidence (columns, correlations,
bivariate views, detection/utility/coverage, leakage distributions, a PCA embedding,
re-identification risks, stage sections), then a collapsed appendix (validation, privacy
ledger, budget, manifest, timings). :func:`first_screen` is also the notebook view.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from synthdata.evaluate import plots
from synthdata.evaluate import score as scoring

# Every rule is scoped under .sdr so the notebook view does not restyle the notebook.
_CSS = """
.sdr{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330;
line-height:1.45;font-size:15px}
.sdr h1{font-size:1.55rem;margin:.5rem 0 .2rem}
.sdr h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid #d6dae2;
padding-bottom:.25rem}
.sdr h3{font-size:1rem;margin:1.1rem 0 .4rem}
.sdr .banner{padding:.75rem 1rem;border-radius:6px;font-weight:600;margin:.7rem 0}
.sdr .pass{background:#e3f5e8;border:1px solid #5bb974;color:#17502a}
.sdr .fail{background:#fde7e7;border:1px solid #e06666;color:#6d1414}
.sdr .none{background:#eef0f4;border:1px solid #b8bfcc;color:#333}
.sdr .banner ul{font-weight:400;margin:.4rem 0 0 1.1rem;padding:0}
.sdr .banner .dp{display:block;font-weight:400;margin-top:.3rem}
.sdr .scroll{overflow-x:auto;max-width:100%}
.sdr table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.86rem}
.sdr table.kv{width:auto;min-width:50%}
.sdr table.ledger td:last-child{min-width:20em}.sdr table.ledger td{font-size:.8rem}
.sdr th,.sdr td{border:1px solid #d6dae2;padding:.25rem .45rem;text-align:left;
vertical-align:top}
.sdr td{overflow-wrap:break-word}
.sdr th{background:#eceff4;white-space:nowrap;word-break:normal;overflow-wrap:normal}
.sdr td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sdr img.plot{max-width:100%;height:auto;display:block;margin:.5rem 0;background:#fff}
.sdr .muted{color:#5b6475;font-size:.86rem}
.sdr .ok{color:#17702f;font-weight:600}.sdr .bad{color:#b3261e;font-weight:600}
.sdr code{overflow-wrap:anywhere}
.sdr .answer{font-size:1.05rem;margin:.6rem 0}
.sdr .summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));
gap:.7rem;margin:.7rem 0}
.sdr .sum{background:#fff;border:1px solid #d6dae2;border-radius:8px;padding:.6rem .85rem}
.sdr .sum .k{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:#5b6475}
.sdr .sum .big{font-size:2rem;font-weight:700;line-height:1.15}
.sdr .sum .big small{font-size:1rem;font-weight:500;color:#5b6475}
.sdr .sum .why{font-size:.82rem;color:#3d4452}
.sdr .grade{display:inline-block;min-width:1.6em;text-align:center;border-radius:5px;
color:#fff;margin-left:.4rem;padding:0 .25em;font-size:1.6rem}
.sdr .g-A{background:#1e7d3a}.sdr .g-B{background:#4f9a2f}.sdr .g-C{background:#b88a00}
.sdr .g-D{background:#d0661b}.sdr .g-F{background:#b3261e}.sdr .g-\\?{background:#8a93a3}
.sdr .lvl-high{color:#1e7d3a}.sdr .lvl-medium{color:#b88a00}.sdr .lvl-low{color:#b3261e}
.sdr .lvl-unknown{color:#5b6475}
.sdr .st-passed{color:#1e7d3a}.sdr .st-failed{color:#b3261e}.sdr .st-not_judged{color:#5b6475}
.sdr .warn{background:#fff6db;border:1px solid #e0b400;border-radius:6px;padding:.6rem .9rem;
margin:.6rem 0;color:#4d3b00}
.sdr .qa{color:#b3261e;font-weight:600}
.sdr .badge{display:inline-block;font-size:.72rem;font-weight:600;color:#b3261e;
border:1px solid #e06666;border-radius:4px;padding:0 .35rem;margin-left:.5rem;
vertical-align:middle;text-transform:none;letter-spacing:0}
.sdr .tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.55rem}
.sdr .tile{background:#fff;border:1px solid #d6dae2;border-left:5px solid #8a93a3;
border-radius:6px;padding:.45rem .65rem}
.sdr .tile.t-pass{border-left-color:#2f9e4f;background:#f6fcf7}
.sdr .tile.t-fail{border-left-color:#c62828;background:#fff5f5}
.sdr .tile.t-missing{border-left-style:dashed;opacity:.8}
.sdr .tile.t-warn{border-left-color:#e0b400;background:#fffbea}.sdr .tile.t-warn .v{color:#7a5c00}
.sdr .tile .l{font-size:.84rem;font-weight:600}
.sdr .tile .v{font-size:1.3rem;font-weight:700}
.sdr .tile .t{font-size:.75rem;color:#5b6475}
.sdr .tile .x{font-size:.78rem;color:#3d4452;margin-top:.15rem}
.sdr .tile.t-fail .v{color:#b3261e}.sdr .tile.t-pass .v{color:#17502a}
.sdr nav.toc{background:#fff;border:1px solid #d6dae2;border-radius:6px;padding:.35rem .7rem;
font-size:.85rem;margin:.5rem 0}
.sdr nav.toc a{color:#2a5599;text-decoration:none;margin-right:.9rem;white-space:nowrap}
.sdr details{background:#fff;border:1px solid #d6dae2;border-radius:6px;padding:.4rem .8rem;
margin:.6rem 0}
.sdr details>summary{cursor:pointer;font-weight:600}
.sdr details.muted{border:none;background:none;padding:0;margin:0 0 .4rem}
.sdr tr.gate-rule.fail td{background:#fdf1f1}.sdr tr.gate-rule.pass td{background:#f3fbf5}
"""
_PAGE_CSS = """
body{margin:0;background:#f6f7f9}
main.sdr{max-width:1100px;margin:0 auto;padding:1rem 1.2rem 3rem;box-sizing:border-box}
"""

# sections rendered by a dedicated block (the rest are shown generically)
_KNOWN_SECTIONS = ("gate", "validation", "privacy", "timings", "deidentification", "survival",
                   "rare_categories", "manifest", "budget", "release", "history")
_LABEL_KEY = "privacy_label"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return html.escape(str(value))


def _e(text: Any) -> str:
    return html.escape(str(text))


def _table(rows: Sequence[Mapping[str, Any]], columns: list[str] | None = None,
           headers: Mapping[str, str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r if k != _LABEL_KEY))
    head = "".join(f"<th>{_e((headers or {}).get(c, c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if isinstance(v, (dict, list)):
                cells.append(f"<td>{_generic(v)}</td>")
            else:
                cls = " class='num'" if isinstance(v, (int, float)) and not isinstance(v, bool) \
                    else ""
                cells.append(f"<td{cls}>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def _kv(mapping: Mapping[str, Any]) -> str:
    return _table([{"key": k, "value": v} for k, v in mapping.items() if k != _LABEL_KEY],
                  ["key", "value"]).replace("<table>", "<table class='kv'>", 1)


def _generic(value: Any, depth: int = 0) -> str:
    """Render any JSON-like value: mappings as key/value tables, record lists as tables."""
    if isinstance(value, Mapping):
        if depth > 3:
            return f"<code>{_e(value)}</code>"
        rows = []
        for k, v in value.items():
            if k == _LABEL_KEY:
                continue
            rendered = _generic(v, depth + 1) if isinstance(v, (Mapping, list)) else _fmt(v)
            rows.append(f"<tr><th>{_e(k)}</th><td>{rendered}</td></tr>")
        return (f"<div class='scroll'><table>{''.join(rows)}</table></div>" if rows
                else "<p class='muted'>empty</p>")
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            return _table(value)
        if len(value) > 50:
            return f"<span class='muted'>{len(value)} values</span>"
        return _e(", ".join(_fmt(v) for v in value))
    return _fmt(value)


class _Page:
    """Sections in order, each with an anchor; the table of contents is built from them."""

    def __init__(self, qa_label: str | None) -> None:
        self.parts: list[str] = []
        self.toc: list[tuple[str, str]] = []
        self.qa_label = qa_label

    def section(self, anchor: str, title: str, body: str, *, real_data: bool = False,
                toc: bool = True) -> None:
        if not body:
            return
        badge = (f"<span class='badge'>{_e(self.qa_label)}</span>"
                 if real_data and self.qa_label else "")
        if toc:
            self.toc.append((anchor, title))
        # <h2> holds the plain title (other tests and tools look for "<h2>Title</h2>")
        head = f"<h2>{_e(title)}</h2>" if not badge else f"<h2>{_e(title)}{badge}</h2>"
        self.parts.append(f"<section id='{anchor}'>{head}{body}</section>")

    def nav(self) -> str:
        links = " ".join(f"<a href='#{a}'>{_e(t)}</a>" for a, t in self.toc)
        return f"<nav class='toc' aria-label='Contents'><b>Contents:</b> {links}</nav>"


# -- first screen ---------------------------------------------------------------------------

gate_rows = scoring.gate_rows


def _dp_line(dp: Mapping[str, Any] | None) -> str:
    if dp is None:
        return ("<span class='dp'>No differential privacy: no ε or δ applies; privacy rests on "
                "the leakage checks below.</span>")
    delta = dp.get("delta")
    delta_text = "δ not recorded" if delta is None else f"δ = {_e(scoring.format_number(delta))}"
    return (f"<span class='dp' id='dp-facts'>Differential privacy: <b>ε = "
            f"{_e(scoring.format_number(dp['epsilon']))}</b>, <b>{delta_text}</b>, "
            "unit of privacy: "
            f"<b>{_e(scoring.unit_text(dp.get('unit')))}</b>.</span>")


def _banner(gate: Mapping[str, Any] | None, dp: Mapping[str, Any] | None = None) -> str:
    facts = _dp_line(dp)
    if not gate:
        return ("<div class='banner none' id='gate-banner' data-status='not_judged'>NOT JUDGED "
                "— no gate was applied to this evaluation: the numbers below are not a "
                f"verdict.{facts}</div>")
    rows = gate_rows(gate)
    # under DP, rules on real-data metrics are advisory: shown, but they do not decide
    failing = [r for r in rows if not r.get("passed") and r.get("decides", True)]
    status = gate.get("status") or ("passed" if gate.get("passed") else "failed")
    if status == "not_judged" or gate.get("judged") is False:
        return ("<div class='banner none' id='gate-banner' data-status='not_judged'>NOT JUDGED — "
                "the pipeline says <code>gate: none</code>: no rule was checked and the "
                f"synthetic data was exported without a verdict.{facts}</div>")
    preset = f" (preset <code>{_e(gate['preset'])}</code>)" if gate.get("preset") else ""
    deciding = [r for r in rows if r.get("decides", True)]
    advisory = len(rows) - len(deciding)
    if status == "passed" and not failing and rows:
        if not advisory:
            return (f"<div class='banner pass' id='gate-banner' data-status='passed'>PASSED — "
                    f"all {len(rows)} gate rule(s){preset} hold; the synthetic data may be "
                    f"exported.{facts}</div>")
        note = (f"{advisory} advisory rule(s) (not private) are shown below and do not decide")
        if not deciding:
            return ("<div class='banner pass' id='gate-banner' data-status='passed'>PASSED — no "
                    f"rule{preset} decides under differential privacy: the release rests on its "
                    f"(ε, δ) guarantee; {note}.{facts}</div>")
        return (f"<div class='banner pass' id='gate-banner' data-status='passed'>PASSED — the "
                f"{len(deciding)} deciding gate rule(s){preset} hold; {note}.{facts}</div>")
    items = "".join(f"<li><code>{_e(r.get('metric'))}</code>: {_e(r.get('reason', ''))}</li>"
                    for r in failing)
    if not rows:
        items = "<li>the gate has no rule entries</li>"
    count = len(failing) if failing else "no"
    return (f"<div class='banner fail' id='gate-banner' data-status='failed' "
            f"data-failed='{len(failing)}'>FAILED — {count} of {len(deciding)} gate rule(s)"
            f"{preset} do not hold; nothing was exported.<ul>{items}</ul>{facts}</div>")


def _gate_table(gate: Mapping[str, Any] | None) -> str:
    """Every rule: metric, operator, threshold, measured value, pass/fail, reason."""
    rows = gate_rows(gate)
    if not gate:
        return "<p class='muted'>No gate: nothing was judged (NOT JUDGED).</p>"
    if not rows:
        return "<p class='muted'>No rule was checked (NOT JUDGED).</p>"
    head = "".join(f"<th>{h}</th>" for h in ("metric", "operator", "threshold",
                                             "measured value", "result", "reason"))
    body = []
    for r in rows:
        operator, threshold = r.get("operator"), r.get("threshold")
        if operator is None:  # reports written before operator/threshold were recorded
            operator, _, threshold = str(r.get("rule", "")).partition(" ")
        ok = bool(r.get("passed"))
        verdict = "pass" if ok else "FAIL"
        if r.get("decides") is False:
            verdict += f" ({r.get('advisory') or 'advisory'})"
        value = r.get("value")
        cls = " class='num'" if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else ""
        label = scoring.spec_for(str(r.get("metric"))).label
        body.append(f"<tr class='gate-rule {'pass' if ok else 'fail'}' "
                    f"data-metric='{_e(r.get('metric'))}'>"
                    f"<td><code title='{_e(label)}'>{_e(r.get('metric'))}</code></td>"
                    f"<td>{_e(operator)}</td>"
                    f"<td class='num'>{_fmt(threshold)}</td><td{cls}>{_fmt(value)}</td>"
                    f"<td class='{'ok' if ok else 'bad'}'>{_e(verdict)}</td>"
                    f"<td>{_e(r.get('reason', ''))}</td></tr>")
    return (f"<div class='scroll'><table class='gate-rules'><tr>{head}</tr>"
            f"{''.join(body)}</table></div>")


def _answer(summary: Mapping[str, Any]) -> str:
    """One sentence: may I share this?"""
    status, level = summary["gate_status"], summary["privacy"]["level"]
    dp = summary.get("dp")
    if status == "failed":
        return ("<b>Do not share:</b> the gate refused this synthetic data (the failing rules "
                "are listed above); nothing was exported.")
    if status == "not_judged":
        return ("<b>No verdict:</b> no gate was applied. Judge the privacy level and the "
                "tiles below yourself before sharing.")
    if dp is not None:
        return (f"<b>Passed, covered by differential privacy</b> (ε = "
                f"{_e(scoring.format_number(dp['epsilon']))} per "
                f"{_e(dp.get('unit') or 'row')}): the "
                "synthetic data and the files listed in manifest.json may be released under "
                "that guarantee; this report itself stays internal.")
    if level == "low":
        return ("<b>Passed the gate, but careful:</b> a leakage check fails its default "
                "threshold (see Privacy level); without differential privacy, share only "
                "under a data-sharing agreement.")
    if level == "unknown":
        return ("<b>Passed the gate, leakage not fully measured:</b> without a holdout the "
                "attacks did not run; without differential privacy there is no formal "
                "guarantee.")
    return ("<b>Passed the gate, no leak detected:</b> without differential privacy there is "
            "no formal guarantee; share under a data-sharing agreement, not publicly.")


def _summary_cards(summary: Mapping[str, Any], gate: Mapping[str, Any] | None) -> str:
    q, p = summary["quality"], summary["privacy"]
    status = summary["gate_status"]
    rows = gate_rows(gate)
    failing = [r for r in rows if not r.get("passed") and r.get("decides", True)]
    status_text = {"passed": "PASSED", "failed": "FAILED", "not_judged": "NOT JUDGED"}[status]
    advisory = sum(1 for r in rows if r.get("decides") is False)
    deciding = len(rows) - advisory
    gate_why = ("no gate applied" if status == "not_judged" else
                f"{deciding - len(failing)} of {deciding} deciding rule(s) hold"
                + (f", {advisory} advisory (not private)" if advisory else "")
                + (f"; preset {gate.get('preset')}" if gate and gate.get("preset") else ""))
    score_text = "—" if q["score"] is None else f"{q['score']:.0f}"
    score_attr = "" if q["score"] is None else q["score"]
    comps = " · ".join(f"{k} {v:.2f}" for k, v in q["components"].items())
    why_q = q.get("note") or (comps + (f" ({q['capped']})" if q.get("capped") else ""))
    return (
        "<div class='summary'>"
        f"<div class='sum' id='gate-card' data-status='{status}'><div class='k'>Gate</div>"
        f"<div class='big st-{status}'>{status_text}</div>"
        f"<div class='why'>{_e(gate_why)}</div></div>"
        f"<div class='sum' id='quality-score' data-score='{score_attr}'"
        f" data-grade='{_e(q['grade'])}'><div class='k'>Quality score</div>"
        f"<div class='big'>{score_text}<small> / 100</small>"
        f"<span class='grade g-{_e(q['grade'])}'>{_e(q['grade'])}</span></div>"
        f"<div class='why'>{_e(why_q)}</div></div>"
        f"<div class='sum' id='privacy-level' data-level='{_e(p['level'])}'>"
        f"<div class='k'>Privacy level</div><div class='big lvl-{_e(p['level'])}'>"
        f"{_e(p['level'].upper())}</div><div class='why'>{_e(p['reason'])}</div></div>"
        "</div>")


def _tile(t: scoring.Tile) -> str:
    value = "not computed" if t.value is None else _fmt(t.value)
    ci = ("" if t.ci is None else
          f"<div class='t'>95% confidence interval {_fmt(t.ci[0])} to {_fmt(t.ci[1])}</div>")
    if t.threshold_text:
        judged = {"pass": "holds", "fail": "FAILS", "missing": "not computed",
                  "warn": "suspicious"}.get(t.status, "")
        source = "gate" if t.threshold_source == "gate" else "default"
        limit = f"target {_e(t.threshold_text)} ({source}) · {judged}"
    elif t.status == "warn":
        limit = f"suspicious: >= {scoring.format_number(scoring.TRTR_LEAK)} suggests a leak column"
    else:
        limit = "no threshold (context)"
    return (f"<div class='tile t-{t.status}' data-metric='{_e(t.name)}' "
            f"data-status='{t.status}' title='{_e(t.name)}'>"
            f"<div class='l'>{_e(t.label)}</div><div class='v'>{value}</div>{ci}"
            f"<div class='t'>{limit}</div><div class='x'>{_e(t.explanation)}</div></div>")


def first_screen(report: Mapping[str, Any]) -> tuple[str, str]:
    """(first-screen HTML, gate-table HTML) of a report dict."""
    sections = report.get("sections") or {}
    summary = scoring.summary(report)
    gate = sections.get("gate")
    meta = report.get("meta") or {}
    parts = []
    release = sections.get("release")
    if release:  # a DP run: this page is internal QA, not a release
        label = str(release.get("label", ""))
        parts.append(f"<p class='qa'>{_e(label[:1].upper() + label[1:])}: this page reads "
                     "the real rows and is outside the DP guarantee; the release is listed in "
                     "manifest.json.</p><details class='muted'><summary>Why</summary>"
                     f"{_e(release.get('note', ''))}. Parts that read the real data: "
                     f"{_e(', '.join(release.get('not_private', [])))}.</details>")
    parts.append(_banner(gate, summary["dp"]))
    parts.append(f"<p class='answer'>{_answer(summary)}</p>")
    parts.append(_summary_cards(summary, gate))
    for text in summary["warnings"]:
        parts.append(f"<div class='warn' role='alert'><b>Warning:</b> {_e(text)}</div>")
    worst = summary["worst_group"]
    if worst:  # issue 23: the group the synthetic data serves least, on the first screen
        label = release.get("label") if release else "not private"
        mark = f" <span class='badge'>{_e(label)}</span>" if worst["not_private"] else ""
        parts.append(f"<p class='worst-group'>{_e(worst['text'])}.{mark} "
                     "<a href='#s-groups'>Per-group numbers</a></p>")
    groups = scoring.headline_tiles(report)
    qa = (f"<span class='badge'>{_e(release.get('label'))}</span>" if release else "")
    titles = {"quality": "Quality: does it look like the real data?",
              "privacy": "Privacy: does it leak the training rows?"}
    for group in ("quality", "privacy"):
        if groups[group]:
            badge = qa  # under DP only ε and δ among them come from the ledger
            parts.append(f"<h3>{titles[group]}{badge}</h3><div class='tiles'>"
                         + "".join(_tile(t) for t in groups[group]) + "</div>")
    parts.append("<p class='muted'>Green: meets its target; red: does not; amber: suspicious; "
                 "grey: context without a target. Targets come from the gate when it has a rule "
                 "for the metric, otherwise from documented defaults (docs/report.md). "
                 f"Train {_fmt(meta.get('n_train'))} rows · synthetic "
                 f"{_fmt(meta.get('n_synthetic'))} · holdout {_fmt(meta.get('n_holdout'))}."
                 "</p>")
    return "".join(parts), _gate_table(gate)


# -- evidence ---------------------------------------------------------------------------------

def _columns(columns: list[Mapping[str, Any]]) -> str:
    return ("<p class='muted'>Distance: KS statistic (numeric) or total variation (discrete), "
            "0 = identical. Baseline = train vs holdout (what an independent real sample "
            "scores).</p>"
            + _table([{k: c.get(k) for k in ("name", "kind", "metric", "distance",
                                              "distance_holdout", "baseline_distance",
                                              "missing_rate_real", "missing_rate_synth")}
                      for c in columns],
                     headers={"distance_holdout": "distance (holdout)",
                              "baseline_distance": "baseline",
                              "missing_rate_real": "missing (real)",
                              "missing_rate_synth": "missing (synthetic)"})
            + "<h3>Distributions: real vs synthetic</h3>" + plots.marginals(columns))


def _correlations(pairs: Mapping[str, Any]) -> str:
    img = plots.correlations(pairs)
    if not img:
        return ""
    return ("<p class='muted'>Association of every pair of columns: Pearson r (numeric "
            "pairs, −1 to 1), Cramér's V (discrete pairs) and the correlation ratio (mixed "
            "pairs), both 0 to 1; 0 = none. The right matrix is the absolute difference.</p>"
            + img)


def _bivariate(pairs: Mapping[str, Any]) -> str:
    img = plots.bivariate(pairs.get("bivariate") or [])
    if not img:
        return ""
    return ("<p class='muted'>The column pairs whose association differs most between real "
            "and synthetic data: share of rows per cell (numbers in 20 bins of the real "
            "0.5–99.5% range, the 12 most frequent categories; missing values left out). The "
            "two panels of a pair share one colour scale.</p>" + img)


def _detection_utility(report: Mapping[str, Any]) -> str:
    det, util, cov = report.get("detection"), report.get("utility"), report.get("coverage")
    parts = []
    if det:
        parts.append("<h3>Detection (a classifier tells real from synthetic rows)</h3>" + _kv(
            {k: v for k, v in det.items() if k not in ("fold_aucs", "folds")}))
    if util:
        parts.append("<h3>Utility (train on synthetic, test on real)</h3>" + _kv(util))
    if cov:
        parts.append("<h3>Coverage</h3>" + _kv({k: cov.get(k) for k in
                                                ("coverage_categories", "coverage_range")}))
    return "".join(parts)


def _leakage(leak: Mapping[str, Any]) -> str:
    parts = []
    if leak.get("exact_copies"):
        parts.append("<h3>Exact copies</h3>" + _kv(leak["exact_copies"]))
    replay = leak.get("rare_value_replay")
    if replay:
        parts.append("<h3>Rare-value replay</h3><p class='muted'>Share of rows holding a "
                     f"value (or pii: quasi combination) that fewer than "
                     f"{_fmt(replay.get('k'))} training rows hold; the holdout's share is "
                     "the natural rate. Counts only, never values.</p>"
                     + _kv({k: v for k, v in replay.items() if k != "columns"})
                     + _table([{"column": name, **entry} for name, entry in
                               (replay.get("columns") or {}).items()]))
    dcr = leak.get("dcr")
    if dcr:
        parts.append("<h3 id='distances'>Distance to closest record and NNDR</h3>"
                     "<p class='muted'>Left: how far each synthetic row is from its nearest "
                     "training row and from its nearest unseen real row; if the generator "
                     "copied, the first curve piles up near 0. Right: the nearest-neighbour "
                     "distance ratio of synthetic rows next to that of unseen real rows.</p>"
                     + plots.distances(dcr)
                     + _kv({k: v for k, v in dcr.items()
                            if k not in ("histogram", "nndr_histogram", "embedding")}))
    mia = leak.get("mia")
    if mia:
        parts.append("<h3>Membership inference</h3>")
        attacks = mia.get("attacks") or {}
        if attacks:
            parts.append(_table([{"attack": k, "roc_auc": a.get("auc"),
                                  "tpr_at_1pct_fpr": a.get("tpr_at_1pct_fpr")}
                                 for k, a in attacks.items()]) + plots.roc(attacks))
        else:
            parts.append(_kv(mia))
    return "".join(parts)


def _embedding(leak: Mapping[str, Any]) -> str:
    emb = (leak.get("dcr") or {}).get("embedding")
    img = plots.embedding(emb) if emb else ""
    if not img:
        return ""
    return ("<p class='muted'>Rows projected on the two main axes (PCA fitted on the training "
            "rows, in the encoding used for distances); shading is the share of rows per cell "
            "(square-root scale). Where synthetic mass appears outside the real cloud, or a "
            "real region is empty, the generator misses part of the data.</p>" + img)


def _risks(risks: Mapping[str, Any]) -> str:
    rows = []
    for kind in ("singling_out", "linkability", "inference"):
        r = risks.get(kind) or {}
        rows.append({"risk": kind, "value": r.get("risk"), "ci_low": r.get("ci_low"),
                     "ci_high": r.get("ci_high"), "attack_rate": r.get("attack_rate"),
                     "control_rate": r.get("control_rate"),
                     "baseline_rate": r.get("baseline_rate"),
                     "n_attacks": r.get("n_attacks"), "note": r.get("note")})
    return ("<p class='muted'>risk = (attack success on train − success on holdout) / (1 − "
            "success on holdout), 95% confidence interval.</p>" + _table(rows)
            + f"<p class='muted'>quasi-identifiers: {_e(risks.get('quasi_columns'))}; "
            f"sensitive: {_e(risks.get('sensitive_columns'))}</p>"
            "<h3>Most exposed training records (row positions only)</h3>"
            + _table(risks.get("exposed_records") or []))


def _survival(section: Mapping[str, Any]) -> str:
    parts = [("<p class='muted'>Kaplan-Meier curves of the real training "
              "patients and the synthetic ones; max distance = largest vertical gap up to the "
              "shorter follow-up. Concordance: Harrell's C on the real holdout of a Cox model "
              "trained on synthetic (TSTR) vs on real (TRTR) data.</p>")]
    for name, endpoint in section.items():
        if not isinstance(endpoint, Mapping):
            continue
        parts.append(f"<h3>{_e(name)}</h3>" + plots.km(name, endpoint))
        check = endpoint.get("check") or {}
        conc = endpoint.get("concordance") or {}
        median = endpoint.get("median_survival") or {}
        parts.append(_kv({"km_max_distance": endpoint.get("km_max_distance"),
                          "median survival (real)": median.get("real"),
                          "median survival (synthetic)": median.get("synthetic"),
                          "end of follow-up": check.get("end_of_follow_up"),
                          "synthetic times < 0": check.get("n_negative"),
                          "synthetic times after the end of follow-up": check.get("n_after_end"),
                          "synthetic times missing": check.get("n_missing"),
                          "c_index_tstr": conc.get("c_index_tstr"),
                          "c_index_trtr": conc.get("c_index_trtr"),
                          "concordance ratio (TSTR / TRTR)": conc.get("ratio"),
                          "concordance": conc.get("skipped") or conc.get("model"),
                          **({"concordance notes": conc["notes"]} if conc.get("notes") else {})}))
    return "".join(parts)


def _deid(section: Mapping[str, Any]) -> str:
    if not section.get("enabled"):
        return f"<p class='bad'>{_e(section.get('note', 'off'))}</p>"
    parts = [(f"<p><b>{_e(section.get('method'))}</b>, applied before fitting: the generator "
              "and the evaluation saw the de-identified columns.</p>")]
    actions = section.get("actions") or []
    has_table = any(a.get("table") for a in actions)
    columns = [c for c in ("table", "column", "identifier_type", "rule", "n_rows", "n_changed",
                           "source", "note") if c != "table" or has_table]
    parts.append(_table(actions, columns) if actions else
                 "<p class='muted'>No column is marked as an identifier: nothing changed.</p>")
    if section.get("dropped_columns"):
        parts.append(f"<p>Dropped: <code>{_e(', '.join(section['dropped_columns']))}</code></p>")
    suspects = section.get("unmarked_suspects") or {}
    if suspects:
        parts.append("<h3>Columns that look like identifiers but are not marked</h3>"
                     + _table([{"column": k, "note": v} for k, v in suspects.items()]))
    scan = section.get("identifier_scan") or []
    if scan:
        parts.append("<h3>Identifier scan (column names and a sample of values)</h3>"
                     + _table(scan, [c for c in ("table", "column", "kind", "evidence",
                                                 "confidence", "decision")
                                     if c != "table" or any(r.get("table") for r in scan)]))
    for note in section.get("notes") or []:
        parts.append(f"<p class='muted'>{_e(note)}</p>")
    parts.append("<h3>Policy</h3>" + _kv(section.get("policy") or {}))
    return "".join(parts)


def _rare(section: Mapping[str, Any]) -> str:
    parts = [("<p class='muted'>Not private (internal QA, do not "
              "publish): which columns had categories rarer than k rows depends on exact counts "
              "of the real data.</p>")]
    if section.get("note"):
        parts.append(f"<p>{_e(section['note'])}</p>")
    cols = section.get("columns") or []
    if section.get("enabled") and not cols:
        parts.append(f"<p>No categorical column has a category held by fewer than "
                     f"{_fmt(section.get('k'))} rows: nothing merged.</p>")
    elif cols:
        what = "merged into one value" if section.get("action") == "merge" else "made missing"
        parts.append(f"<p>Categories held by fewer than {_fmt(section.get('k'))} rows were "
                     f"{what}"
                     " before fitting:</p>" + _table(cols))
    return "".join(parts)


# -- appendix ---------------------------------------------------------------------------------

def _validation(section: Mapping[str, Any] | None) -> str:
    if not section:
        return "<p class='muted'>No validation results attached.</p>"
    if section.get("skipped"):
        return f"<p class='muted'>Skipped: {_e(section['skipped'])}</p>"
    passed = section.get("passed")
    results = [r for r in section.get("results") or [] if isinstance(r, Mapping)]
    failed = [r for r in results if r.get("success") is False]
    head = (f"<p class='{'ok' if passed else 'bad'}'>"
            f"{'all expectations met' if passed else 'some expectations failed'}"
            f" ({len(results) - len(failed)} of {len(results)} hold)</p>")
    if not results:
        return head + _generic({k: v for k, v in section.items() if k != "passed"})
    out = head
    if failed:
        out += "<h4>Failed expectations</h4>" + _table(failed)
    return out + (f"<details><summary>All {len(results)} expectations</summary>"
                  f"{_table(results)}</details>")


def _privacy(section: Mapping[str, Any] | None, dp: Mapping[str, Any] | None) -> str:
    if not section:
        return "<p class='muted'>No privacy ledger attached to this report.</p>"
    parts = []
    statement = section.get("statement") or section.get("plain_language")
    if statement:
        parts.append(f"<p>{_e(statement)}</p>")
    if dp is not None:
        budget = section.get("budget") or {}
        parts.append(_kv({"ε spent": dp["epsilon"], "δ spent": dp["delta"],
                          "ε budget": budget.get("epsilon"), "δ budget": budget.get("delta"),
                          "unit of privacy": scoring.unit_text(dp.get("unit")),
                          "accountant": section.get("accountant")}))
        if section.get("composition"):
            parts.append("<h4>Composition</h4>" + _kv(section["composition"]))
    else:
        parts.append("<p><b>Not a differentially private run:</b> no ε or δ was spent or "
                     "applies; the ledger below lists which steps read the real data.</p>")
    entries = [e for e in section.get("entries") or [] if isinstance(e, Mapping)]
    if entries:
        rows = []
        for e in entries:
            params = e.get("params") or {}
            rows.append({"step": e.get("step"), "mechanism": e.get("mechanism"),
                         "private": e.get("private"), "epsilon": e.get("epsilon"),
                         "delta": e.get("delta"), "rho": e.get("rho"),
                         "steps": e.get("steps"), "sample_rate": e.get("sample_rate"),
                         "params": ", ".join(f"{k}={_plain(v)}" for k, v in params.items()),
                         "note": e.get("note")})
        keep = [c for c in rows[0] if c in ("step", "mechanism", "note")
                or any(r.get(c) not in (None, "") for r in rows)]
        parts.append(f"<h4>Ledger ({len(rows)} entries)</h4>"
                     + _table(rows, keep).replace("<table>", "<table class='ledger'>", 1))
    if section.get("not_private_steps"):
        parts.append("<p class='muted'>Steps that are not private: "
                     f"{_e(', '.join(section['not_private_steps']))}</p>")
    return "".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _timings(report: Mapping[str, Any]) -> str:
    """One table: the pipeline's steps, the evaluation broken into its own steps."""
    meta = report.get("meta") or {}
    pipeline = {k: v for k, v in ((report.get("sections") or {}).get("timings") or {}).items()
                if k != _LABEL_KEY}
    evaluation = meta.get("timings") or {}
    rows: list[dict[str, Any]] = []
    for step, seconds in pipeline.items():
        rows.append({"step": step, "seconds": seconds})
        if step == "evaluate":
            rows += [{"step": f"evaluate › {k}", "seconds": v} for k, v in evaluation.items()]
    if "evaluate" not in pipeline:
        rows += [{"step": f"evaluate › {k}", "seconds": v} for k, v in evaluation.items()]
    if not rows:
        return ""
    return "<p class='muted'>Wall-clock seconds.</p>" + _table(rows, ["step", "seconds"])


def _manifest(section: Mapping[str, Any]) -> str:
    # timings appear once, in the Timings table
    return _generic({k: v for k, v in section.items() if k != "timings_s"})


# -- patient histories -----------------------------------------------------------------------

_HISTORY_INTRO = (
    "<p class='muted'>Each child table seen as whole patient histories (a patient's rows in "
    "time order), as a clinician reads a chart. Every number here reads the real rows.</p>")


def _history(section: Mapping[str, Any]) -> str:
    """Per child table: detection, TSTR, rows per patient, rules, marginals, pairs, codes."""
    parts = [_HISTORY_INTRO]
    for text in section.get("warnings") or []:
        parts.append(f"<div class='warn' role='alert'><b>Warning:</b> {_e(text)}</div>")
    for child, table in section.items():
        if not isinstance(table, Mapping) or "detection" not in table:
            continue
        order = (f", in order of <code>{_e(table['order_by'])}</code>"
                 if table.get("order_by") else ", no time order declared")
        parts.append(f"<h3 id='history-{_anchor(child)}'>{_e(child)}: one history per "
                     f"{_e(table.get('parent'))} row{order}</h3>")
        parts += [_history_detection(table.get("detection") or {}),
                  _history_tstr(table.get("tstr")),
                  _history_counts(str(child), table.get("rows_per_patient") or {}),
                  _history_rules(table.get("rules") or []),
                  _history_columns(table),
                  _history_codes(table)]
    return "".join(parts)


def _history_detection(det: Mapping[str, Any]) -> str:
    auc = det.get("auc")
    if auc is None:
        return f"<p class='muted'>Whole-patient detection not run: {_e(det.get('note', ''))}</p>"
    side = "held-out real" if det.get("real") == "holdout" else "training"
    verdict = ("the histories are hard to tell apart" if auc <= 0.6 else
               "some histories give themselves away" if auc <= 0.75 else
               "most synthetic histories are recognisable")
    tells = _table(det.get("top_features") or [], ["feature", "single_feature_auc_gap"],
                   {"single_feature_auc_gap": "|AUC − 0.5| of this feature alone"})
    return (f"<p><b>Whole-patient detection AUC {_fmt(auc)}</b>: {verdict}. A classifier "
            f"sees one row per patient ({_fmt(det.get('n_per_side'))} {side} and as many "
            "synthetic patients) summarising the whole history: number of rows, gaps between "
            "rows, first, last, mean and spread of each value, its trend over time, how often "
            "a category changes. 0.5 means it cannot tell real from synthetic patients; 1.0 "
            f"means it always can ({_fmt(det.get('n_features'))} features, "
            f"{len(det.get('fold_aucs') or [])}-fold cross-validation).</p>"
            "<details><summary>What gives the synthetic histories away</summary>"
            f"{tells}</details>")


def _history_tstr(tstr: Mapping[str, Any] | None) -> str:
    if not tstr:
        return ("<p class='muted'>Per-patient TSTR not run: it needs <code>evaluate.target"
                "</code> in the parent table and a holdout.</p>")
    key = "r2" if tstr.get("task") == "regression" else "auc"
    excluded = ", ".join(tstr.get("excluded") or []) or "none"
    warn = (f"<div class='warn' role='alert'><b>Warning:</b> {_e(tstr['warning'])}</div>"
            if tstr.get("warning") else "")
    return (f"<p><b>Per-patient TSTR</b>: predict <code>{_e(tstr.get('target'))}</code> from "
            f"the patient's own columns and their first {_fmt(tstr.get('first_k'))} rows. "
            f"Trained on synthetic patients, tested on {_fmt(tstr.get('n_test'))} held-out "
            f"real ones: {key.upper()} <b>{_fmt(tstr.get(f'tstr_{key}'))}</b>; the same "
            f"model trained on real patients: {_fmt(tstr.get(f'trtr_{key}'))} (ratio "
            f"{_fmt(tstr.get('utility_ratio'))}; 1 = the synthetic histories teach as much "
            f"as the real ones). Left out as leak columns: <code>{_e(excluded)}</code>.</p>"
            + warn)


def _history_counts(child: str, counts: Mapping[str, Any]) -> str:
    if not counts:
        return ""
    return (f"<p>Rows per patient: mean {_fmt(counts.get('real_mean'))} real, "
            f"{_fmt(counts.get('synthetic_mean'))} synthetic.</p>"
            + plots.history_counts(counts, child))


def _history_rules(rules: Sequence[Mapping[str, Any]]) -> str:
    if not rules:
        return ("<p class='muted'>No within-patient rule is declared or was discovered for "
                "this table.</p>")
    return ("<h4>Within-patient rules: rows (patients) that break each rule</h4>"
            + _table(rules, ["rule", "real_rows", "real_patients", "synthetic_rows",
                             "synthetic_patients"],
                     {"real_rows": "real rows", "real_patients": "real patients",
                      "synthetic_rows": "synthetic rows",
                      "synthetic_patients": "synthetic patients"}))


def _marginal_plots(entries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """History marginals in the shape :func:`plots.marginals` draws."""
    out = []
    for name, m in entries.items():
        if m.get("kind") == "categorical" or "categories" in m:
            plot = {"type": "bar", "labels": m.get("categories"), "real": m.get("real"),
                    "synth": m.get("synthetic")}
            out.append({"name": name, "metric": "TV", "distance": m.get("tv"), "plot": plot})
        elif m.get("edges") is not None:
            plot = {"type": "hist", "edges": m.get("edges"), "real": m.get("real"),
                    "synth": m.get("synthetic")}
            out.append({"name": name, "metric": "KS", "distance": m.get("ks"), "plot": plot})
    return out


def _history_columns(table: Mapping[str, Any]) -> str:
    parts = []
    marginals = _marginal_plots(table.get("marginals") or {})
    if marginals:
        parts.append("<h4>Columns of the table, all rows: real vs synthetic</h4>"
                     + plots.marginals(marginals))
    pairs = plots.history_pairs(table.get("pairs") or [])
    if pairs:
        parts.append("<h4>The most correlated number pairs: joint distributions</h4>"
                     "<p class='muted'>Share of rows per cell; each axis is cut at the real "
                     "data's quantiles (20 bins, each holding about 5% of the real rows), so "
                     "skewed values spread over the grid; the two panels of a pair share one "
                     "colour scale.</p>" + pairs)
    return "".join(parts)


MAX_CODE_PLOTS = 12   # value distributions drawn per long-format table


def _history_codes(table: Mapping[str, Any]) -> str:
    code, per_code = table.get("code_column"), table.get("per_code") or {}
    if not code or not per_code:
        return ""
    rows: list[dict[str, Any]] = []
    hists: dict[str, Any] = {}
    for value, entry in per_code.items():
        row: dict[str, Any] = {code: value, "real rows": entry.get("real_rows"),
                               "synthetic rows": entry.get("synthetic_rows")}
        for col, stats in entry.items():
            if isinstance(stats, Mapping):
                row[f"{col} KS"] = stats.get("ks")
                row[f"{col} median real"] = stats.get("real_median")
                row[f"{col} median synthetic"] = stats.get("synthetic_median")
                if len(hists) < MAX_CODE_PLOTS:
                    hists[f"{value}: {col}"] = {**stats, "kind": "numeric"}
        rows.append(row)
    return (f"<h4>Values per code of <code>{_e(code)}</code></h4><p class='muted'>The table "
            "is in long format (one row per measurement): each code's values compared on "
            "their own (KS 0 = identical).</p>" + _table(rows)
            + plots.marginals(_marginal_plots(hists)))



# -- page -------------------------------------------------------------------------------------

# One renderer per section of the evidence, in page order: each reads the report and adds
# its section(s) to the page (nothing when it has no data). Add a section by adding a function.
def _gate_rules(page: _Page, report: Mapping[str, Any]) -> None:
    page.section("gate", "Gate rules", _gate_table((report.get("sections") or {}).get("gate")))


def _notes(page: _Page, report: Mapping[str, Any]) -> None:
    if report.get("notes"):
        page.section("notes", "Notes", "<ul>" + "".join(f"<li>{_e(n)}</li>"
                                                        for n in report["notes"]) + "</ul>")


def _column_sections(page: _Page, report: Mapping[str, Any]) -> None:
    columns = report.get("columns") or []
    if columns:
        page.section("columns", "Columns", _columns(columns), real_data=True)
    pairs = report.get("pairs") or {}
    if pairs:
        page.section("correlations", "Correlations: real vs synthetic", _correlations(pairs),
                     real_data=True)
        page.section("bivariate", "Column pairs that differ most", _bivariate(pairs),
                     real_data=True)
    page.section("detection", "Detection, utility and coverage", _detection_utility(report),
                 real_data=True)


def _leakage_sections(page: _Page, report: Mapping[str, Any]) -> None:
    leak = report.get("leakage") or {}
    if leak:
        page.section("leakage", "Leakage", _leakage(leak), real_data=True)
        page.section("embedding", "Embedding (PCA): real vs synthetic", _embedding(leak),
                     real_data=True)
    if report.get("risks"):
        page.section("risks", "Re-identification risks (Anonymeter-style)",
                     _risks(report["risks"]), real_data=True)


def _stage_sections(page: _Page, report: Mapping[str, Any]) -> None:
    sections = report.get("sections") or {}
    known = (("deidentification", "deidentification", "De-identification", _deid),
             ("rare_categories", "rare-categories", "Rare categories", _rare),
             ("survival", "survival", "Survival", _survival),
             ("history", "history", "Patient histories", _history))
    for key, anchor, title, render_section in known:
        if sections.get(key):
            page.section(anchor, title, render_section(sections[key]), real_data=True)


def _other_sections(page: _Page, report: Mapping[str, Any]) -> None:
    for name, payload in (report.get("sections") or {}).items():
        if name not in _KNOWN_SECTIONS:
            title = str(name).replace("_", " ")
            page.section(f"s-{_anchor(name)}", title[:1].upper() + title[1:], _generic(payload),
                         real_data=isinstance(payload, Mapping) and _LABEL_KEY in payload)


SECTION_RENDERERS: list[Callable[[_Page, Mapping[str, Any]], None]] = [
    _gate_rules, _notes, _column_sections, _leakage_sections, _stage_sections, _other_sections]


def _appendix(page: _Page, report: Mapping[str, Any]) -> None:
    """Validation, privacy ledger, budget, manifest and timings in one collapsed block."""
    sections = report.get("sections") or {}
    dp = scoring.dp_facts(report)
    appendix = [("validation", "Validation", _validation(sections.get("validation"))),
                ("privacy", "Privacy ledger", _privacy(sections.get("privacy"), dp))]
    if sections.get("budget"):
        appendix.append(("budget", "Privacy budget", _generic(sections["budget"])))
    if sections.get("manifest"):
        appendix.append(("manifest", "Manifest", _manifest(sections["manifest"])))
    timing = _timings(report)
    if timing:
        appendix.append(("timings", "Timings", timing))
    inner = "".join(f"<section id='{a}'><h3>{_e(t)}</h3>{b}</section>" for a, t, b in appendix)
    titles = ", ".join(t.lower() for _, t, _ in appendix)
    page.toc.append(("appendix", "Appendix"))
    summary = _e(titles[:1].upper() + titles[1:])
    page.parts.append(f"<h2>Appendix</h2><details id='appendix'><summary>{summary}</summary>"
                      f"{inner}</details>")


def _header(report: Mapping[str, Any]) -> str:
    meta = report.get("meta", {}) or {}
    return (f"<h1>Synthetic data report</h1><p class='muted'>{_e(report.get('generator'))} · "
            f"report version {_e(report.get('report_version'))} · train "
            f"{_fmt(meta.get('n_train'))} rows · synthetic {_fmt(meta.get('n_synthetic'))} "
            f"rows · holdout {_fmt(meta.get('n_holdout'))} rows · seed "
            f"{_fmt(meta.get('seed'))}</p>")


def render(report: Mapping[str, Any]) -> str:
    """The whole page: header, contents, first screen, the evidence sections, appendix."""
    release = (report.get("sections") or {}).get("release")
    page = _Page(str(release.get("label")) if release else None)
    top, _ = first_screen(report)
    for add_section in SECTION_RENDERERS:
        add_section(page, report)
    page.toc.insert(0, ("summary", "Summary"))
    _appendix(page, report)
    body = "\n".join([_header(report), page.nav(), f"<section id='summary'>{top}</section>",
                      *page.parts])
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Synthetic data report</title><style>{_PAGE_CSS}{_CSS}</style></head>"
            f"<body><main class='sdr'>{body}</main></body></html>")


def render_inline(report: Mapping[str, Any]) -> str:
    """The notebook view: the first screen and the gate table, no plots, scoped CSS."""
    top, gate_table = first_screen(report)
    return (f"<div class='sdr'><style>{_CSS}</style><b>Synthetic data report</b>{top}"
            f"<details><summary>Gate rules</summary>{gate_table}</details>"
            "<p class='muted'>Plots and the full evidence: <code>report.save(folder)</code> "
            "writes report.html.</p></div>")


def _anchor(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(name)).strip("-") or "section"
