"""PrivacyLedger: refuses before work, never overspends, round-trips, speaks plainly."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthdata.errors import ConfigError, PrivacyBudgetError
from synthdata.privacy import PrivacyLedger
from synthdata.privacy import accounting as acc


def test_reserve_refuses_before_work() -> None:
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-6)
    with pytest.raises(PrivacyBudgetError, match="model.dp_sgd"):
        ledger.reserve("model.dp_sgd", epsilon=3.5)
    assert ledger.reservations == [] and ledger.entries == []
    ledger.reserve("model.dp_sgd", epsilon=2.5)
    assert ledger.committed()[0] == pytest.approx(2.5)
    assert ledger.spent() == (0.0, 0.0)
    # the reservation is protected: another step cannot eat into it
    with pytest.raises(PrivacyBudgetError):
        ledger.charge("transform.bounds[age]", rho=1.0)
    assert ledger.entries == []
    ledger.charge("transform.bounds[age]", rho=0.001)
    assert ledger.committed()[0] <= 3.0
    ledger.release("model.dp_sgd")
    assert ledger.committed()[0] == pytest.approx(ledger.spent()[0])


def test_rho_reservation_is_consumed_by_sub_steps() -> None:
    ledger = PrivacyLedger(epsilon=1.0, delta=1e-6)
    rho = acc.rho_for_epsilon(1.0, 1e-6)
    ledger.reserve("transform", rho=rho)
    assert ledger.remaining_rho() == pytest.approx(0.0, abs=1e-9)
    ledger.charge("transform.bounds[age]", rho=rho / 2)
    ledger.charge("transform.categories[sex]", rho=rho / 2 * (1 - 1e-9))
    assert ledger.spent()[0] <= 1.0
    with pytest.raises(PrivacyBudgetError):
        ledger.charge("transform.bounds[bmi]", rho=rho / 100)


def test_overspend_records_nothing() -> None:
    ledger = PrivacyLedger(epsilon=1.0, delta=1e-6)
    ledger.charge("a", rho=0.01)
    before_entries, before_spent = ledger.entries, ledger.spent()
    with pytest.raises(PrivacyBudgetError, match="'b'"):
        ledger.charge("b", rho=1.0)
    with pytest.raises(PrivacyBudgetError):
        ledger.charge("c", "approx", epsilon=0.1, delta=2e-6)
    assert ledger.entries == before_entries and ledger.spent() == before_spent


def test_remaining_rho_is_exact() -> None:
    ledger = PrivacyLedger(epsilon=2.0, delta=1e-5)
    ledger.charge("a", "laplace", epsilon=0.1)
    left = ledger.remaining_rho()
    with pytest.raises(PrivacyBudgetError):
        ledger.charge("too much", rho=left * 1.01)
    ledger.charge("just fits", rho=left)
    assert ledger.spent()[0] <= 2.0
    assert ledger.spent()[0] == pytest.approx(2.0, rel=1e-6)


def test_gaussian_charge_derives_and_checks_rho() -> None:
    ledger = PrivacyLedger(epsilon=5.0, delta=1e-6)
    e = ledger.charge("s", sigma=2.0, sensitivity=1.0)
    assert e.rho == pytest.approx(1 / 8) and e.params["sigma"] == 2.0
    with pytest.raises(ConfigError, match="understates"):
        ledger.charge("t", rho=0.01, sigma=2.0, sensitivity=1.0)
    with pytest.raises(ConfigError, match="must be one of"):
        ledger.charge("u", "noisy_max", epsilon=0.1)
    p = ledger.charge("v", "pure", epsilon=0.2)
    assert p.rho == pytest.approx(0.02)


def test_exponential_charge_is_a_quarter_of_pure() -> None:
    """The exponential mechanism is ε-bounded range: ρ = ε²/8, not the ε²/2 of pure DP."""
    ledger = PrivacyLedger(epsilon=5.0, delta=1e-6)
    e = ledger.charge("select", "exponential", epsilon=0.4, candidates=12)
    assert e.mechanism == "exponential" and e.epsilon == 0.4
    assert e.rho == pytest.approx(0.02) and e.params["candidates"] == 12
    # from the Gumbel scale β and score sensitivity Δ: ε = 2Δ/β
    g = ledger.charge("select2", "exponential", sigma=5.0, sensitivity=1.0)
    assert g.epsilon == pytest.approx(0.4) and g.rho == pytest.approx(0.02)
    assert g.params == {"scale": 5.0, "sensitivity": 1.0}
    # it composes with the Gaussian pieces in ρ
    assert ledger.composition().zcdp_rho == pytest.approx(0.04)
    with pytest.raises(ConfigError, match="understates"):
        ledger.charge("w", "exponential", epsilon=0.4, rho=0.01)
    with pytest.raises(ConfigError, match="understates"):
        ledger.charge("w", "exponential", epsilon=0.1, sigma=5.0, sensitivity=1.0)
    with pytest.raises(ConfigError, match="needs epsilon, or sigma"):
        ledger.charge("w", "exponential")
    with pytest.raises(ConfigError, match="give sensitivity"):
        ledger.charge("w", "exponential", sigma=1.0)
    with pytest.raises(ConfigError, match="pure ε-DP"):
        ledger.charge("w", "exponential", epsilon=0.1, delta=1e-9)
    assert [x.step for x in ledger.entries] == ["select", "select2"]
    # over budget: refused, nothing recorded
    with pytest.raises(PrivacyBudgetError, match="'big'"):
        ledger.charge("big", "exponential", epsilon=10.0)
    assert len(ledger.entries) == 2
    again = PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert again.entries == ledger.entries and again.spent() == ledger.spent()


@given(rho=st.floats(1e-6, 2.0))
@settings(max_examples=30, deadline=None)
def test_exponential_rho_matches_opendp_noisy_max(rho: float) -> None:
    """ε²/8 at the scale AIM uses (β = 1/√(2ρ)) is OpenDP's own zCDP map of noisy max."""
    import opendp.domains as domains
    import opendp.measurements as measurements
    import opendp.measures as measures
    import opendp.metrics as metrics
    import opendp.mod as mod

    mod.enable_features("contrib")
    scale = 1.0 / math.sqrt(2 * rho)
    meas = measurements.make_noisy_max(
        domains.vector_domain(domains.atom_domain(T=float, nan=False), size=3),
        metrics.linf_distance(T=float), measures.zero_concentrated_divergence(), scale=scale)
    assert acc.exponential_rho(2.0 / scale) == pytest.approx(float(meas.map(1.0)), rel=1e-9)
    assert acc.exponential_rho(2.0 / scale) == pytest.approx(rho, rel=1e-9)


