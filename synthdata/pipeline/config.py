"""Typed pipeline configuration: YAML loads into these models; unknown keys are errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from synthdata.errors import ConfigError, format_validation_error


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    """Where the real table comes from. Relative paths are relative to the YAML file.

    One source: ``path`` (a CSV/Parquet file), ``tables`` (linked files) or ``sql`` (a
    SQLAlchemy URL, or ``env:NAME`` for a URL kept in an environment variable) with either
    ``query`` (a SELECT) or ``table`` (a whole table). With ``path``, ``table`` only names
    the schema. A relative SQLite path (``sqlite:///x.db``) is relative to the YAML file.
    """

    path: Path | None = None
    tables: dict[str, Path] | None = None  # multi-table: {table name: file}
    sql: str | None = None     # SQLAlchemy URL (its password is never logged or written)
    query: str | None = None   # with sql: the SELECT to read
    fhir: Path | None = None  # FHIR JSON/NDJSON file or folder (synthdata.pipeline.fhir)
    schema_path: Path | None = Field(default=None, alias="schema")
    table: str | None = None
    format: Literal["csv", "parquet"] | None = None
    encoding: str = "utf-8"
    drop: tuple[str, ...] = ()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if sum(x is not None for x in (self.path, self.tables, self.sql, self.fhir)) != 1:
            raise ValueError("give exactly one of 'path' (one table), 'tables' (linked tables), "
                             "'sql' (a database URL with 'query' or 'table') or 'fhir' (FHIR "
                             "resources)")
        if self.sql is not None and (self.query is None) == (self.table is None):
            raise ValueError("'sql' needs exactly one of 'query' (SELECT ...) or 'table'")
        if self.query is not None and self.sql is None:
            raise ValueError("'query' needs 'sql' (the database URL)")
        if self.fhir is not None and self.schema_path is not None:
            raise ValueError("'fhir' uses the shipped FHIR mapping; remove 'schema'")
        if self.tables is not None and self.schema_path is None:
            raise ValueError("linked tables need a multi-table 'schema' file (keys and links)")
        return self

    @property
    def stem(self) -> str:
        if self.fhir is not None:
            return self.fhir.stem
        if self.path is not None:
            return self.path.stem
        if self.sql is not None:
            return self.table or "query"
        return (self.schema_path or Path("data")).stem

    @property
    def source(self) -> str:
        """The data source for messages and manifests (a SQL URL's password masked)."""
        if self.sql is not None:
            from synthdata.io.sql import safe_url

            return f"{safe_url(self.sql)} ({'table ' + repr(self.table) if self.query is None else 'query'})"
        if self.fhir is not None:
            return str(self.fhir)
        return str(self.path) if self.path is not None else "data.tables"


class SplitConfig(_Frozen):
    holdout: float = Field(default=0.3, ge=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0)


class GeneratorConfig(_Frozen):
    kind: str = "gmm"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _no_seed_here(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "seed" in value or "privacy" in value:
            raise ValueError("set 'seed' at the top level and 'privacy' in its own block")
        return value


class AugmentConfig(_Frozen):
    """``sample.augment``: extra rows for the under-represented groups of ``column``
    (:func:`synthdata.augment`). ``target_share``: ``balanced`` or ``{value: share}``."""

    column: str
    target_share: Literal["balanced"] | dict[Any, float] = "balanced"


class SampleConfig(_Frozen):
    """``rows`` (default: as many as the training split) are drawn and written in chunks of
    ``chunk_rows``, so memory does not grow with ``rows``; the first chunk is what the
    evaluation reads (:mod:`synthdata.pipeline.stream` states the reproducibility rule).

    With ``augment`` the output is the extra rows only (``rows`` of them, default the fewest
    that reach ``target_share``), drawn group by group with conditional sampling; see
    docs/fairness.md."""

    rows: PositiveInt | None = None  # None: as many rows as the training split
    conditions: dict[str, Any] = Field(default_factory=dict)
    chunk_rows: PositiveInt = 100_000
    augment: AugmentConfig | None = None


class OutputConfig(_Frozen):
    dir: Path = Path("reports")
    format: Literal["csv", "parquet"] = "csv"
    # text cells starting with = + - @ tab CR (spreadsheet formulas) get a leading "'"
    neutralize_formulas: bool = True


class EvaluateConfig(_Frozen):
    target: str | None = None
    full: bool = True  # False: only the fast fidelity basics
    # per-group fidelity/utility/fairness (synthdata.evaluate.groups); default: the schema's
    # pii: sensitive columns. Groups under min_group_size rows are suppressed.
    sensitive: tuple[str, ...] | None = None
    min_group_size: int = Field(default=20, ge=1)
    # leak columns left out of train-on-synthetic/test-on-real (``column`` or
    # ``table.column``), e.g. a follow-up time that gives the outcome away
    exclude: tuple[str, ...] = ()


class RareCategoriesConfig(_Frozen):
    """``deid.rare_categories``: categories rarer than ``k`` rows, before fitting
    (:mod:`synthdata.pipeline.rare`). ``action``: ``merge`` into ``other`` (default),
    ``suppress`` (missing), ``keep`` (off). ``columns``: limit to these (default: every
    categorical column)."""

    k: int = Field(default=10, ge=2)
    action: Literal["merge", "suppress", "keep"] = "merge"
    other: str = "other"
    columns: tuple[str, ...] | None = None


class DeidConfig(_Frozen):
    """HIPAA Safe Harbor de-identification before fitting (:mod:`synthdata.medical.safe_harbor`).

    On by default, for every pipeline: columns the schema marks ``pii: direct`` or ``pii: quasi``
    are dropped or transformed by their identifier type, and ``text`` columns are dropped unless
    listed in ``safe_text``. Before that, every column is scanned for identifiers by name and
    values (:mod:`synthdata.medical.identifiers`); a suspected identifier that the schema does
    not mark (and that ``types`` does not list) is handled by ``unmarked``: ``error`` (default:
    the run stops before fitting and names each column, its evidence and the ways out) or
    ``transform`` (the Safe Harbor rule for the detected type is applied, and the report says
    so). ``pii: none`` on a column records "reviewed, not an identifier". ``deid: false`` (or
    ``enabled: false``) turns the transformations off, and the report says so; the scan still
    runs and unmarked suspects are still an error. ``reference_year`` (for birth years over 89)
    defaults to the latest year among the data's own dates. With linked tables, ``types`` and
    ``safe_text`` name columns as ``table.column`` and the patient is the root table's key.
    """

    enabled: bool = True
    unmarked: Literal["error", "transform"] = "error"
    dates: Literal["year", "shift"] = "year"
    identifiers: Literal["drop", "pseudonym"] = "drop"
    patient_column: str | None = None  # one table with dates: shift; linked tables: the root key
    max_shift_days: PositiveInt = 365
    reference_year: int | None = Field(default=None, ge=1900, le=2200)  # None: the data's latest
    safe_text: tuple[str, ...] = ()
    types: dict[str, str] = Field(default_factory=dict)  # {column: identifier type}
    rare_categories: RareCategoriesConfig = RareCategoriesConfig()

    @field_validator("rare_categories", mode="before")
    @classmethod
    def _rare_switch(cls, value: Any) -> Any:
        """``rare_categories: false`` keeps rare categories; ``true``/empty: the default."""
        if value is None or value is True:
            return {}
        if value is False:
            return {"action": "keep"}
        return value

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        from synthdata.medical.safe_harbor import IdentifierType

        allowed = [t.value for t in IdentifierType]
        bad = {c: t for c, t in value.items() if t not in allowed}
        if bad:
            raise ValueError(f"unknown identifier type(s) {bad}; choose from {allowed}")
        return value


class PipelineConfig(_Frozen):
    """A whole pipeline run: data → split → fit → sample → evaluate → gate → export."""

    name: str | None = None
    seed: int = Field(default=0, ge=0)  # numpy's SeedSequence takes non-negative integers
    data: DataConfig
    split: SplitConfig = SplitConfig()
    generator: GeneratorConfig = GeneratorConfig()
    sample: SampleConfig = SampleConfig()
    output: OutputConfig = OutputConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    privacy: dict[str, Any] | None = None
    gate: dict[str, Any] | str | None = None
    deid: DeidConfig = DeidConfig()
    # threads for torch/OpenMP/BLAS in fit and sample (None: the cores available to the
    # process, synthdata._threads); the same as generator.params.threads
    threads: PositiveInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _threads_to_generator(cls, raw: Any) -> Any:
        """Top-level ``threads`` goes to the generator's parameters (every input kind)."""
        if not isinstance(raw, dict) or raw.get("threads") is None:
            return raw
        given = raw.get("generator")
        gen: dict[str, Any] = given if isinstance(given, dict) else {}
        if (given is not None and not isinstance(given, dict)) or \
                gen.get("params") is not None and not isinstance(gen["params"], dict):
            return raw  # a malformed block: the model's own error names it
        params: dict[str, Any] = dict(gen.get("params") or {})
        if params.get("threads", raw["threads"]) != raw["threads"]:
            raise ValueError(f"threads is given twice ({raw['threads']!r} and "
                             f"generator.params.threads {params['threads']!r}); keep one")
        return {**raw, "generator": {**gen, "params": {**params, "threads": raw["threads"]}}}

    @field_validator("deid", mode="before")
    @classmethod
    def _deid_switch(cls, value: Any) -> Any:
        """``deid: false`` / ``deid: true`` / an empty ``deid:`` are shorthands."""
        if value is None:
            return {}
        if isinstance(value, bool):
            return {"enabled": value}
        return value

    @model_validator(mode="after")
    def _deid_patient(self) -> PipelineConfig:
        if (self.deid.enabled and self.deid.dates == "shift" and self.data.tables is None
                and self.deid.patient_column is None):
            raise ValueError("deid.dates: shift needs deid.patient_column (the column that "
                             "identifies a patient, so all of a patient's dates move together)")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        """Load and validate a pipeline YAML; paths become relative to its folder."""
        from synthdata.schema.model import load_yaml

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"pipeline file not found: {p}")
        try:
            raw = load_yaml(p)
        except Exception as err:  # SchemaError from the YAML reader, re-labelled
            raise ConfigError(str(err)) from err
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a pipeline must be a YAML mapping with at least a 'data' block")
        cfg = cls.from_dict(raw, where=str(p))
        return cfg.resolve_paths(p.parent.resolve())

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, where: str = "pipeline") -> PipelineConfig:
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(f"{where}: " + format_validation_error(err)) from None

    def resolve_paths(self, base: Path) -> PipelineConfig:
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else Path(os.path.normpath(base / p))

        tables = None if self.data.tables is None else {
            name: fix(path) for name, path in self.data.tables.items()}
        data = self.data.model_copy(update={"path": fix(self.data.path), "tables": tables,
                                            "schema_path": fix(self.data.schema_path),
                                            "sql": _fix_sqlite(self.data.sql, base),
                                            "fhir": fix(self.data.fhir)})
        output = self.output.model_copy(update={"dir": fix(self.output.dir)})
        from synthdata.pipeline.budget import resolve_budget_path

        privacy = resolve_budget_path(self.privacy, base)  # privacy.budget.file
        return self.model_copy(update={"data": data, "output": output, "privacy": privacy})


def with_threads(cfg: PipelineConfig, threads: int) -> PipelineConfig:
    """``cfg`` with ``threads`` (``synthdata run --threads``; overrides the YAML's)."""
    params = {**cfg.generator.params, "threads": threads}
    return cfg.model_copy(update={"threads": threads,
                                  "generator": cfg.generator.model_copy(update={"params": params})})


def _fix_sqlite(url: str | None, base: Path) -> str | None:
    """A relative SQLite file in the URL becomes relative to the YAML file's folder."""
    prefix = "sqlite:///"
    if url is None or not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    rest = url[len(prefix):]
    if not rest or rest.startswith(":memory:"):
        return url
    return prefix + os.path.normpath(base / rest)


def public_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The config as JSON-ready data for manifests, a SQL URL's password masked."""
    import json

    out = json.loads(cfg.model_dump_json(by_alias=True))
    if cfg.data.sql is not None:
        from synthdata.io.sql import safe_url

        out["data"]["sql"] = safe_url(cfg.data.sql)
    return dict(out)
