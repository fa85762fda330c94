import pytest

from synthdata.errors import ConfigError, PrivacyBudgetError
from synthdata.privacy.accounting import plan_split
from synthdata.privacy.group import GroupLedger, planning_epsilon
from synthdata.privacy.ledger import PrivacyLedger


def _main() -> PrivacyLedger:
    return PrivacyLedger(epsilon=3.0, delta=1e-5, unit="patient")


@pytest.mark.parametrize("rho", [1e-4, 0.01, 0.3])
def test_planning_epsilon_gives_the_allotted_rho(rho):
    eps = planning_epsilon(rho, 1e-5, 0.1)
    plan = plan_split(eps, 1e-5, 0.1, training="zcdp")
    total = plan.preprocessing_rho + plan.training_rho
    assert total <= rho and total == pytest.approx(rho, rel=1e-6)


def test_charges_are_scaled_for_a_group_of_rows():
    main = _main()
    view = GroupLedger(main, "visits", 4, epsilon=1.0, delta=1e-5)
    view.charge("sums", "gaussian", rho=0.001, sigma=10.0, sensitivity=0.1)
    view.charge("count", "laplace", epsilon=0.01)
    entries = main.entries
    assert [e.step for e in entries] == ["visits.sums", "visits.count"]
    assert entries[0].rho == pytest.approx(0.016)            # ρ·k²
    assert entries[0].params["sensitivity"] == pytest.approx(0.4)   # Δ·k
    assert entries[1].epsilon == pytest.approx(0.04)          # ε·k
    assert "at most 4 row(s) per patient" in entries[0].note
    # a root table (k = 1) is charged as is
    GroupLedger(main, "patients", 1, 1.0, 1e-5).charge("x", rho=0.002)
    assert main.entries[-1].rho == pytest.approx(0.002)


def test_group_charges_that_have_no_tight_bound_are_refused():
    view = GroupLedger(_main(), "labs", 3, epsilon=1.0, delta=1e-5)
    with pytest.raises(ConfigError, match="public: true"):
        view.charge("categories", rho=0.001, delta=1e-7)
    with pytest.raises(ConfigError, match="DP-SGD"):
        view.charge_dpsgd("sgd", 1.0, 0.01, 100)
    with pytest.raises(ConfigError, match="group_size"):
        GroupLedger(_main(), "labs", 0, 1.0, 1e-5)


def test_the_run_budget_is_enforced_at_patient_level():
    main = _main()
    view = GroupLedger(main, "visits", 10, epsilon=1.0, delta=1e-5)
    rho_row = main.remaining_rho() / 100 * 1.01     # a row-level ρ that is just too big for k=10
    with pytest.raises(PrivacyBudgetError):
        view.charge("too_much", rho=rho_row)
    view.charge("fits", rho=rho_row / 1.02)
    assert main.spent()[0] <= 3.0