def test_dpsgd_matches_opacus_accountant() -> None:
    from opacus.accountants import PRVAccountant

    ledger = PrivacyLedger(epsilon=10.0, delta=1e-6)
    ledger.charge_dpsgd("model.dp_sgd", noise_multiplier=1.1, sample_rate=0.01, steps=200)
    ledger.charge_dpsgd("model.dp_sgd", noise_multiplier=1.1, sample_rate=0.01, steps=100)
    opa = PRVAccountant()
    for _ in range(300):
        opa.step(noise_multiplier=1.1, sample_rate=0.01)
    expected = opa.get_epsilon(ledger.dpsgd_delta)
    assert ledger.dpsgd_delta == pytest.approx(5e-7)
    assert ledger.dpsgd_epsilon() == pytest.approx(expected, rel=1e-9)
    eps, delta = ledger.spent()
    assert eps == pytest.approx(expected, rel=1e-9) and delta == pytest.approx(5e-7)


def test_dpsgd_plan_through_the_ledger() -> None:
    plan = acc.plan_split(3.0, 1e-6, 0.1)
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-6, accountant="rdp")
    ledger.reserve("model.dp_sgd", epsilon=plan.training_epsilon)
    ledger.charge("transform.bounds[age]", rho=plan.preprocessing_rho / 2)
    ledger.charge("transform.categories[sex]", rho=plan.preprocessing_rho / 2,
                  delta=plan.preprocessing_threshold_delta)
    assert ledger.dpsgd_delta == plan.training_delta
    sigma = acc.calibrate_dpsgd_noise(plan.training_epsilon, ledger.dpsgd_delta, 0.05, 400, "rdp")
    ledger.charge_dpsgd("model.dp_sgd", sigma, 0.05, 400)
    eps, delta = ledger.spent()
    assert eps <= 3.0 and delta <= 1e-6 and eps > 2.8
    with pytest.raises(PrivacyBudgetError):  # hard stop: more steps do not fit
        ledger.charge_dpsgd("model.dp_sgd", sigma, 0.05, 400)


