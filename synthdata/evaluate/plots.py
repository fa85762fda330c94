"""The report's figures: matplotlib (Agg, imported lazily) rendered as 2x PNG ``<img>`` tags.

Sizes are chosen for the page: a figure ``w`` inches wide is shown ``100 * w`` CSS pixels wide
(never wider than the page) and rendered at 200 dpi, so text set in 8-10 pt reads at 11-14
px on a 1x screen and stays sharp on a 2x one. Every function takes report data (lists,
``None`` for non-finite numbers) and returns ``""`` when there is nothing finite to draw.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

REAL, SYNTH, HOLDOUT = "#3b6fb6", "#e07b39", "#2e9d5b"
DPI = 200
PX_PER_INCH = 100
PAGE_INCHES = 10.6   # the page's content width (1060 px) in figure inches


def _arr(values: Any) -> np.ndarray:
    """A float array from report data; ``None`` (a non-finite number in JSON) becomes NaN."""
    if values is None:
        return np.array([], dtype=float)
    try:
        out = np.array([[np.nan if v is None else v for v in row] if isinstance(row, list)
                        else (np.nan if row is None else row) for row in values], dtype=float)
    except (TypeError, ValueError):
        return np.array([], dtype=float)
    return out


def _ok(*arrays: np.ndarray) -> bool:
    return all(a.size > 0 and bool(np.isfinite(a).any()) for a in arrays)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.set_layout_engine("none")
    return fig


def png(fig: Any, alt: str) -> str:
    """The figure as an ``<img>`` with a base64 PNG at 2x its CSS size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    width = round(fig.get_figwidth() * PX_PER_INCH)
    return (f"<img class='plot' style='width:{width}px' alt='{html.escape(alt, quote=True)}' "
            f"src='data:image/png;base64,{data}'>")


def _short(text: Any, n: int = 14) -> str:
    s = str(text)
    return s if len(s) <= n else s[:n - 1] + "…"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# -- columns --------------------------------------------------------------------------------

def marginals(columns: Sequence[Mapping[str, Any]]) -> str:
    """Real vs synthetic distribution of every column, four per row."""
    cols = [c for c in columns if (c.get("plot") or {}).get("type") in ("hist", "bar")]
    if not cols:
        return ""
    ncols = 4
    nrows = math.ceil(len(cols) / ncols)
    row_h = 2.05
    fig = _figure(PAGE_INCHES, row_h * nrows + 0.3)
    for i, col in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        plot = col["plot"]
        real, synth = _arr(plot.get("real")), _arr(plot.get("synth"))
        if not _ok(real, synth) or real.shape != synth.shape:
            ax.set_axis_off()
            continue
        if plot["type"] == "hist":
            edges = _arr(plot.get("edges"))
            if edges.size != real.size + 1 or not np.isfinite(edges).all():
                ax.set_axis_off()
                continue
            # stairs draw one artist per series (bars would draw one per bin: slow)
            ax.stairs(np.nan_to_num(real), edges, fill=True, alpha=0.4, color=REAL,
                      label="real")
            ax.stairs(np.nan_to_num(synth), edges, fill=False, linewidth=1.6, color=SYNTH,
                      label="synthetic")
        else:
            x = np.arange(real.size)
            ax.bar(x - 0.2, np.nan_to_num(real), width=0.4, color=REAL, label="real")
            ax.bar(x + 0.2, np.nan_to_num(synth), width=0.4, color=SYNTH, label="synthetic")
            labels = list(plot.get("labels") or [])
            if len(labels) == x.size:
                ax.set_xticks(x)
                ax.set_xticklabels([_short(lab, 8) for lab in labels], rotation=40,
                                   ha="right", fontsize=7.5)
        ax.set_title(f"{_short(col.get('name'), 22)}  ({col.get('metric')} "
                     f"{_fmt(col.get('distance'))})", fontsize=9)
        ax.tick_params(labelsize=7.5)
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        if i == 0:
            ax.legend(fontsize=7.5, frameon=False)
    height = row_h * nrows + 0.3
    # fixed margins: tight_layout re-draws every axis to measure it (seconds per page)
    fig.subplots_adjust(left=0.02, right=0.99, top=1 - 0.35 / height, bottom=0.55 / height,
                        hspace=0.62, wspace=0.12)
    return png(fig, "real vs synthetic distribution of every column")


