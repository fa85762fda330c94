"""The empirical audit: statistics, canaries, and that it catches a broken DP claim."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.privacy import DPConfig
from synthdata.privacy.audit import (
    DETECTION_MARGIN,
    MIN_TRIALS,
    AuditResult,
    audit_generator,
    clopper_pearson,
    detectable_epsilon,
    epsilon_lower_bound,
    make_canaries,
    plan_audit,
    relational_factory,
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


# -- design: what the trials can detect ---------------------------------------------------

def test_detectable_epsilon_is_the_bound_of_a_perfect_attack() -> None:
    assert detectable_epsilon(20, 20, delta=1e-5) == pytest.approx(
        epsilon_lower_bound(20, 20, 0, 20, delta=1e-5)["epsilon"])
    assert detectable_epsilon(0, 20, delta=1e-5) == 0.0
    # grows with the trials, but only like log(non-members)
    values = [detectable_epsilon(n, n, delta=1e-5) for n in (10, 100, 1000)]
    assert values == sorted(values) and values[-1] < 6


@settings(max_examples=15, deadline=None)
@given(claim=st.floats(0.05, 4.0), canaries=st.integers(2, 16))
def test_planned_trials_can_detect_the_claim(claim: float, canaries: int) -> None:
    design = plan_audit(claim, 1e-5, n_canaries=canaries, max_trials=10**6)
    assert design.feasible and design.n_trials == design.trials_needed
    assert design.detectable_epsilon > claim + DETECTION_MARGIN
    assert design.best_case_epsilon >= design.detectable_epsilon
    if design.n_trials > MIN_TRIALS:  # the fewest such trials (two fewer are not enough)
        smaller = plan_audit(claim, 1e-5, n_canaries=canaries, n_trials=design.n_trials - 2)
        assert smaller.detectable_epsilon <= claim + DETECTION_MARGIN


def test_plan_says_inconclusive_and_how_many_trials_are_needed() -> None:
    design = plan_audit(8.0, 1e-5, n_canaries=8)
    assert not design.feasible and design.n_trials == 200
    assert design.detectable_epsilon < 8 and design.trials_needed > 5000
    assert f"about {design.trials_needed:,} trials x 8 canaries" in design.reason
    assert "--max-trials" in design.reason
    fixed = plan_audit(3.0, 1e-5, n_canaries=8, n_trials=10)
    assert not fixed.feasible and "use more trials" in fixed.reason
    assert plan_audit(1.0, 1e-5, n_canaries=8, n_trials=10).feasible
    with pytest.raises(ConfigError, match="n_trials"):
        plan_audit(1.0, 1e-5, n_canaries=8, n_trials=1)


# -- the audit end to end ---------------------------------------------------------------

class CopyGenerator:
    """The worst generator there is: it publishes its training rows (cycled to n)."""

    name = "copy"

    def __init__(self, schema, *, privacy=None, seed=None, **params) -> None:
        self.schema, self.privacy, self.seed = schema, privacy, seed

    def fit(self, data: pd.DataFrame, **_) -> CopyGenerator:
        self.rows_ = data.reset_index(drop=True)
        return self

    def sample(self, n: int, *, seed: int | None = None) -> pd.DataFrame:
        return self.rows_.iloc[np.resize(np.arange(len(self.rows_)), n)].reset_index(drop=True)


@pytest.fixture
def copy_registered(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the copy generator for this test only (the CLI finds it by name)."""
    from synthdata.models import registry

    monkeypatch.setitem(registry._GENERATORS, "copy", f"{__name__}:CopyGenerator")
    return "copy"


def test_copy_generator_fails_at_a_claim_it_can_detect(small, copy_registered) -> None:
    result = audit_generator(copy_registered, None, small, privacy=DPConfig(epsilon=1.0))
    assert isinstance(result, AuditResult)
    d = result.details
    assert d["trials_sized_to_claim"] and d["n_trials"] == plan_audit(
        1.0, d["delta"], n_canaries=d["n_canaries"]).n_trials
    assert result.detectable_epsilon > 1.0
    assert result.verdict == "FAIL" and not result.passed
    assert result.epsilon_lower_bound > result.claimed_epsilon == 1.0
    assert d["evaluation"]["tpr"] == 1.0 and d["evaluation"]["fpr"] == 0.0
    assert result.summary().startswith("FAIL: empirical ε lower bound")