_charge = st.one_of(
    st.tuples(st.just("gaussian"), st.floats(1e-5, 0.5), st.sampled_from([0.0, 1e-8, 3e-7])),
    st.tuples(st.just("laplace"), st.floats(1e-3, 1.0), st.just(0.0)),
    st.tuples(st.just("approx"), st.floats(1e-3, 1.0), st.floats(0.0, 4e-7)),
    st.tuples(st.just("dpsgd"), st.sampled_from([0.8, 1.5, 4.0]), st.sampled_from([20, 200])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    eps=st.floats(0.2, 8.0),
    charges=st.lists(_charge, min_size=1, max_size=8),
    reserve=st.floats(0.0, 0.9),
)
def test_spent_never_exceeds_budget(eps: float, charges: list, reserve: float) -> None:
    ledger = PrivacyLedger(epsilon=eps, delta=1e-6, accountant="rdp")
    if reserve:
        ledger.reserve("model", epsilon=reserve * eps)
    for i, (kind, a, b) in enumerate(charges):
        before = (ledger.entries, ledger.spent())
        try:
            if kind == "gaussian":
                ledger.charge(f"s{i}", rho=a, delta=b or None)
            elif kind == "laplace":
                ledger.charge(f"s{i}", "laplace", epsilon=a)
            elif kind == "approx":
                ledger.charge(f"s{i}", "approx", epsilon=a, delta=b)
            else:
                ledger.charge_dpsgd("model.sgd", noise_multiplier=a, sample_rate=0.02, steps=b)
        except PrivacyBudgetError:
            assert (ledger.entries, ledger.spent()) == before
        spent_eps, spent_delta = ledger.spent()
        assert spent_eps <= eps and spent_delta <= 1e-6
        assert ledger.committed()[0] <= eps
        assert spent_eps <= ledger.committed()[0] + 1e-12


def test_non_private_ledger_records_everything() -> None:
    ledger = PrivacyLedger()
    ledger.charge("a", rho=100.0)
    ledger.record_not_private("evaluate.fidelity[train]", "fidelity metrics on the training split",
                              shapes_release=True)
    assert len(ledger.entries) == 2 and not ledger.is_private
    assert ledger.spent() == (math.inf, 1.0)
    assert ledger.remaining_epsilon() == math.inf
    assert "without differential privacy" in ledger.plain_language()


def test_not_private_steps() -> None:
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-6)
    ledger.record_public("transform.categories[sex]", reason="declared public in schema")
    ledger.record_not_private("evaluate.fidelity[train]", "fidelity metrics on the training split")
    assert ledger.not_private_steps() == ["evaluate.fidelity[train]"]
    assert ledger.spent() == (0.0, 0.0)
    with pytest.raises(PrivacyBudgetError, match="shapes the released"):
        ledger.record_not_private("transform.gmm[age]", "non-private mode fit",
                                  shapes_release=True)
    assert len(ledger.entries) == 2
    text = ledger.plain_language()
    assert "must not be published" in text and "evaluate.fidelity[train]" in text


