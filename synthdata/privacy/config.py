"""``DPConfig``: the privacy block of a generator or pipeline (typed, frozen, no extra keys)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthdata.errors import ConfigError

__all__ = ["DPConfig", "PrivacyInput", "as_dp_config", "default_delta"]


def default_delta(n_rows: int) -> float:
    """``min(1e-5, 1/(10·n))`` rounded *down* to a power of ten (so never above ``1/(10·n)``)."""
    if not isinstance(n_rows, int | float) or n_rows < 1:
        raise ConfigError(f"n_rows must be a positive row (or patient) count, got {n_rows!r}")
    bound = min(1e-5, 1.0 / (10.0 * float(n_rows)))
    power = math.floor(math.log10(bound))
    value = 10.0**power
    while value > bound:  # guard against log10 rounding
        power -= 1
        value = 10.0**power
    return float(f"1e{power}")


class DPConfig(BaseModel):
    """Differential-privacy settings, accepted as ``privacy=`` by every generator and as the
    ``privacy:`` block of a pipeline YAML.

    * ``epsilon`` -- total ε of the released artefact (every data-touching step included).
    * ``delta`` -- total δ; ``None`` means "derive from the row count":
      :meth:`resolve_delta` gives ``min(1e-5, 1/(10·n))`` rounded down to a power of ten.
      The resolved value is recorded in the ledger.
    * ``accountant`` -- opacus accountant for DP-SGD: ``prv`` (default, tightest) or ``rdp``;
      both are upper bounds. ``gdp`` (a central-limit approximation, not an upper bound) is
      refused with a message saying so.
    * ``max_grad_norm`` -- per-sample gradient clipping norm for DP-SGD.
    * ``preprocessing_share`` -- fraction of ε for DP preprocessing (bounds, categories,
      missing rates, condition marginals); 0 when every such fact is public in the schema.
    * ``dpsgd_delta_share`` -- fraction of δ at which DP-SGD is accounted; the rest goes to
      the zCDP part (conversion and category thresholds). See ``accounting.compose``.
    * ``threshold_delta_share`` -- fraction of the zCDP part's δ that DP category discovery
      (thresholded histograms) may spend in total, across all columns.
    * ``unit`` -- the unit of privacy named in the report: one ``row`` or one ``patient``.
    * ``max_rows_per_unit`` -- linked tables (patient-level privacy): at most this many rows of
      each child table per patient are used in training (a random subset); the child fits are
      charged for a group of that size. ``None``: 10 (:mod:`synthdata.relational.synthesizer`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(gt=0)
    delta: float | None = Field(default=None, gt=0, lt=1)
    accountant: Literal["prv", "rdp"] = "prv"
    max_grad_norm: float = Field(default=1.0, gt=0)
    preprocessing_share: float = Field(default=0.1, ge=0, lt=1)
    dpsgd_delta_share: float = Field(default=0.5, gt=0, le=1)
    threshold_delta_share: float = Field(default=0.5, ge=0, lt=1)
    unit: Literal["row", "patient"] = "row"
    max_rows_per_unit: int | None = Field(default=None, ge=1, le=10_000)

    @field_validator("epsilon", "max_grad_norm")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be finite (leave `privacy` unset for a non-private run)")
        return value

    @field_validator("accountant", mode="before")
    @classmethod
    def _removed_accountant(cls, value: object) -> object:
        from synthdata.privacy.accounting import REMOVED_ACCOUNTANTS

        if isinstance(value, str) and value in REMOVED_ACCOUNTANTS:
            raise ValueError(REMOVED_ACCOUNTANTS[value])
        return value

    @model_validator(mode="after")
    def _shares(self) -> DPConfig:
        if self.dpsgd_delta_share == 1 and self.preprocessing_share > 0:
            raise ValueError(
                "dpsgd_delta_share=1 leaves no δ for DP preprocessing; lower it or set "
                "preprocessing_share=0 (all bounds and categories public)"
            )
        return self

    def __repr_args__(self) -> Any:
        """Show only fields that differ from their defaults: ``DPConfig(epsilon=3.0)``."""
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if info.is_required() or value != info.default:
                yield name, value

    def resolve_delta(self, n_rows: int | None = None) -> float:
        """The δ to use for a dataset of ``n_rows`` units (rows, or patients).

        An explicit ``delta`` is returned as is, but must be below ``1/n_rows`` when the
        count is known (a larger δ allows releasing a row outright).
        """
        if self.delta is not None:
            if n_rows is not None and n_rows >= 1 and self.delta >= 1.0 / n_rows:
                raise ConfigError(
                    f"privacy.delta={self.delta:g} is not below 1/n = {1.0 / n_rows:.3g} for "
                    f"{n_rows} {self.unit}s; use a smaller delta or leave it unset"
                )
            return float(self.delta)
        if n_rows is None:
            raise ConfigError(
                "privacy.delta is unset and the row count is unknown; pass the row count "
                "(PrivacyLedger.from_config(cfg, n_rows=len(data))) or set privacy.delta"
            )
        return default_delta(n_rows)


# What ``privacy=`` accepts everywhere a DPConfig goes: the model, a plain mapping of its
# fields (``{"epsilon": 3}``), or None for a non-private run.
PrivacyInput = DPConfig | Mapping[str, Any] | None


def as_dp_config(value: object, *, where: str = "privacy") -> DPConfig | None:
    """Return ``value`` as a :class:`DPConfig` (or None); ``ConfigError`` on anything else.

    A mapping is validated field by field; the message names each bad key, e.g.
    ``privacy.epsilon: Input should be greater than 0 (got -1)``.
    """
    if value is None or isinstance(value, DPConfig):
        return value
    if isinstance(value, Mapping):
        bad_keys = [k for k in value if not isinstance(k, str)]
        if bad_keys:
            raise ConfigError(f"{where}: keys must be field names, got {bad_keys[0]!r}; "
                              f"fields are {sorted(DPConfig.model_fields)}")
        try:
            return DPConfig.model_validate(dict(value))
        except ValidationError as err:
            raise ConfigError(f"{_validation_text(err, where)}; fields are "
                              f"{sorted(DPConfig.model_fields)}") from None
    raise ConfigError(f"{where} must be a DPConfig, a mapping such as {{'epsilon': 3.0}}, or "
                      f"None for a non-private run; got {type(value).__name__}")


def _validation_text(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = str(e["msg"])
            if "input" in e and not isinstance(e["input"], dict):
                msg += f" (got {e['input']!r})"
        parts.append(f"{where}.{loc}: {msg}" if loc else f"{where}: {msg}")
    return "; ".join(parts)