@pytest.mark.parametrize("claim", [0.5, 1.0, 3.0, 8.0])
def test_a_non_private_generator_never_passes(small, copy_registered, claim: float) -> None:
    result = audit_generator(copy_registered, None, small, privacy=DPConfig(epsilon=claim),
                             seed=2)
    assert result.verdict != "PASS" and not result.passed
    if claim < 4:  # detectable within the default budget of 200 trials
        assert result.verdict == "FAIL", result.summary()
    else:
        assert result.verdict == "INCONCLUSIVE" and not result.details["fitted"]
        assert math.isnan(result.epsilon_lower_bound)
        assert "trials x" in result.summary() and "needs about" in result.summary()


def test_too_few_trials_are_inconclusive_even_for_a_copy(small, copy_registered) -> None:
    """The old failure mode: 10 trials cannot show ε > 3, so they must not say PASS."""
    fits = []

    def counting(schema, **kw):
        fits.append(1)
        return CopyGenerator(schema, **kw)

    result = audit_generator(counting, None, small, privacy=DPConfig(epsilon=3.0),
                             n_canaries=8, n_trials=10)
    assert result.verdict == "INCONCLUSIVE" and fits == []  # stops before fitting
    assert "above what 10 trials x 8 canaries can detect" in result.details["reason"]
    assert result.to_dict()["verdict"] == "INCONCLUSIVE"


def test_leaky_gmm_is_caught_at_a_small_claim(small: pd.DataFrame) -> None:
    """Claiming ε=0.1 for a fit without any noise must fail the audit."""
    result = audit_generator(leaky_gmm, None, small, privacy=DPConfig(epsilon=0.1),
                             params={"n_components": 4}, n_canaries=8, n_trials=6, seed=0)
    assert result.verdict == "FAIL", result.summary()
    ev = result.details["evaluation"]
    assert ev["tpr"] > ev["fpr"]
    assert result.epsilon_lower_bound <= result.details["max_detectable_epsilon"]


def test_dp_gmm_passes_at_epsilon_1(small: pd.DataFrame) -> None:
    result = audit_generator("gmm", None, small, privacy=DPConfig(epsilon=1.0), seed=0)
    assert result.verdict == "PASS", result.summary()
    assert result.epsilon_lower_bound <= 1.0 < result.detectable_epsilon
    assert result.details["delta"] <= 1 / (10 * len(small))
    d = result.to_dict()
    assert d["passed"] is True and len(d["details"]["scores_sd"]) == d["details"]["n_trials"]


def test_audit_choices_follow_the_seed(small: pd.DataFrame) -> None:
    """The seed fixes the canaries and memberships (a test harness); fits draw their own."""
    a = audit_generator("gmm", None, small, privacy=DPConfig(epsilon=0.5), n_canaries=8,
                        n_trials=6, seed=3)
    b = audit_generator("gmm", None, small, privacy=DPConfig(epsilon=0.5), n_canaries=8,
                        n_trials=6, seed=3)
    assert a.details["fitted"] and b.details["fitted"]
    assert a.details["member"] == b.details["member"]
    assert a.details["canaries"] == b.details["canaries"]
    assert a.details["scores_sd"] != b.details["scores_sd"]  # DP noise: OS entropy, not the seed


@pytest.mark.slow
@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0])
def test_dp_gmm_bound_below_claim_at_scale(flchain: pd.DataFrame, epsilon: float) -> None:
    data = flchain.drop(columns=["chapter", "futime"]).sample(2000, random_state=0)
    result = audit_generator("gmm", None, data.reset_index(drop=True),
                             privacy=DPConfig(epsilon=epsilon), seed=1)
    assert result.verdict == "PASS", result.summary()


@pytest.mark.slow
def test_broken_generator_caught_at_scale(flchain: pd.DataFrame) -> None:
    """With more trials the bound on the non-private GMM rises well above ε=1."""
    data = flchain.drop(columns=["chapter", "futime"]).sample(1000, random_state=0)
    result = audit_generator(leaky_gmm, None, data.reset_index(drop=True),
                             privacy=DPConfig(epsilon=1.0), params={"n_components": 4},
                             n_canaries=8, n_trials=30, seed=1)
    assert result.verdict == "FAIL", result.summary()


@pytest.mark.slow
def test_leaky_gmm_never_passes_at_the_claim_of_a_run(small: pd.DataFrame) -> None:
    """The non-private GMM at ε=3, trials sized to the claim (58 fits, ~45 s measured)."""
    result = audit_generator(leaky_gmm, None, small, privacy=DPConfig(epsilon=3.0),
                             params={"n_components": 4}, seed=1)
    assert result.verdict == "FAIL", result.summary()


# -- every generator with a DP path ---------------------------------------------------------

