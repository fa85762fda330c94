"""One exception hierarchy: every error synthdata raises on purpose."""

from __future__ import annotations

from typing import Any


class SynthDataError(Exception):
    """Every error we raise on purpose."""


class DataError(SynthDataError, ValueError):
    """The input data cannot be used as given (missing file, bad values, too few rows)."""


class SchemaError(SynthDataError, ValueError):
    """A schema is invalid or does not match the data."""


class ConfigError(SynthDataError, ValueError):
    """A configuration value or parameter is invalid."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message names the extra to install.

    Raised only for third-party packages: a synthdata module that fails to import is a bug
    and raises its own error unchanged.
    """


class ConditionTooRareError(ConfigError):
    """Conditional sampling cannot reach the requested rows (a rejection sampler's budget ran
    out); callers that can relax the conditions catch this, others see a ConfigError."""


class NotFittedError(SynthDataError, AttributeError):
    """A fitted attribute was used before ``fit()``."""


class PrivacyBudgetError(SynthDataError):
    """The privacy plan does not fit in the budget, or the budget is spent."""


class GateFailed(SynthDataError):
    """The export gate refused the synthetic data."""

    def __init__(self, message: str, *, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = list(failures or [])


def format_validation_error(err: Any) -> str:
    """One line per problem, with its YAML path: ``train.epcohs: unknown key``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"]
            if "input" in e and not isinstance(e["input"], dict):
                msg += f" (got {e['input']!r})"
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)
