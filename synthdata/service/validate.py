"""Submit-time checks of a job: the whole pipeline model, as the CLI would check it, and
the server's limits, so an invalid or oversized job never takes a worker slot.

Every problem is a ``ConfigError`` whose message is the CLI's (``pipeline.generator.params:
...``); the app answers it with 422.
"""

from __future__ import annotations

from typing import Any

from synthdata.errors import ConfigError
from synthdata.service.settings import ServiceSettings

# generator parameters bounded by ``max_epochs`` (the rest by ``max_param_value``)
EPOCH_PARAMS = ("epochs", "max_iter", "n_timesteps", "sampling_steps", "discriminator_steps")


def check_job(cfg: dict[str, Any], settings: ServiceSettings) -> None:
    """Validate a job's full pipeline dict (from ``build_config``) before queueing it."""
    from synthdata.pipeline.budget import dp_config
    from synthdata.pipeline.config import PipelineConfig
    from synthdata.pipeline.release import resolve_gate

    parsed = PipelineConfig.from_dict(cfg, where="pipeline")
    if not parsed.output.neutralize_formulas:
        raise ConfigError("pipeline.output.neutralize_formulas: must stay true in the service: "
                          "downloaded CSVs are opened in spreadsheets")
    if parsed.seed < 0:
        raise ConfigError(f"pipeline.seed: must be a non-negative integer, got {parsed.seed}")
    check_limits(parsed, settings)
    try:
        resolve_gate(parsed.gate)
    except ConfigError as err:
        raise ConfigError(f"pipeline.{err}") from None
    try:
        privacy = dp_config(parsed)
    except ConfigError as err:
        raise ConfigError(f"pipeline.{err}") from None
    if privacy is not None:
        from synthdata.privacy.group import check_privacy_unit

        check_privacy_unit(privacy, linked=parsed.data.tables is not None)
    _check_generator(parsed, privacy)


def check_limits(parsed: Any, settings: ServiceSettings) -> None:
    rows = parsed.sample.rows
    if rows is not None and rows > settings.max_sample_rows:
        raise ConfigError(f"pipeline.sample.rows: {rows} is more than this server's limit of "
                          f"{settings.max_sample_rows} rows (GET /v1/limits)")
    for key, value in parsed.generator.params.items():
        limit = settings.max_epochs if key in EPOCH_PARAMS else settings.max_param_value
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if v > limit:
                raise ConfigError(f"pipeline.generator.params.{key}: {v} is more than this "
                                  f"server's limit of {limit} (GET /v1/limits)")


def _check_generator(parsed: Any, privacy: Any) -> None:
    """Build the generator on an empty schema and run its own parameter checks (unknown
    names, negative or zero sizes, a negative seed): the messages ``synthdata run`` gives."""
    from synthdata.models.registry import available_generators, make_generator
    from synthdata.schema.model import Schema

    kind = parsed.generator.kind
    if kind not in available_generators():
        raise ConfigError(f"pipeline.generator.kind: unknown generator {kind!r}; "
                          f"choose one of {available_generators()}")
    try:
        gen = make_generator(kind, Schema(columns=()), seed=parsed.seed, privacy=privacy,
                             **parsed.generator.params)
        gen._validate_params()
    except ConfigError as err:
        raise ConfigError(f"pipeline.generator.params: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"pipeline.generator.params: {err}") from None