# -- pairs ----------------------------------------------------------------------------------

def correlations(pairs: Mapping[str, Any]) -> str:
    """Association matrices side by side: real, synthetic, and their absolute difference."""
    names = list(pairs.get("columns") or [])
    mats = [_arr(pairs.get(k)) for k in ("real", "synth", "difference")]
    k = len(names)
    if k < 2 or not _ok(*mats) or any(m.shape != (k, k) for m in mats):
        return ""
    fig = _figure(PAGE_INCHES, 4.3 if k <= 15 else 5.2)
    labels = [_short(n, 12) for n in names]
    fontsize = 8 if k <= 15 else 6 if k <= 30 else 4.5
    titles = ("real", "synthetic", "|real − synthetic|")
    for i, (mat, title) in enumerate(zip(mats, titles, strict=True)):
        ax = fig.add_axes((0.075 + i * 0.31, 0.24, 0.24, 0.68))
        # Pearson r is signed: a diverging scale for the two matrices, 0..1 for the gap
        cmap, vmin = ("Reds", 0.0) if i == 2 else ("RdBu_r", -1.0)
        im = ax.imshow(np.nan_to_num(mat), vmin=vmin, vmax=1, cmap=cmap)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(k))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=fontsize)
        ax.set_yticks(range(k))
        ax.set_yticklabels(labels if i == 0 else [], fontsize=fontsize)
        if i in (1, 2):
            cax = fig.add_axes((0.075 + i * 0.31 + 0.245, 0.24, 0.008, 0.68))
            cb = fig.colorbar(im, cax=cax)
            cb.ax.tick_params(labelsize=7)
    return png(fig, "association matrices of the real and synthetic data and their difference")


def _cells(axis: Mapping[str, Any], n: int) -> tuple[np.ndarray, list[str] | None]:
    if axis.get("type") == "numeric":
        edges = _arr(axis.get("edges"))
        if edges.size == n + 1 and np.isfinite(edges).all():
            return edges, None
    labels = [_short(v, 10) for v in axis.get("labels") or []]
    return np.arange(n + 1) - 0.5, (labels if len(labels) == n else None)


def bivariate(views: Sequence[Mapping[str, Any]]) -> str:
    """Joint distributions (real | synthetic) of the pairs whose association differs most."""
    good = []
    for v in views:
        real, synth = _arr(v.get("real")), _arr(v.get("synth"))
        if _ok(real, synth) and real.ndim == 2 and real.shape == synth.shape:
            good.append((v, real, synth))
    if not good:
        return ""
    per_row = 2
    nrows = math.ceil(len(good) / per_row)
    row_h = 3.0
    height = row_h * nrows
    fig = _figure(PAGE_INCHES, height)
    for n, (view, real, synth) in enumerate(good):
        r, c = divmod(n, per_row)
        vmax = float(np.nanmax([np.nanmax(real), np.nanmax(synth)])) or 1.0
        xe, xl = _cells(view["x"], real.shape[0])
        ye, yl = _cells(view["y"], real.shape[1])
        for side, (grid, title) in enumerate(((real, "real"), (synth, "synthetic"))):
            left = 0.07 + c * 0.5 + side * 0.205
            bottom = 1 - (r + 1) * row_h / height + 0.75 / height
            ax = fig.add_axes((left, bottom, 0.17, (row_h - 1.2) / height))
            ax.pcolormesh(xe, ye, np.nan_to_num(grid).T, cmap="viridis", vmin=0, vmax=vmax,
                          shading="flat")
            ax.set_title(f"{title}", fontsize=8.5, color=REAL if side == 0 else SYNTH)
            ax.tick_params(labelsize=7)
            if xl is not None:
                ax.set_xticks(np.arange(len(xl)))
                ax.set_xticklabels(xl, rotation=45, ha="right", fontsize=6.5)
            if yl is not None:
                ax.set_yticks(np.arange(len(yl)))
                ax.set_yticklabels(yl if side == 0 else [], fontsize=6.5)
            elif side == 1:
                ax.set_yticklabels([])
            ax.set_xlabel(_short(view["x"].get("name"), 18), fontsize=8)
            if side == 0:
                ax.set_ylabel(_short(view["y"].get("name"), 18), fontsize=8)
        fig.text(0.07 + c * 0.5 + 0.19, 1 - r * row_h / height - 0.12 / height,
                 f"{_short(view['x'].get('name'), 18)} × {_short(view['y'].get('name'), 18)}"
                 f"   (association gap {_fmt(view.get('difference'))})",
                 ha="center", va="top", fontsize=9, weight="bold")
    return png(fig, "joint distributions of the column pairs whose association differs most")


