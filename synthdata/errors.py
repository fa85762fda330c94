"""One exception hierarchy: every error synthdata raises on purpose."""

from __future__ import annotations


class SynthDataError(Exception):
    """Every error we raise on purpose."""


class DataError(SynthDataError, ValueError):
    """The input data cannot be used as given (missing file, bad values, too few rows)."""


class SchemaError(SynthDataError, ValueError):
    """A schema is invalid or does not match the data."""


class ConfigError(SynthDataError, ValueError):
    """A configuration value or parameter is invalid."""


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