TINY = {
    "vae": {"epochs": 3, "batch_size": 100, "compress_dims": (16,), "decompress_dims": (16,),
            "embedding_dim": 8},
    "ctgan": {"epochs": 3, "batch_size": 100, "generator_dims": (16,),
              "discriminator_dims": (16,), "embedding_dim": 8, "pac": 1},
    "ddpm": {"epochs": 3, "hidden_dims": (16, 16)},
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "ctgan", "ddpm"])
def test_dp_sgd_generators_pass_at_epsilon_1(small: pd.DataFrame, kind: str) -> None:
    pytest.importorskip("torch")
    result = audit_generator(kind, None, small, privacy=DPConfig(epsilon=1.0),
                             params=TINY[kind], seed=1)
    assert result.verdict == "PASS", result.summary()
    assert result.detectable_epsilon > 1.0


@pytest.fixture(scope="module")
def pbc() -> tuple:
    from synthdata.relational.schema import MultiTableSchema

    root = Path(__file__).resolve().parents[2]
    ms = MultiTableSchema.load(root / "schemas" / "pbc.yaml")
    tables = {"pbc": pd.read_csv(root / "data" / "pbc.csv"),
              "pbcseq": pd.read_csv(root / "data" / "pbcseq.csv")}
    return ms, tables


def test_relational_target_adds_canary_patients_without_linked_rows(pbc: tuple) -> None:
    ms, tables = pbc
    factory = relational_factory(ms, tables)
    canary = tables["pbc"].iloc[[0, 5]].copy()
    canary["bili"] = 1e3
    rows = pd.concat([tables["pbc"], canary], ignore_index=True)
    seen = {}

    class Spy:  # records what the synthesizer is fitted on
        def __init__(self, ms, **kw) -> None:
            seen["privacy"] = kw["privacy"]

        def fit(self, tables):
            seen["tables"] = tables
            return self

    import synthdata.relational.synthesizer as rel

    target = factory(ms.tables["pbc"], privacy=DPConfig(epsilon=1.0), seed=0)
    real = rel.RelationalSynthesizer
    try:
        rel.RelationalSynthesizer = Spy
        target.fit(rows)
    finally:
        rel.RelationalSynthesizer = real
    fitted = seen["tables"]
    assert fitted["pbcseq"] is tables["pbcseq"]  # linked rows untouched
    keys = fitted["pbc"]["id"]
    assert keys.is_unique and len(keys) == len(tables["pbc"]) + 2
    new = keys.iloc[-2:]
    assert (new > tables["pbc"]["id"].max()).all()
    assert not fitted["pbcseq"]["id"].isin(new).any()  # canaries have no linked rows
    assert seen["privacy"].epsilon == 1.0
    with pytest.raises(ConfigError, match="root tables"):
        relational_factory(ms, tables, root="pbcseq")


@pytest.mark.slow
def test_relational_synthesizer_passes_at_epsilon_1(pbc: tuple) -> None:
    ms, tables = pbc
    result = audit_generator(relational_factory(ms, tables), ms.tables["pbc"], tables["pbc"],
                             privacy=DPConfig(epsilon=1.0), n_canaries=11, seed=2,
                             n_synthetic=2 * len(tables["pbc"]))
    assert result.verdict == "PASS", result.summary()


# -- CLI --------------------------------------------------------------------------------

def test_cli_audit_pass_fail_and_inconclusive(small: pd.DataFrame, tmp_path, copy_registered,
                                              capsys) -> None:
    import json

    from synthdata.cli import main

    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    out = tmp_path / "audit.json"
    code = main(["audit", str(path), "--generator", "gmm", "--epsilon", "1", "--seed", "0",
                 "-q", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "(sized to the claim)" in text and "claimed epsilon:     1" in text
    assert "PASS: empirical ε lower bound" in text and "Not a proof" in text
    assert json.loads(out.read_text())["verdict"] == "PASS"

    code = main(["audit", str(path), "--generator", copy_registered, "--epsilon", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 3, captured.out
    assert "FAIL: empirical ε lower bound" in captured.out
    assert "exceeds the claimed ε = 1" in captured.err

    code = main(["audit", str(path), "--generator", copy_registered, "--epsilon", "8", "-q",
                 "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 4, text
    assert "INCONCLUSIVE: the claimed ε = 8 is above what 200 trials" in text
    assert "needs about" in text and "--max-trials" in text
    assert json.loads(out.read_text())["epsilon_lower_bound"] is None


def test_cli_audit_bad_epsilon(small: pd.DataFrame, tmp_path, capsys) -> None:
    from synthdata.cli import main

    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    assert main(["audit", str(path), "--epsilon", "-1", "-q"]) == 2
    assert "epsilon" in capsys.readouterr().err
