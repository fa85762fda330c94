"""Report: the metrics of one evaluation, as JSON (versioned) and as a self-contained page.

JSON schema, ``report_version`` 1 (every key always present; ``null`` = not computed)::

    {
      "report_version": 1,
      "generator": "synthdata <version>",
      "metrics":     {name: number | null},            # flat; the names gates use
      "metric_info": {name: {"higher_is_better": bool | null, "description": str,
                             "needs": str}},
      "notes":       [str],                            # why a metric is null, defaults used
      "meta":        {"n_train", "n_synthetic", "n_holdout", "columns", "excluded_columns",
                      "target", "seed", "sections", "timings": {step: seconds},
                      "subsampling": {...}},
      "columns":     [{"name", "kind", "metric": "ks" | "tv", "distance",
                       "distance_holdout", "baseline_distance", "missing_rate_real",
                       "missing_rate_synth", "missing_rate_diff",
                       "plot": {"type": "hist", "edges", "real", "synth"}
                             | {"type": "bar", "labels", "real", "synth"}}],
      "pairs":       {"columns", "real", "synth", "difference"} | null,  # k x k matrices
      "detection":   {"auc", "fold_aucs", "n_per_side", "real", "folds"} | null,
      "utility":     {"target", "task", "tstr_*", "trtr_*", "utility_ratio"} | {"note"} | null,
      "coverage":    {"coverage_categories", "coverage_range", "categories", "range"} | null,
      "leakage":     {"exact_copies": {...}, "dcr": {..., "histogram"},
                      "mia": {"attacks": {name: {"auc", "tpr_at_1pct_fpr",
                                                 "roc": {"fpr", "tpr"}}}, ...}} | null,
      "risks":       {"singling_out" | "linkability" | "inference":
                        {"risk", "ci_low", "ci_high", "attack_rate", "control_rate",
                         "baseline_rate", "n_attacks", ...} | {"note"},
                      "exposed_records": [{"row", "attacks_succeeded", ...}],
                      "quasi_columns", "sensitive_columns"} | null,
      "sections":    {name: payload},    # added by add_section: privacy, gate, validation,
                                         # timings, manifest, deidentification, survival, ...
      "summary":     {"quality": {"score": 0-100 | null, "grade": "A".."F" | "?",
                                  "components", "weights", "capped"},
                      "privacy": {"level": "high" | "medium" | "low" | "unknown",
                                  "basis": "dp" | "leakage", "reason", ...},
                      "dp": {"epsilon", "delta", "unit", "budget"} | null,
                      "gate_status": "passed" | "failed" | "not_judged",
                      "warnings": [str]}  # computed from the keys above (score.py), never
    }                                     # read back: re-rendering recomputes it

``pairs`` also holds ``bivariate``: joint frequency grids (real, synthetic) of the pairs whose
association differs most; ``leakage.dcr`` holds ``nndr_histogram`` and ``embedding`` (a 2-D
PCA as density grids). Keys added after version 1 was published are optional when reading.

Rows in ``exposed_records`` are 0-based positions in the training frame; no values are
ever written to the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from synthdata.errors import ConfigError
from synthdata.evaluate.metrics import METRIC_INFO
from synthdata.jsonsafe import json_safe

if TYPE_CHECKING:
    import pandas as pd

REPORT_VERSION = 1


class ReportPaths(NamedTuple):
    """Where :meth:`Report.save` wrote the report."""

    json: Path
    html: Path
_BODY_KEYS = ("columns", "pairs", "detection", "utility", "coverage", "leakage", "risks")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("synthdata")
    except Exception:  # noqa: BLE001 - not installed as a distribution: still report
        return "unknown"


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, NaN and infinities become null."""
    return json_safe(value, infinity="null")


