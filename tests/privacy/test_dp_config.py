"""DPConfig: typed, frozen, δ resolved from the row count."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from synthdata.errors import ConfigError
from synthdata.privacy import DPConfig, PrivacyLedger, default_delta


def test_defaults_and_frozen() -> None:
    cfg = DPConfig(epsilon=3.0)
    assert cfg.delta is None and cfg.accountant == "prv" and cfg.max_grad_norm == 1.0
    assert cfg.preprocessing_share == 0.1
    with pytest.raises(ValidationError):
        cfg.epsilon = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epsilon": 0},
        {"epsilon": float("inf")},
        {"epsilon": 1, "delta": 1.0},
        {"epsilon": 1, "accountant": "moments"},
        {"epsilon": 1, "epcohs": 3},
        {"epsilon": 1, "preprocessing_share": 1.0},
        {"epsilon": 1, "dpsgd_delta_share": 1.0},
    ],
)
def test_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        DPConfig(**kwargs)


@pytest.mark.parametrize(("n", "expected"), [(7874, 1e-5), (100, 1e-5), (20_000, 1e-6),
                                             (10**7, 1e-8), (1, 1e-5)])
def test_default_delta(n: int, expected: float) -> None:
    assert default_delta(n) == expected
    assert default_delta(n) <= 1 / (10 * n)


def test_resolve_delta() -> None:
    assert DPConfig(epsilon=1, delta=1e-7).resolve_delta(1000) == 1e-7
    assert DPConfig(epsilon=1).resolve_delta(20_000) == 1e-6
    with pytest.raises(ConfigError):
        DPConfig(epsilon=1).resolve_delta(None)
    with pytest.raises(ConfigError):
        DPConfig(epsilon=1, delta=0.01).resolve_delta(1000)


def test_ledger_from_config() -> None:
    ledger = PrivacyLedger.from_config(DPConfig(epsilon=2.0, accountant="rdp"), n_rows=50_000)
    assert (ledger.epsilon, ledger.delta, ledger.accountant) == (2.0, 1e-6, "rdp")
    assert not PrivacyLedger.from_config(None).is_private
    with pytest.raises(ConfigError):
        PrivacyLedger(epsilon=1.0)  # a budget needs delta


def test_gdp_accountant_is_refused_with_the_reason_and_the_alternative() -> None:
    from synthdata.pipeline.budget import dp_config

    with pytest.raises(ValidationError, match="not an upper bound.*use accountant 'prv'"):
        DPConfig(epsilon=1, accountant="gdp")

    class _Cfg:  # the pipeline's privacy block, as _dp_config reads it
        privacy = {"epsilon": 3, "accountant": "gdp"}

    with pytest.raises(ConfigError, match=r"privacy: accountant: .*'gdp' accountant was removed"
                                          r".*central-limit approximation.*'prv'.*'rdp'"):
        dp_config(_Cfg())  # type: ignore[arg-type]
    assert DPConfig(epsilon=1, accountant="rdp").accountant == "rdp"
