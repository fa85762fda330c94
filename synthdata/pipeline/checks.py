"""What a pipeline run checks before it reads data or trains: the config alone
(:func:`preflight`), then the columns a run refers to against the final schema
(:func:`check_run_columns`). Shared by the one-table, linked-table and FHIR runs."""

from __future__ import annotations

from synthdata.errors import ConfigError
from synthdata.pipeline.budget import dp_config
from synthdata.pipeline.config import PipelineConfig
from synthdata.pipeline.release import resolve_gate
from synthdata.schema.model import Schema


def preflight(cfg: PipelineConfig) -> None:
    """Check what needs no data, before any is read: ``ConfigError`` naming the key."""
    from synthdata.models.registry import check_generator_name, check_generator_params
    from synthdata.privacy.group import check_privacy_unit

    check_privacy_unit(dp_config(cfg), linked=cfg.data.tables is not None)
    resolve_gate(cfg.gate)
    try:
        check_generator_name(cfg.generator.kind)
    except ConfigError as err:
        raise ConfigError(f"generator.kind: {err}") from None
    try:
        check_generator_params(cfg.generator.kind, dict(cfg.generator.params))
    except ConfigError as err:
        raise ConfigError(f"generator.params: {err}") from None
    from synthdata._threads import check_threads

    check_threads(cfg.generator.params.get("threads"), where="generator.params.threads")
    if cfg.data.tables is not None and cfg.sample.conditions:
        raise ConfigError("sample.conditions: conditional sampling is not available for linked "
                          "tables (data.tables); remove sample.conditions or synthesise one table")
    augment = cfg.sample.augment
    if augment is not None:
        from synthdata.augmentation import check_target_share

        if cfg.data.tables is not None or cfg.data.fhir is not None:
            raise ConfigError("sample.augment: augmentation is available for one table only "
                              "(data.path or data.sql); remove sample.augment")
        if cfg.sample.conditions:
            raise ConfigError("sample.augment: give either sample.augment (rows per group of "
                              f"{augment.column!r}) or sample.conditions, not both")
        check_target_share(augment.target_share, where="sample.augment")


def check_run_columns(cfg: PipelineConfig, schema: Schema,
                      before_deid: Schema | None = None) -> None:
    """Check ``evaluate.target`` and ``sample.conditions`` against the final schema (after
    de-identification), before fitting: ``ConfigError`` naming the key and the choices."""
    from synthdata.models.conditions import split_conditions

    target = cfg.evaluate.target
    if target is not None:
        learned = [c.name for c in schema.columns if c.kind.is_learned]
        if target not in learned:
            if target in schema:
                why = "it is an id or free-text column, which are not evaluated"
            elif before_deid is not None and target in before_deid:
                why = ("de-identification removed it (an identifier or free text); mark it "
                       "pii: none in the schema if it is not one")
            else:
                why = "no such column"
            raise ConfigError(f"evaluate.target: {target!r}: {why}; choose one of {learned}")
    split_conditions(schema, cfg.sample.conditions or None, where="sample.conditions")
    augment = cfg.sample.augment
    if augment is not None:
        if augment.column not in schema:
            raise ConfigError(f"sample.augment.column: {augment.column!r} is not a column of "
                              f"the data; columns are {list(schema.names)}")
        where = "sample.augment"
        values = [] if isinstance(augment.target_share, str) else list(augment.target_share)
        for value in values or [None]:  # the column must be discrete; each value a category
            if value is None:
                kind = schema[augment.column].kind
                if not kind.is_discrete:
                    raise ConfigError(f"{where}.column: {augment.column!r} is {kind.value}; "
                                      "augmentation needs a categorical or boolean column "
                                      "(declare kind: categorical in the schema)")
                continue
            split_conditions(schema, {augment.column: value}, where=f"{where}.target_share")
    if cfg.evaluate.sensitive:
        from synthdata.evaluate.groups import sensitive_columns

        sensitive_columns(schema, cfg.evaluate.sensitive)