def test_plain_language() -> None:
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-6)
    ledger.charge("model", "approx", epsilon=3.0, delta=1e-6)
    assert ledger.plain_language() == (
        "this dataset was generated with (ε=3, δ=1e-06)-differential privacy at the level of "
        "one row. DP noise is drawn from the operating system's cryptographic source, not "
        "from the seed: a DP run is not bit-reproducible; the seed fixes only its non-private "
        "parts. What is protected, what is public and what each file of the run contains: "
        "the privacy contract, docs/privacy.md in the synthdata repository"
    )
    assert "at the level of one patient. DP noise" in ledger.plain_language(unit="patient")
    assert "not bit-reproducible" in ledger.to_dict()["plain_language"]
    assert "bit-reproducible" not in PrivacyLedger().plain_language()


def test_round_trip_to_dict() -> None:
    ledger = PrivacyLedger(epsilon=3.0, delta=1e-6, accountant="rdp", unit="patient")
    ledger.reserve("model.dp_sgd", epsilon=2.0)
    ledger.charge("transform.bounds[age]", sigma=10.0, sensitivity=1.0, bins=64)
    ledger.charge("transform.categories[sex]", rho=0.01, delta=1e-8, threshold=12.5)
    ledger.record_public("transform.bounds[year]", reason="declared public in schema")
    ledger.charge_dpsgd("model.dp_sgd", 1.3, 0.02, 100)
    ledger.record_not_private("evaluate", "fidelity on the training split")
    data = json.loads(json.dumps(ledger.to_dict()))
    again = PrivacyLedger.from_dict(data)
    assert again.entries == ledger.entries
    assert again.reservations == ledger.reservations
    assert again.spent() == ledger.spent() and again.committed() == ledger.committed()
    assert again.to_dict() == data
    assert data["spent"]["epsilon"] == pytest.approx(ledger.spent()[0])
    assert data["plain_language"].startswith("this dataset was generated with (ε=")
    non_private = json.loads(json.dumps(PrivacyLedger().to_dict()))
    assert non_private["spent"]["epsilon"] is None
    assert PrivacyLedger.from_dict(non_private).entries == []


def test_dp_statement_points_to_the_contract_and_says_not_reproducible():
    from synthdata.privacy.config import DPConfig

    ledger = PrivacyLedger.from_config(DPConfig(epsilon=1.0, delta=1e-6))
    ledger.charge("x", "gaussian", rho=0.01)
    text = ledger.plain_language()
    assert "docs/privacy.md" in text and "not bit-reproducible" in text
    assert "docs/privacy.md" not in PrivacyLedger.from_config(None).plain_language()


def test_refusal_names_delta_when_delta_runs_out():
    from synthdata.errors import PrivacyBudgetError

    ledger = PrivacyLedger(epsilon=3.0, delta=1e-6)
    with pytest.raises(PrivacyBudgetError, match="δ runs out.*raise delta"):
        ledger.charge("thresholds", rho=1e-4, delta=2e-6)
    with pytest.raises(PrivacyBudgetError, match="raise epsilon"):
        ledger.charge("big", rho=50.0)


def test_annotate_adds_to_the_latest_entry_of_a_step_and_spends_nothing() -> None:
    ledger = PrivacyLedger(epsilon=1.0, delta=1e-6)
    ledger.charge("b", "gaussian", rho=0.01)
    ledger.charge("b", "gaussian", rho=0.01, note="second", bins=7)
    spent = ledger.spent()
    entry = ledger.annotate("b", "fell back", range_fallback=True)
    first, second = ledger.entries
    assert second is entry and second.note == "second; fell back"
    assert second.params["range_fallback"] is True and second.params["bins"] == 7
    assert "range_fallback" not in first.params and first.note == ""
    assert ledger.spent() == spent
    with pytest.raises(KeyError, match="no ledger entry for step 'c'"):
        ledger.annotate("c", "x")