# -- leakage --------------------------------------------------------------------------------

def distances(dcr: Mapping[str, Any]) -> str:
    """DCR histogram (synthetic → train vs → holdout) beside the NNDR distribution."""
    hist = dcr.get("histogram") or {}
    nndr = dcr.get("nndr_histogram") or {}
    edges, tr, ho = _arr(hist.get("edges")), _arr(hist.get("train")), _arr(hist.get("holdout"))
    has_dcr = _ok(edges, tr, ho) and edges.size == tr.size + 1 == ho.size + 1
    n_edges, n_syn = _arr(nndr.get("edges")), _arr(nndr.get("synth"))
    n_ho = _arr(nndr.get("holdout"))
    has_nndr = _ok(n_edges, n_syn) and n_edges.size == n_syn.size + 1
    if not has_dcr and not has_nndr:
        return ""
    panels = int(has_dcr) + int(has_nndr)
    fig = _figure(PAGE_INCHES if panels == 2 else 6.0, 3.0)
    i = 1
    if has_dcr:
        ax = fig.add_subplot(1, panels, i)
        ax.stairs(np.nan_to_num(tr), edges, color=SYNTH, linewidth=1.6,
                  label="synthetic → nearest training row")
        ax.stairs(np.nan_to_num(ho), edges, color=HOLDOUT, linewidth=1.6, linestyle="--",
                  label="synthetic → nearest unseen real row")
        ax.set_xlabel("distance to closest record (DCR)", fontsize=8.5)
        ax.set_ylabel("synthetic rows", fontsize=8.5)
        ax.set_title("DCR: the two curves should overlap", fontsize=9.5)
        ax.legend(fontsize=7.5, frameon=False)
        ax.tick_params(labelsize=7.5)
        i += 1
    if has_nndr:
        ax = fig.add_subplot(1, panels, i)
        ax.stairs(np.nan_to_num(n_syn), n_edges, color=SYNTH, linewidth=1.6,
                  label="synthetic rows")
        if n_ho.size == n_syn.size and _ok(n_ho):
            ax.stairs(np.nan_to_num(n_ho), n_edges, color=HOLDOUT, linewidth=1.6,
                      linestyle="--", label="unseen real rows (natural level)")
        ax.set_xlabel("nearest / second-nearest training distance (NNDR)", fontsize=8.5)
        ax.set_ylabel("share of rows", fontsize=8.5)
        ax.set_title("NNDR: mass near 0 = rows sitting on one training row", fontsize=9.5)
        ax.legend(fontsize=7.5, frameon=False)
        ax.tick_params(labelsize=7.5)
    fig.subplots_adjust(left=0.07 if panels == 2 else 0.12, right=0.98, bottom=0.17,
                        top=0.9, wspace=0.22)
    return png(fig, "distance to closest record and nearest-neighbour distance ratio")


def roc(attacks: Mapping[str, Any]) -> str:
    """Membership-inference ROC curves, one per attack."""
    curves = []
    for name, attack in attacks.items():
        r = attack.get("roc") or {}
        fpr, tpr = _arr(r.get("fpr")), _arr(r.get("tpr"))
        if _ok(fpr, tpr) and fpr.shape == tpr.shape:
            curves.append((name, attack.get("auc"), fpr, tpr))
    if not curves:
        return ""
    fig = _figure(5.2, 3.9)
    ax = fig.add_subplot(1, 1, 1)
    for name, auc, fpr, tpr in curves:
        ax.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUC {_fmt(auc)})")
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate", fontsize=8.5)
    ax.set_ylabel("true positive rate", fontsize=8.5)
    ax.set_title("membership inference ROC", fontsize=9.5)
    ax.legend(fontsize=7.5, frameon=False)
    ax.tick_params(labelsize=7.5)
    fig.subplots_adjust(left=0.13, bottom=0.13, right=0.97, top=0.91)
    return png(fig, "membership inference ROC curves")


