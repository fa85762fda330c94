"""A great-expectations (1.x) suite built from the schema, and validation of a frame.

great-expectations is an optional dependency (extra ``validate``) and slow to import, so
it is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.io.files import atomic_write_text
from synthdata.schema import Column, ColumnKind, Schema
from synthdata.schema.model import to_native

logger = logging.getLogger(__name__)

_INSTALL_HINT = ("great-expectations is not installed; install the 'validate' extra: "
                 "pip install 'synthdata[validate]' (or pip install 'great-expectations>=1.3')")

_INT_TYPES = ["int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
              "Int64", "Int32", "Int16", "Int8", "UInt64", "UInt32", "UInt16", "UInt8"]
_FLOAT_TYPES = ["float64", "float32", "Float64", "Float32"]


def _gx() -> Any:
    try:
        import great_expectations as gx
    except ImportError as err:
        raise ConfigError(_INSTALL_HINT) from err
    return gx


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating one frame: ``passed`` only when every expectation held.

    ``results`` holds one dict per expectation (type, column, success, counts) and never
    the data values themselves; ``suite_json`` is the suite that was applied.
    """

    passed: bool
    results: list[dict[str, Any]] = field(default_factory=list)
    suite_json: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Payload for ``report.add_section("validation", ...)``."""
        return {"passed": self.passed, "n_expectations": len(self.results),
                "n_failed": sum(not r["success"] for r in self.results),
                "results": [dict(r) for r in self.results]}

    def save_suite(self, path: str | Path) -> Path:
        return atomic_write_text(Path(path), self.suite_json)


def _expectation_specs(schema: Schema) -> list[tuple[str, dict[str, Any]]]:
    """(expectation class name, kwargs) for every rule the schema implies."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": schema.names, "exact_match": True})]
    for col in schema.columns:
        specs.append(("ExpectColumnToExist", {"column": col.name}))
        if not col.nullable:
            specs.append(("ExpectColumnValuesToNotBeNull", {"column": col.name}))
        specs.extend(_column_specs(col, schema))
    return specs


def _column_specs(col: Column, schema: Schema) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    name = col.name
    if col.kind == ColumnKind.INTEGER:
        types = _INT_TYPES + (_FLOAT_TYPES if col.nullable else [])
        out.append(("ExpectColumnValuesToBeInTypeList", {"column": name, "type_list": types}))
    elif col.kind == ColumnKind.CONTINUOUS:
        out.append(("ExpectColumnValuesToBeInTypeList",
                    {"column": name, "type_list": _FLOAT_TYPES + _INT_TYPES}))
    if col.kind.is_numeric and (col.min is not None or col.max is not None):
        out.append(("ExpectColumnValuesToBeBetween",
                    {"column": name, "min_value": col.min, "max_value": col.max}))
    if col.kind.is_discrete and col.categories:
        out.append(("ExpectColumnValuesToBeInSet",
                    {"column": name, "value_set": [to_native(c) for c in col.categories]}))
    if col.kind == ColumnKind.DATETIME and col.datetime_format:
        out.append(("ExpectColumnValuesToMatchStrftimeFormat",
                    {"column": name, "strftime_format": col.datetime_format}))
    if schema.primary_key == name:
        out.append(("ExpectColumnValuesToBeUnique", {"column": name}))
    return out


def build_suite(schema: Schema) -> Any:
    """Build a ``great_expectations.ExpectationSuite`` from ``schema``.

    Rules: the exact column set; each column exists; not-null unless nullable; numeric type
    (integer columns accept float when nullable); bounds ``[min, max]``; category sets of
    categorical/boolean columns; datetime format of text datetimes; a unique primary key.
    """
    gx = _gx()
    import great_expectations.expectations as gxe

    expectations = [getattr(gxe, cls_name)(**kwargs)
                    for cls_name, kwargs in _expectation_specs(schema)]
    return gx.ExpectationSuite(name=f"synthdata-{schema.name}", expectations=expectations)


def suite_to_json(suite: Any) -> str:
    """Suite as stable JSON (GE's random ids removed so equal schemas give equal files)."""
    data = suite.to_json_dict()
    data.pop("id", None)
    for exp in data.get("expectations", []):
        exp.pop("id", None)
    data.setdefault("meta", {})["generated_by"] = "synthdata.validate"
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def save_suite(schema: Schema, path: str | Path) -> Path:
    """Write the suite built from ``schema`` as JSON (atomically)."""
    return atomic_write_text(Path(path), suite_to_json(build_suite(schema)))


def _context(gx: Any) -> Any:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                               analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False,
                                                                metric_calculations=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def validate_frame(df: pd.DataFrame, schema: Schema) -> ValidationResult:
    """Validate ``df`` with the suite built from ``schema``; never raises on failed rules.

    Examples
    --------
    >>> result = validate_frame(synth, schema)          # doctest: +SKIP
    >>> result.passed, result.save_suite("run/expectations.json")  # doctest: +SKIP
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"validate_frame: expected a pandas DataFrame, got {type(df).__name__}")
    gx = _gx()
    suite = build_suite(schema)
    suite_json = suite_to_json(suite)
    ctx = _context(gx)
    suite = ctx.suites.add(suite)
    batch_def = (ctx.data_sources.add_pandas("synthdata")
                 .add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all"))
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    outcome = batch.validate(suite)
    results = []
    for r in outcome.results:
        cfg = r.expectation_config
        kwargs = cfg.kwargs
        entry: dict[str, Any] = {"expectation": cfg.type, "column": kwargs.get("column"),
                                 "success": bool(r.success)}
        res = r.result or {}
        for key in ("element_count", "unexpected_count", "unexpected_percent",
                    "observed_value"):
            if key in res and key != "observed_value":
                entry[key] = res[key]
        if cfg.type == "expect_column_values_to_be_in_type_list":
            entry["observed_type"] = str(res.get("observed_value"))
        if r.exception_info and r.exception_info.get("raised_exception"):
            entry["error"] = str(r.exception_info.get("exception_message"))[:300]
        results.append(entry)
    passed = bool(outcome.success)
    logger.info("validation: %d expectations, %d failed", len(results),
                sum(not r["success"] for r in results))
    return ValidationResult(passed=passed, results=results, suite_json=suite_json)
