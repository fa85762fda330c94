"""Render a report dict as one self-contained HTML page (matplotlib Agg, base64 PNGs)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;
color:#1d2330;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1rem 1.2rem 3rem;box-sizing:border-box}
h1{font-size:1.5rem;margin:.6rem 0}h2{font-size:1.2rem;margin:1.8rem 0 .6rem;
border-bottom:1px solid #d6dae2;padding-bottom:.25rem}h3{font-size:1rem;margin:1.1rem 0 .4rem}
.banner{padding:.9rem 1.1rem;border-radius:6px;font-weight:600;margin:.8rem 0}
.pass{background:#e3f5e8;border:1px solid #5bb974;color:#17502a}
.fail{background:#fde7e7;border:1px solid #e06666;color:#6d1414}
.none{background:#eef0f4;border:1px solid #b8bfcc;color:#333}
.banner ul{font-weight:400;margin:.4rem 0 0 1.1rem;padding:0}
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.88rem;table-layout:auto}
th,td{border:1px solid #d6dae2;padding:.25rem .45rem;text-align:left;vertical-align:top;
overflow-wrap:anywhere;word-break:break-word}
th{background:#eceff4}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{width:100%;height:auto;display:block;margin:.4rem 0;background:#fff}
.muted{color:#5b6475;font-size:.85rem}.ok{color:#17702f;font-weight:600}
.bad{color:#b3261e;font-weight:600}code{overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.6rem}
.card{background:#fff;border:1px solid #d6dae2;border-radius:6px;padding:.5rem .7rem}
.card .v{font-size:1.25rem;font-weight:600}.card .k{font-size:.8rem;color:#5b6475}
tr.gate-rule.fail td{background:#fdf1f1}tr.gate-rule.pass td{background:#f3fbf5}
"""

_HEADLINE = ("shapes", "pair_trends", "column_distance_mean", "correlation_difference",
             "detection_auc", "utility_ratio", "coverage_categories", "coverage_range",
             "exact_copies", "exact_copy_share", "rare_value_replay", "rare_value_replay_excess",
             "dcr_share", "nndr", "mia_auc",
             "singling_out_risk", "linkability_risk", "inference_risk")
_KNOWN_SECTIONS = ("gate", "validation", "privacy", "timings", "deidentification", "survival",
                   "rare_categories")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return html.escape(str(value))


def _e(text: Any) -> str:
    return html.escape(str(text))


