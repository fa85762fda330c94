"""The empirical audit: statistics, canaries, and that it catches a broken DP claim."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.privacy import DPConfig
from synthdata.privacy.audit import (
    AuditResult,
    audit_generator,
    clopper_pearson,
    epsilon_lower_bound,
    make_canaries,
)


@pytest.fixture(scope="module")
def small(flchain: pd.DataFrame) -> pd.DataFrame:
    cols = ["age", "sex", "kappa", "lambda", "creatinine", "mgus", "death"]
    return flchain[cols].sample(300, random_state=1).reset_index(drop=True)


def leaky_gmm(schema, *, privacy, seed, **params):
    """A "private" generator that ignores its DPConfig: the non-private GMM."""
    return sd.make_generator("gmm", schema, seed=seed, **params)


# -- statistics ----------------------------------------------------------------------------

def test_clopper_pearson_matches_known_values() -> None:
    lo, hi = clopper_pearson(0, 10, 0.025)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = clopper_pearson(10, 10, 0.025)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10))
    lo, hi = clopper_pearson(5, 10, 0.025)
    assert lo < 0.5 < hi


def test_bound_is_zero_without_signal_and_grows_with_separation() -> None:
    assert epsilon_lower_bound(10, 20, 10, 20, delta=1e-5)["epsilon"] == 0.0
    weak = epsilon_lower_bound(15, 20, 5, 20, delta=1e-5)["epsilon"]
    strong = epsilon_lower_bound(20, 20, 0, 20, delta=1e-5)["epsilon"]
    assert 0 < weak < strong
    # perfect separation on n per side: log(TPR_lo / FPR_hi) with exact CP values
    q = 0.025 ** (1 / 20)
    assert strong == pytest.approx(math.log((q - 1e-5) / (1 - q)))
    # both sides of the hypothesis-test inequality are used: low FPR, moderate TPR
    one_side = epsilon_lower_bound(8, 40, 0, 40, delta=1e-5)
    assert one_side["epsilon"] == pytest.approx(
        math.log((one_side["tpr_lo"] - 1e-5) / one_side["fpr_hi"]))
    # delta lowers the bound
    assert epsilon_lower_bound(20, 20, 0, 20, delta=0.1)["epsilon"] < strong


def test_canaries_are_outliers_on_distinct_slots(small: pd.DataFrame) -> None:
    rows, canaries = make_canaries(small, 6, columns=["age", "kappa", "lambda"],
                                   rng=np.random.default_rng(0))
    assert len(rows) == 6 and list(rows.columns) == list(small.columns)
    slots = {(c.column, c.direction) for c in canaries}
    assert len(slots) == 6
    for i, c in enumerate(canaries):
        col = small[c.column]
        assert (rows.loc[i, c.column] > col.max()) if c.direction > 0 else \
            (rows.loc[i, c.column] < col.min())
    with pytest.raises(ConfigError, match="at most 6 canaries"):
        make_canaries(small, 7, columns=["age", "kappa", "lambda"], rng=np.random.default_rng(0))


def test_audit_rejects_bad_arguments(small: pd.DataFrame) -> None:
    with pytest.raises(ConfigError):
        audit_generator("gmm", None, small, privacy=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_trials"):
        audit_generator("gmm", None, small, privacy=DPConfig(epsilon=1), n_trials=1)


# -- the audit end to end ---------------------------------------------------------------

def test_broken_generator_is_caught(small: pd.DataFrame) -> None:
    """Claiming ε=0.1 for a fit without any noise must fail the audit."""
    result = audit_generator(leaky_gmm, None, small, privacy=DPConfig(epsilon=0.1),
                             params={"n_components": 4}, n_canaries=8, n_trials=10, seed=0)
    assert isinstance(result, AuditResult)
    assert result.epsilon_lower_bound > result.claimed_epsilon == 0.1
    assert result.passed is False
    ev = result.details["evaluation"]
    assert ev["tpr"] > ev["fpr"]
    assert result.epsilon_lower_bound <= result.details["max_detectable_epsilon"]
    assert "FAIL" in result.summary()


def test_dp_gmm_passes_at_epsilon_1(small: pd.DataFrame) -> None:
    result = audit_generator("gmm", None, small, privacy=DPConfig(epsilon=1.0),
                             n_canaries=8, n_trials=10, seed=0)
    assert result.passed is True
    assert result.epsilon_lower_bound <= 1.0
    assert result.details["delta"] <= 1 / (10 * len(small))
    d = result.to_dict()
    assert d["passed"] is True and len(d["details"]["scores_sd"]) == 10


def test_audit_design_is_reproducible_dp_noise_is_not(small: pd.DataFrame) -> None:
    """The seed fixes the audit's design (canaries, memberships); the DP fits inside it draw
    fresh OS-entropy noise, so their scores differ from run to run."""
    a = audit_generator("gmm", None, small, privacy=DPConfig(epsilon=1.0), n_canaries=4,
                        n_trials=4, seed=3)
    b = audit_generator("gmm", None, small, privacy=DPConfig(epsilon=1.0), n_canaries=4,
                        n_trials=4, seed=3)
    assert a.details["canaries"] == b.details["canaries"]
    assert a.details["member"] == b.details["member"]
    assert a.details["scores_sd"] != b.details["scores_sd"]


@pytest.mark.slow
@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0])
def test_dp_gmm_bound_below_claim_at_scale(flchain: pd.DataFrame, epsilon: float) -> None:
    data = flchain.drop(columns=["chapter", "futime"]).sample(2000, random_state=0)
    result = audit_generator("gmm", None, data.reset_index(drop=True),
                             privacy=DPConfig(epsilon=epsilon), n_canaries=8, n_trials=30,
                             seed=1)
    assert result.passed, result.summary()


@pytest.mark.slow
def test_broken_generator_caught_at_scale(flchain: pd.DataFrame) -> None:
    """With more trials the bound on the non-private GMM rises well above ε=1."""
    data = flchain.drop(columns=["chapter", "futime"]).sample(1000, random_state=0)
    result = audit_generator(leaky_gmm, None, data.reset_index(drop=True),
                             privacy=DPConfig(epsilon=1.0), params={"n_components": 4},
                             n_canaries=8, n_trials=30, seed=1)
    assert not result.passed, result.summary()


# -- CLI --------------------------------------------------------------------------------

def test_cli_audit_pass_and_fail(small: pd.DataFrame, tmp_path, monkeypatch, capsys) -> None:
    import json

    import synthdata.privacy.audit as audit_mod
    from synthdata.cli import main

    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    out = tmp_path / "audit.json"
    code = main(["audit", str(path), "--generator", "gmm", "--epsilon", "1", "--trials", "4",
                 "--canaries", "4", "--seed", "0", "-q", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "epsilon lower bound:" in text and "claimed epsilon:     1" in text
    assert text.strip().endswith("PASS")
    assert json.loads(out.read_text())["passed"] is True

    real = audit_mod.audit_generator

    def broken(kind, *args, **kwargs):  # the CLI's generator silently loses its noise
        return real(leaky_gmm, *args, **{**kwargs, "params": {"n_components": 4}})

    monkeypatch.setattr(audit_mod, "audit_generator", broken)
    code = main(["audit", str(path), "--epsilon", "0.1", "--trials", "10", "--canaries", "8",
                 "-q"])
    text = capsys.readouterr().out
    assert code == 3, text
    assert "FAIL" in text


def test_cli_audit_bad_epsilon(small: pd.DataFrame, tmp_path, capsys) -> None:
    from synthdata.cli import main

    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    assert main(["audit", str(path), "--epsilon", "-1", "-q"]) == 2
    assert "epsilon" in capsys.readouterr().err