def embedding(emb: Mapping[str, Any]) -> str:
    """2-D PCA density of real (train) rows and synthetic rows on the same axes."""
    xe, ye = _arr(emb.get("x_edges")), _arr(emb.get("y_edges"))
    real, synth = _arr(emb.get("real")), _arr(emb.get("synth"))
    if not _ok(xe, ye, real, synth) or real.shape != synth.shape or \
            real.shape != (xe.size - 1, ye.size - 1):
        return ""
    fig = _figure(PAGE_INCHES, 3.9)
    vmax = float(np.sqrt(max(np.nanmax(real), np.nanmax(synth)))) or 1.0
    var = [v if isinstance(v, (int, float)) else float("nan")
           for v in (emb.get("explained_variance") or [None, None])[:2]]
    centers_x, centers_y = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
    for i, (grid, title, color) in enumerate(((real, "real (training rows)", REAL),
                                              (synth, "synthetic rows", SYNTH))):
        ax = fig.add_axes((0.06 + i * 0.33, 0.14, 0.27, 0.74))
        ax.pcolormesh(xe, ye, np.sqrt(np.nan_to_num(grid)).T, cmap="Greys", vmin=0,
                      vmax=vmax, shading="flat")
        ax.set_title(title, fontsize=9.5, color=color)
        ax.set_xlabel(f"PC1 ({_pct(var[0])} of variance)", fontsize=8)
        if i == 0:
            ax.set_ylabel(f"PC2 ({_pct(var[1] if len(var) > 1 else None)})", fontsize=8)
        ax.tick_params(labelsize=7)
    ax = fig.add_axes((0.72, 0.14, 0.27, 0.74))
    levels = _levels(real, synth)
    if levels:
        ax.contour(centers_x, centers_y, np.nan_to_num(real).T, levels=levels, colors=REAL,
                   linewidths=1.2)
        ax.contour(centers_x, centers_y, np.nan_to_num(synth).T, levels=levels, colors=SYNTH,
                   linewidths=1.2, linestyles="--")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_title("overlay: real (solid) vs synthetic (dashed)", fontsize=9.5)
    ax.set_xlabel("PC1", fontsize=8)
    ax.tick_params(labelsize=7)
    return png(fig, "two-dimensional PCA embedding of real and synthetic rows")


def _levels(*grids: np.ndarray) -> list[float]:
    top = max(float(np.nanmax(g)) for g in grids)
    if not math.isfinite(top) or top <= 0:
        return []
    return [top * f for f in (0.05, 0.2, 0.5)]


def _pct(v: Any) -> str:
    return f"{100 * v:.0f}%" if isinstance(v, (int, float)) and math.isfinite(v) else "—"