class Report:
    """Result of :func:`synthdata.evaluate.evaluate`.

    ``metrics`` is a flat mapping of metric name to number (None = not computed, see
    ``notes``). Other stages attach their own sections with :meth:`add_section`.
    """

    def __init__(self, *, metrics: Mapping[str, Any], meta: Mapping[str, Any],
                 notes: list[str] | None = None, body: Mapping[str, Any] | None = None,
                 steps: list[str] | None = None,
                 sections: Mapping[str, Any] | None = None) -> None:
        self.metrics: dict[str, Any] = {k: to_jsonable(v) for k, v in metrics.items()}
        self.meta = dict(meta)
        self.notes = list(notes or [])
        self.body = dict(body or {})
        self.steps = list(steps or [])
        self.sections: dict[str, Any] = dict(sections or {})

    def add_section(self, name: str, payload: Mapping[str, Any]) -> None:
        """Attach a named section (e.g. "privacy", "gate", "validation", "timings").

        It appears under ``sections`` in the JSON and as its own block in the HTML; adding
        a name twice replaces the earlier payload.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("report section name must be a non-empty string")
        if not isinstance(payload, Mapping):
            raise ConfigError(f"report section {name!r} must be a mapping, got "
                              f"{type(payload).__name__}")
        self.sections[name] = to_jsonable(payload)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "generator": f"synthdata {_version()}",
            "metrics": dict(self.metrics),
            "metric_info": {name: {"higher_is_better": info.higher_is_better,
                                   "description": info.description, "needs": info.needs}
                            for name, info in METRIC_INFO.items() if name in self.metrics},
            "notes": list(self.notes),
            "meta": self.meta,
        }
        for key in _BODY_KEYS:
            out[key] = self.body.get(key)
        out["sections"] = dict(self.sections)
        out = to_jsonable(out)
        from synthdata.evaluate.score import summary

        out["summary"] = to_jsonable(summary(out))
        if self.sections.get("release"):  # a DP run: the summary reads real-data metrics too
            out["summary"]["privacy_label"] = self.sections["release"].get("label")
        return out

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output (e.g. to re-render the HTML)."""
        version = data.get("report_version")
        if version != REPORT_VERSION:
            raise ConfigError(f"report version {version!r} is not supported (this synthdata "
                              f"reads version {REPORT_VERSION})")
        body = {k: data.get(k) for k in _BODY_KEYS if data.get(k) is not None}
        return cls(metrics=data.get("metrics", {}), meta=data.get("meta", {}),
                   notes=data.get("notes", []), body=body,
                   sections=data.get("sections", {}))

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    def to_html(self) -> str:
        """A self-contained page (inline CSS, plots as base64 PNG, no network)."""
        from synthdata.evaluate._html import render

        return render(self.to_dict())

    def _repr_html_(self) -> str:
        """The notebook view: verdict, quality score, privacy level and tiles (no plots)."""
        from synthdata.evaluate._html import render_inline

        return render_inline(self.to_dict())

    @property
    def summary(self) -> dict[str, Any]:
        """Quality score and grade, privacy level, DP facts, gate status, warnings.

        See :mod:`synthdata.evaluate.score` (and docs/report.md) for the definitions.
        """
        return self.to_dict()["summary"]

    def save(self, folder: str | Path) -> ReportPaths:
        """Write ``report.json`` and ``report.html`` into ``folder`` (created if missing).

        Each file is written atomically (a temporary file, then a rename), so a failure
        leaves no half-written report. Returns the two paths.

        Examples
        --------
        >>> paths = report.save("out")          # doctest: +SKIP
        >>> paths.html                          # doctest: +SKIP
        PosixPath('out/report.html')
        """
        from synthdata.io.files import atomic_write_text

        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"cannot save the report into {str(folder)!r}: it is a file, not "
                              "a folder; give a folder path")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the report folder {str(folder)!r}: "
                              f"{err.strerror or err}") from err
        # render both before writing either: an error leaves no report half-saved
        text_json, text_html = self.to_json(), self.to_html()
        json_path = atomic_write_text(folder / "report.json", text_json)
        html_path = atomic_write_text(folder / "report.html", text_html)
        return ReportPaths(json=json_path, html=html_path)

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: name, label, group, value, operator, threshold,
        threshold_source, status, explanation.

        ``status`` is "pass"/"fail" against the gate's rule for the metric when there is one,
        else against the documented default (``threshold_source`` says which); "info" when
        the metric has no threshold; "missing" when it was not computed.
        """
        import pandas as pd

        from synthdata.evaluate.score import tiles

        rows = [{"name": t.name, "label": t.label, "group": t.group, "value": t.value,
                 "operator": t.operator, "threshold": t.threshold,
                 "threshold_source": t.threshold_source or None, "status": t.status,
                 "explanation": t.explanation} for t in tiles(self.to_dict())]
        columns = ["name", "label", "group", "value", "operator", "threshold",
                   "threshold_source", "status", "explanation"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["value"] = frame["value"].astype("float64")
        frame["threshold"] = frame["threshold"].astype("float64")
        return frame

    def __repr__(self) -> str:
        summary = self.summary
        quality, privacy = summary["quality"], summary["privacy"]
        score = "—" if quality["score"] is None else f"{quality['score']:.0f}"
        shown = {k: self.metrics.get(k) for k in ("shapes", "pair_trends", "detection_auc",
                                                   "exact_copies", "dcr_share", "mia_auc")}
        return (f"Report(gate={summary['gate_status']}, quality={score}/100 "
                f"{quality['grade']}, privacy={privacy['level']}, {shown})")
