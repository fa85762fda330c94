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


def test_an_exponential_selection_costs_a_group_k_squared():
    """A selection whose scores move by Δ per row moves by k·Δ per patient: ε·k, ρ·k²."""
    main = _main()
    view = GroupLedger(main, "visits", 3, epsilon=1.0, delta=1e-5)
    view.charge("select", "exponential", sigma=20.0, sensitivity=1.0, rho=0.00125)
    entry = main.entries[-1]
    assert entry.mechanism == "exponential"
    assert entry.epsilon == pytest.approx(2 * 3 / 20.0)          # 2kΔ/β
    assert entry.rho == pytest.approx(0.00125 * 9)                # ρ·k² = (kε)²/8
    assert view.rho_spent == pytest.approx(entry.rho)
    view.charge("select2", "exponential", epsilon=0.01)
    assert main.entries[-1].rho == pytest.approx((0.03) ** 2 / 8)


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


def test_a_table_is_held_to_its_allotment_with_a_message_that_names_it():
    main = _main()
    view = GroupLedger(main, "labs", 3, 1.0, 1e-5, rho_budget=0.01)
    view.charge("sums", rho=0.001)                               # 0.009 for a patient of 3 rows
    with pytest.raises(PrivacyBudgetError, match=r"'labs.more' needs ρ=0.009 for a patient "
                                                 r"\(3 row\(s\) of "
                                                 r"'labs'.*left of its share ρ=0.01"):
        view.charge("more", rho=0.001)
    assert [e.step for e in main.entries] == ["labs.sums"]       # nothing recorded on refusal
    root = GroupLedger(main, "patients", 1, 1.0, 2e-6, delta_budget=1e-6)
    root.charge("categories[a]", rho=1e-4, delta=6e-7)
    with pytest.raises(PrivacyBudgetError, match=r"'patients.categories\[b\]' would spend "
                                                 r"δ=6e-07 .* allotted δ=1e-06 .*public"):
        root.charge("categories[b]", rho=1e-4, delta=6e-7)


def test_a_refusal_of_the_run_ledger_names_the_table():
    view = GroupLedger(_main(), "visits", 5, 1.0, 1e-5)
    with pytest.raises(PrivacyBudgetError, match=r"^patient-level privacy, table 'visits' "
                                                 r"\(at most 5 row\(s\) per patient\): step"):
        view.charge("huge", rho=1.0)


def test_composed_tables_cost_one_patient_the_sum_of_k_squared_rho():
    """A patient: 1 root row, up to k_t rows of each descendant table; zCDP adds up."""
    from synthdata.privacy.accounting import zcdp_to_approx_dp

    main = _main()
    plan = {"patients": (1, 0.01), "visits": (4, 0.002), "labs": (10, 0.0003)}
    for table, (k, rho) in plan.items():
        GroupLedger(main, table, k, 1.0, 1e-5).charge("fit", "gaussian", sigma=1.0,
                                                      sensitivity=(2 * rho) ** 0.5)
    total = sum(k * k * rho for k, rho in plan.values())
    assert sum(e.rho for e in main.entries) == pytest.approx(total)
    assert main.spent()[0] == pytest.approx(zcdp_to_approx_dp(total, 1e-5), rel=1e-6)


def test_thresholds_held_back_keep_the_rest_of_the_run_within_budget():
    """Thresholds spend δ, which shrinks the δ left to turn ρ into ε: sharing out all of
    remaining_rho() first leaves no room for them (the old relational overrun)."""
    from synthdata.privacy.group import planning_delta, remaining_rho

    naive = _main()
    naive.charge("fits", rho=naive.remaining_rho() * (1 - 1e-6))
    with pytest.raises(PrivacyBudgetError):
        naive.charge("categories", rho=1e-9, delta=5e-6)
    main = _main()
    rho = remaining_rho(main, reserve_delta=5e-6)
    assert rho < main.remaining_rho()
    main.charge("categories", rho=1e-9, delta=5e-6)
    main.charge("fits", rho=(rho - 1e-9) * (1 - 1e-6))
    assert main.spent()[0] <= 3.0
    # planning: the generator's plan gives its thresholds exactly the allotted δ
    delta = planning_delta(2e-6, 0.1)
    eps = planning_epsilon(0.01, delta, 0.1)
    assert plan_split(eps, delta, 0.1, training="zcdp").preprocessing_threshold_delta == \
        pytest.approx(2e-6)


@pytest.mark.parametrize("settings, linked, message", [
    ({"unit": "patient"}, False, "unit: patient needs linked tables with a patient key"),
    ({"max_rows_per_unit": 5}, False, "remove max_rows_per_unit"),
    ({"unit": "row"}, True, "unit: row is not available for linked tables"),
])
def test_the_unit_must_fit_the_data(settings, linked, message):
    from synthdata.privacy.config import DPConfig
    from synthdata.privacy.group import check_privacy_unit

    with pytest.raises(ConfigError, match=message):
        check_privacy_unit(DPConfig(epsilon=1, **settings), linked=linked)
    check_privacy_unit(DPConfig(epsilon=1), linked=linked)           # defaults are fine
    check_privacy_unit(None, linked=linked)
    check_privacy_unit(DPConfig(epsilon=1, unit="patient", max_rows_per_unit=3), linked=True)


def test_annotate_goes_to_the_table_step_of_the_run_ledger():
    main = _main()
    view = GroupLedger(main, "visits", 4, epsilon=1.0, delta=1e-5)
    view.charge("transform.bounds[day]", "gaussian", rho=0.001, sigma=30.0, sensitivity=1.0)
    view.annotate("transform.bounds[day]", "fell back", range_fallback=True)
    (entry,) = main.entries
    assert entry.step == "visits.transform.bounds[day]" and entry.params["range_fallback"]
    assert entry.note.endswith("; fell back") and "at most 4 row(s)" in entry.note