def km(name: str, endpoint: Mapping[str, Any]) -> str:
    """Kaplan-Meier curves real vs synthetic of one survival endpoint."""
    curves = endpoint.get("km") or {}
    drawn = []
    for label, color in (("real", REAL), ("synthetic", SYNTH)):
        curve = curves.get(label) or {}
        t, s = _arr(curve.get("times")), _arr(curve.get("survival"))
        if _ok(t, s) and t.shape == s.shape:
            drawn.append((label, color, t, s))
    if not any(label == "real" for label, *_ in drawn):
        return ""
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    unit = endpoint.get("time_unit")
    per_year = {"days": 365.25, "months": 12.0}.get(unit or "", 1.0)  # axis in years
    for label, color, t, s in drawn:
        ax.step(t / per_year, s, where="post", color=color, linewidth=1.6, label=label)
    events = ", ".join(str(v) for v in endpoint.get("event_values") or [])
    xlabel = f"{endpoint.get('time')} (years)" if per_year != 1.0 else f"{endpoint.get('time')}"
    ax.set_xlabel(xlabel, fontsize=8.5)
    ax.set_ylabel("survival probability", fontsize=8.5)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Kaplan-Meier: {name} (event: {endpoint.get('event')} in [{events}]; "
                 f"max distance {_fmt(endpoint.get('km_max_distance'))})", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.tick_params(labelsize=7.5)
    fig.subplots_adjust(left=0.09, bottom=0.14, right=0.98, top=0.9)
    return png(fig, f"Kaplan-Meier curves {name}")


# -- patient histories ----------------------------------------------------------------------

def history_counts(hist: Mapping[str, Any], child: str) -> str:
    """Share of patients with 0, 1, 2, ... rows of ``child``: real vs synthetic bars."""
    edges, real, synth = _arr(hist.get("edges")), _arr(hist.get("real")), _arr(hist.get("synthetic"))
    if not _ok(edges, real, synth) or real.shape != synth.shape or edges.size != real.size + 1:
        return ""
    fig = _figure(7.5, 2.9)
    ax = fig.add_subplot(1, 1, 1)
    # whole counts: one bar per count; wider bins (long histories) are labelled lo-hi
    x = np.arange(real.size)
    ax.bar(x - 0.2, np.nan_to_num(real), width=0.4, color=REAL, label="real patients")
    ax.bar(x + 0.2, np.nan_to_num(synth), width=0.4, color=SYNTH, label="synthetic patients")
    labels = [f"{lo:.0f}" if hi - lo <= 1 else f"{lo:.0f}–{hi - 1:.0f}"
              for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels[-1] = f"{edges[-2]:.0f}+"
    step = max(1, math.ceil(len(labels) / 20))
    ax.set_xticks(x[::step])
    ax.set_xticklabels(labels[::step], fontsize=7.5, rotation=0 if step == 1 and
                       len(labels) <= 20 else 40)
    ax.set_xlabel(f"rows of {_short(child, 24)} per patient", fontsize=8.5)
    ax.set_ylabel("share of patients", fontsize=8.5)
    ax.set_title(f"{_short(child, 24)} per patient (total variation {_fmt(hist.get('tv'))})",
                 fontsize=9)
    ax.legend(fontsize=7.5, frameon=False)
    ax.tick_params(labelsize=7.5)
    fig.subplots_adjust(left=0.09, bottom=0.17, right=0.98, top=0.9)
    return png(fig, f"rows of {child} per patient, real vs synthetic")


def history_pairs(pairs: Sequence[Mapping[str, Any]]) -> str:
    """Joint distributions (real | synthetic) of number pairs binned at real quantiles,
    drawn cell by cell (equal widths) with the bin edges as tick labels."""
    good = []
    for p in pairs:
        real, synth = _arr(p.get("real")), _arr(p.get("synthetic"))
        xe, ye = _arr(p.get("x_edges")), _arr(p.get("y_edges"))
        if _ok(real, synth) and real.ndim == 2 and real.shape == synth.shape and \
                real.shape == (xe.size - 1, ye.size - 1):
            good.append((p, real, synth, xe, ye))
    if not good:
        return ""
    height = 3.0 * math.ceil(len(good) / 2)
    fig = _figure(PAGE_INCHES, height)
    for n, (pair, real, synth, xe, ye) in enumerate(good):
        r, c = divmod(n, 2)
        vmax = float(np.nanmax([np.nanmax(real), np.nanmax(synth)])) or 1.0
        for side, (grid, title) in enumerate(((real, "real"), (synth, "synthetic"))):
            ax = fig.add_axes((0.07 + c * 0.5 + side * 0.205, 1 - (r + 1) * 3.0 / height
                               + 0.75 / height, 0.17, 1.8 / height))
            ax.pcolormesh(np.arange(xe.size), np.arange(ye.size), np.nan_to_num(grid).T,
                          cmap="viridis", vmin=0, vmax=vmax, shading="flat")
            ax.set_title(title, fontsize=8.5, color=REAL if side == 0 else SYNTH)
            for axis, edges, setter in ((ax.xaxis, xe, ax.set_xticklabels),
                                        (ax.yaxis, ye, ax.set_yticklabels)):
                ticks = np.unique(np.linspace(0, edges.size - 1, 5).round().astype(int))
                axis.set_ticks(ticks)
                setter([f"{edges[i]:.3g}" for i in ticks] if axis is ax.xaxis or side == 0
                       else [], fontsize=6.5)
            ax.set_xlabel(f"{_short(pair.get('x'), 18)} (quantile bins)", fontsize=7.5)
            if side == 0:
                ax.set_ylabel(_short(pair.get("y"), 18), fontsize=7.5)
        fig.text(0.07 + c * 0.5 + 0.19, 1 - r * 3.0 / height - 0.12 / height,
                 f"{_short(pair.get('x'), 18)} × {_short(pair.get('y'), 18)}   (|r| real "
                 f"{_fmt(pair.get('real_abs_correlation'))}, synthetic "
                 f"{_fmt(pair.get('synthetic_abs_correlation'))})",
                 ha="center", va="top", fontsize=9, weight="bold")
    return png(fig, "joint distributions of the most correlated number pairs, real vs synthetic")