def _table(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
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
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kv(mapping: Mapping[str, Any]) -> str:
    return _table([{"key": k, "value": v} for k, v in mapping.items()], ["key", "value"])


def _generic(value: Any, depth: int = 0) -> str:
    """Render any JSON-like value: mappings as key/value tables, record lists as tables."""
    if isinstance(value, Mapping):
        if depth > 3:
            return f"<code>{_e(value)}</code>"
        rows = []
        for k, v in value.items():
            rendered = _generic(v, depth + 1) if isinstance(v, (Mapping, list)) else _fmt(v)
            rows.append(f"<tr><th>{_e(k)}</th><td>{rendered}</td></tr>")
        return f"<table>{''.join(rows)}</table>" if rows else "<p class='muted'>empty</p>"
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            return _table(value)
        if len(value) > 50:
            return f"<span class='muted'>{len(value)} values</span>"
        return _e(", ".join(_fmt(v) for v in value))
    return _fmt(value)


# -- plots --------------------------------------------------------------------------------

def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='plot' src='data:image/png;base64,{data}'>"


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


REAL, SYNTH = "#3b6fb6", "#e07b39"


def _marginals(columns: list[Mapping[str, Any]]) -> str:
    cols = [c for c in columns if c.get("plot", {}).get("type") in ("hist", "bar")]
    if not cols:
        return ""
    ncols = 4
    nrows = math.ceil(len(cols) / ncols)
    fig = _figure(14, 2.6 * nrows)
    for i, col in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        plot = col["plot"]
        if plot["type"] == "hist":
            # stairs draw one artist per series (bars would draw one per bin: slow)
            ax.stairs(plot["real"], plot["edges"], fill=True, alpha=0.45, color=REAL,
                      label="real")
            ax.stairs(plot["synth"], plot["edges"], fill=False, linewidth=1.5, color=SYNTH,
                      label="synthetic")
        else:
            x = list(range(len(plot["labels"])))
            ax.bar([v - 0.2 for v in x], plot["real"], width=0.4, color=REAL, label="real")
            ax.bar([v + 0.2 for v in x], plot["synth"], width=0.4, color=SYNTH,
                   label="synthetic")
            ax.set_xticks(x)
            ax.set_xticklabels([str(lab)[:10] for lab in plot["labels"]], rotation=45,
                               ha="right", fontsize=7)
        dist = col.get("distance")
        ax.set_title(f"{str(col['name'])[:28]}  ({col['metric']} {_fmt(dist)})", fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    # fixed margins: tight_layout re-draws every axis to measure it (seconds per page)
    fig.subplots_adjust(left=0.04, right=0.99, top=1 - 0.35 / (2.6 * nrows),
                        bottom=0.6 / (2.6 * nrows), hspace=0.75, wspace=0.25)
    return _png(fig)


def _heatmap(pairs: Mapping[str, Any]) -> str:
    names = pairs.get("columns") or []
    if len(names) < 2:
        return ""
    size = min(13, 7 + 0.15 * len(names))
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(pairs["difference"], vmin=0, vmax=1, cmap="Reds")
    ax.set_xticks(range(len(names)))
    ax.set_yticks(range(len(names)))
    labels = [str(n)[:14] for n in names]
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title("|association(real) - association(synthetic)|", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.subplots_adjust(left=0.2, bottom=0.2, right=0.95, top=0.93)
    return _png(fig)


def _dcr_hist(dcr: Mapping[str, Any]) -> str:
    hist = dcr.get("histogram")
    if not hist:
        return ""
    fig = _figure(9, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    edges = hist["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    ax.step(centers, hist["train"], where="mid", color=REAL, label="synthetic → train")
    ax.step(centers, hist["holdout"], where="mid", color="#2e9d5b",
            label="synthetic → holdout")
    ax.set_xlabel("distance to closest record")
    ax.set_ylabel("synthetic rows")
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.08, bottom=0.18, right=0.98, top=0.95)
    return _png(fig)


def _roc_plot(attacks: Mapping[str, Any]) -> str:
    if not attacks:
        return ""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, attack in attacks.items():
        roc = attack.get("roc") or {}
        ax.plot(roc.get("fpr", []), roc.get("tpr", []),
                label=f"{name} (AUC {_fmt(attack.get('auc'))})")
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("membership inference ROC", fontsize=10)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.13, bottom=0.12, right=0.97, top=0.92)
    return _png(fig)


def _km_plot(name: str, endpoint: Mapping[str, Any]) -> str:
    """Kaplan-Meier curves real vs synthetic of one survival endpoint."""
    curves = endpoint.get("km") or {}
    if not curves.get("real"):
        return ""
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    unit = endpoint.get("time_unit")
    per_year = {"days": 365.25, "months": 12.0}.get(unit or "", 1.0)  # axis in years
    for label, color in (("real", REAL), ("synthetic", SYNTH)):
        curve = curves.get(label)
        if curve:
            ax.step([t / per_year for t in curve["times"]], curve["survival"], where="post",
                    color=color, linewidth=1.6, label=label)
    events = ", ".join(str(v) for v in endpoint.get("event_values") or [])
    ax.set_xlabel(f"{endpoint.get('time')} (years)" if unit else f"{endpoint.get('time')}")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Kaplan-Meier: {name} (event: {endpoint.get('event')} in [{events}]; "
                 f"max distance {_fmt(endpoint.get('km_max_distance'))})", fontsize=9)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.09, bottom=0.14, right=0.98, top=0.9)
    return _png(fig).replace("alt='plot'", f"alt='Kaplan-Meier curves {_e(name)}'", 1)


def _survival(section: Mapping[str, Any]) -> str:
    parts = ["<h2>Survival</h2><p class='muted'>Kaplan-Meier curves of the real training "
             "patients and the synthetic ones; max distance = largest vertical gap up to the "
             "shorter follow-up. Concordance: Harrell's C on the real holdout of a Cox model "
             "trained on synthetic (TSTR) vs on real (TRTR) data.</p>"]
    for name, endpoint in section.items():
        if not isinstance(endpoint, Mapping):
            continue
        parts.append(f"<h3>{_e(name)}</h3>" + _km_plot(name, endpoint))
        check = endpoint.get("check") or {}
        conc = endpoint.get("concordance") or {}
        parts.append(_kv({"km_max_distance": endpoint.get("km_max_distance"),
                          "median survival (real)": (endpoint.get("median_survival") or {}
                                                     ).get("real"),
                          "median survival (synthetic)": (endpoint.get("median_survival") or {}
                                                          ).get("synthetic"),
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
    parts = ["<h2>De-identification</h2>"]
    if not section.get("enabled"):
        return parts[0] + f"<p class='bad'>{_e(section.get('note', 'off'))}</p>"
    parts.append(f"<p><b>{_e(section.get('method'))}</b>, applied before fitting: the generator "
                 "and the evaluation saw the de-identified columns.</p>")
    actions = section.get("actions") or []
    columns = [c for c in ("table", "column", "identifier_type", "rule", "n_rows", "n_changed",
                           "source", "note") if c != "table" or any(a.get("table") for a in actions)]
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


# -- page ---------------------------------------------------------------------------------

def gate_rows(gate: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The rule entries of a report's gate section (``results``; ``rules`` in old reports)."""
    if not gate:
        return []
    rows = gate.get("results")
    if rows is None:
        rows = gate.get("rules")
    return [r for r in rows or [] if isinstance(r, Mapping)]


def _banner(gate: Mapping[str, Any] | None) -> str:
    if not gate:
        return ("<div class='banner none' id='gate-banner' data-status='not_judged'>NOT JUDGED "
                "— no gate was applied to this evaluation: the numbers below are not a "
                "verdict.</div>")
    rows = gate_rows(gate)
    # under DP, rules on real-data metrics are advisory: shown, but they do not decide
    failing = [r for r in rows if not r.get("passed") and r.get("decides", True)]
    status = gate.get("status") or ("passed" if gate.get("passed") else "failed")
    if status == "not_judged" or gate.get("judged") is False:
        return ("<div class='banner none' id='gate-banner' data-status='not_judged'>NOT JUDGED — "
                "the pipeline says <code>gate: none</code>: no rule was checked and the "
                "synthetic data was exported without a verdict.</div>")
    preset = f" (preset <code>{_e(gate['preset'])}</code>)" if gate.get("preset") else ""
    deciding = [r for r in rows if r.get("decides", True)]
    advisory = len(rows) - len(deciding)
    if status == "passed" and not failing and rows:
        if not advisory:
            return (f"<div class='banner pass' id='gate-banner' data-status='passed'>PASSED — "
                    f"all {len(rows)} gate rule(s){preset} hold; the synthetic data may be "
                    "exported.</div>")
        note = (f"{advisory} advisory rule(s) (not private) are shown below and do not decide")
        if not deciding:
            return ("<div class='banner pass' id='gate-banner' data-status='passed'>PASSED — no "
                    f"rule{preset} decides under differential privacy: the release rests on its "
                    f"(ε, δ) guarantee; {note}.</div>")
        return (f"<div class='banner pass' id='gate-banner' data-status='passed'>PASSED — the "
                f"{len(deciding)} deciding gate rule(s){preset} hold; {note}.</div>")
    items = "".join(f"<li><code>{_e(r.get('metric'))}</code>: {_e(r.get('reason', ''))}</li>"
                    for r in failing)
    if not rows:
        items = "<li>the gate has no rule entries</li>"
    count = len(failing) if failing else "no"
    return (f"<div class='banner fail' id='gate-banner' data-status='failed' "
            f"data-failed='{len(failing)}'>FAILED — {count} of {len(deciding)} gate rule(s)"
            f"{preset} do not hold; nothing was exported.<ul>{items}</ul></div>")


def _gate_table(gate: Mapping[str, Any] | None) -> str:
    """Every rule: metric, operator, threshold, measured value, pass/fail, reason."""
    rows = gate_rows(gate)
    if not gate:
        return ("<h2 id='gate'>Gate rules</h2><p class='muted'>No gate: nothing was judged "
                "(NOT JUDGED).</p>")
    if not rows:
        return ("<h2 id='gate'>Gate rules</h2><p class='muted'>No rule was checked "
                "(NOT JUDGED).</p>")
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
        body.append(f"<tr class='gate-rule {'pass' if ok else 'fail'}' "
                    f"data-metric='{_e(r.get('metric'))}'>"
                    f"<td><code>{_e(r.get('metric'))}</code></td><td>{_e(operator)}</td>"
                    f"<td class='num'>{_fmt(threshold)}</td><td{cls}>{_fmt(value)}</td>"
                    f"<td class='{'ok' if ok else 'bad'}'>{_e(verdict)}</td>"
                    f"<td>{_e(r.get('reason', ''))}</td></tr>")
    return (f"<h2 id='gate'>Gate rules</h2><table class='gate-rules'><tr>{head}</tr>"
            f"{''.join(body)}</table>")


def _rare(section: Mapping[str, Any]) -> str:
    parts = ["<h2>Rare categories</h2><p class='muted'>Not private (internal QA, do not "
             "publish): which columns had categories rarer than k rows depends on exact counts "
             "of the real data.</p>"]
    if section.get("note"):
        parts.append(f"<p>{_e(section['note'])}</p>")
    cols = section.get("columns") or []
    if section.get("enabled") and not cols:
        parts.append(f"<p>No categorical column has a category held by fewer than "
                     f"{_fmt(section.get('k'))} rows: nothing merged.</p>")
    elif cols:
        parts.append(f"<p>Categories held by fewer than {_fmt(section.get('k'))} rows were "
                     f"{'merged into one value' if section.get('action') == 'merge' else 'made missing'}"
                     " before fitting:</p>" + _table(cols))
    return "".join(parts)


def render(report: Mapping[str, Any]) -> str:
    metrics = report.get("metrics", {})
    info = report.get("metric_info", {})
    meta = report.get("meta", {})
    sections = report.get("sections", {}) or {}
    parts = [f"<h1>Synthetic data report</h1><p class='muted'>{_e(report.get('generator'))} · "
             f"report version {_e(report.get('report_version'))} · train "
             f"{_fmt(meta.get('n_train'))} rows · synthetic {_fmt(meta.get('n_synthetic'))} "
             f"rows · holdout {_fmt(meta.get('n_holdout'))} rows · seed "
             f"{_fmt(meta.get('seed'))}</p>", _banner(sections.get("gate")),
             _gate_table(sections.get("gate"))]
    if sections.get("release"):  # a DP run: this page is internal QA, not a release
        release = sections["release"]
        label = str(release.get("label", ""))
        parts.insert(1, f"<p class='bad'><b>{_e(label[:1].upper() + label[1:])}"
                        f"</b>: {_e(release.get('note', ''))}. Parts that read the real data: "
                        f"{_e(', '.join(release.get('not_private', [])))}.</p>")

    cards = []
    for name in _HEADLINE:
        if name not in metrics:
            continue
        direction = (info.get(name) or {}).get("higher_is_better")
        arrow = {True: "higher is better", False: "lower is better"}.get(direction, "")
        cards.append(f"<div class='card'><div class='k'>{_e(name)}</div><div class='v'>"
                     f"{_fmt(metrics[name])}</div><div class='k'>{arrow}</div></div>")
    parts.append("<h2>Overall scores</h2><div class='cards'>" + "".join(cards) + "</div>")
    if report.get("notes"):
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>"
                                                    for n in report["notes"]) + "</ul>")

    if sections.get("deidentification"):
        parts.append(_deid(sections["deidentification"]))
    if sections.get("rare_categories"):
        parts.append(_rare(sections["rare_categories"]))

    columns = report.get("columns") or []
    if columns:
        parts.append("<h2>Columns</h2><p class='muted'>Distance: KS statistic (numeric) or "
                     "total variation (discrete), 0 = identical. Baseline = train vs holdout "
                     "(what an independent real sample scores).</p>")
        parts.append(_table([{k: c.get(k) for k in ("name", "kind", "metric", "distance",
                                                     "distance_holdout", "baseline_distance",
                                                     "missing_rate_real", "missing_rate_synth")}
                             for c in columns]))
        parts.append("<h3>Marginals: real vs synthetic</h3>" + _marginals(columns))
    pairs = report.get("pairs")
    if pairs:
        parts.append("<h2>Pairwise trends</h2><p class='muted'>Association: Pearson r "
                     "(numeric pairs), Cramér's V (discrete pairs), correlation ratio "
                     "(mixed).</p>" + _heatmap(pairs))
    det, util, cov = report.get("detection"), report.get("utility"), report.get("coverage")
    if det or util or cov:
        parts.append("<h2>Detection, utility and coverage</h2>")
        if det:
            parts.append("<h3>Detection (real vs synthetic classifier)</h3>" + _kv(
                {k: v for k, v in det.items() if k != "fold_aucs"}))
        if util:
            parts.append("<h3>Utility (train on synthetic, test on real)</h3>" + _kv(util))
        if cov:
            parts.append("<h3>Coverage</h3>" + _kv({k: cov.get(k) for k in
                                                    ("coverage_categories", "coverage_range")}))
    leak = report.get("leakage") or {}
    if leak:
        parts.append("<h2>Leakage</h2>")
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
            parts.append("<h3>Distance to closest record</h3>" + _kv(
                {k: v for k, v in dcr.items() if k != "histogram"}) + _dcr_hist(dcr))
        mia = leak.get("mia")
        if mia:
            parts.append("<h3>Membership inference</h3>")
            attacks = mia.get("attacks") or {}
            if attacks:
                parts.append(_table([{"attack": k, "roc_auc": a.get("auc"),
                                      "tpr_at_1pct_fpr": a.get("tpr_at_1pct_fpr")}
                                     for k, a in attacks.items()]) + _roc_plot(attacks))
            else:
                parts.append(_kv(mia))
    risks = report.get("risks")
    if risks:
        parts.append("<h2>Re-identification risks (Anonymeter-style)</h2><p class='muted'>"
                     "risk = (attack success on train − success on holdout) / (1 − success on "
                     "holdout), 95% confidence interval.</p>")
        rows = []
        for kind in ("singling_out", "linkability", "inference"):
            r = risks.get(kind) or {}
            rows.append({"risk": kind, "value": r.get("risk"), "ci_low": r.get("ci_low"),
                         "ci_high": r.get("ci_high"), "attack_rate": r.get("attack_rate"),
                         "control_rate": r.get("control_rate"),
                         "baseline_rate": r.get("baseline_rate"),
                         "n_attacks": r.get("n_attacks"), "note": r.get("note")})
        parts.append(_table(rows))
        parts.append(f"<p class='muted'>quasi-identifiers: {_e(risks.get('quasi_columns'))}; "
                     f"sensitive: {_e(risks.get('sensitive_columns'))}</p>")
        parts.append("<h3>Most exposed training records (row positions only)</h3>"
                     + _table(risks.get("exposed_records") or []))
    if sections.get("survival"):
        parts.append(_survival(sections["survival"]))
    parts.append("<h2>Validation</h2>")
    parts.append(_validation(sections.get("validation")))
    parts.append("<h2>Privacy</h2>")
    parts.append(_generic(sections["privacy"]) if "privacy" in sections else
                 "<p class='muted'>No privacy ledger attached to this report.</p>")
    for name, payload in sections.items():
        if name not in _KNOWN_SECTIONS:
            parts.append(f"<h2>{_e(name)}</h2>" + _generic(payload))
    parts.append("<h2>Timings</h2>" + _kv({f"evaluate.{k}": v for k, v in
                                           (meta.get("timings") or {}).items()}))
    if "timings" in sections:
        parts.append(_generic(sections["timings"]))
    body = "\n".join(parts)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Synthetic data report</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>")


def _validation(section: Mapping[str, Any] | None) -> str:
    if not section:
        return "<p class='muted'>No validation results attached.</p>"
    passed = section.get("passed")
    head = (f"<p class='{'ok' if passed else 'bad'}'>"
            f"{'all expectations met' if passed else 'some expectations failed'}</p>")
    results = section.get("results") or []
    return head + _table(results) if results else head + _generic(section)
