"""Patient-level privacy for linked tables: group privacy on the ledger, and what it needs.

The unit of privacy is one *patient*: a row of the root table with every row that links to
it, directly or through its parents (visits of the patient, labs of those visits, ...).
:mod:`synthdata.relational.synthesizer` keeps at most ``k`` random rows of each descendant table
per root patient for training (the rows of a table, counted per patient whatever their
parent row), so a patient contributes 1 row to the root table's fit and at most ``k`` rows to
the fit of each descendant table ``t``. Every value a fit reads from another table is a column
of the patient's own rows (a child count, a parent-level value, the parent's cluster), so the
fit of table ``t`` changes by at most ``k`` of its rows when one patient is added or removed.

The maths. A mechanism that is ρ-zCDP for one *row* is ``k²ρ``-zCDP for a group of ``k`` rows
(Bun & Steinke 2016, Prop. 1.9; for a Gaussian mechanism this is exactly the L2 sensitivity
``k·Δ``: the ``k`` rows' clipped contributions add up at most to ``k·Δ``); a pure ε-DP mechanism
is ``kε``-DP. The fits of the tables read disjoint rows of one patient, and zCDP composes by
adding ρ, so one patient costs ``Σ_t k_t² ρ_t`` (``k_root = 1``): :class:`GroupLedger` is what
one table's generator sees as its ledger; it forwards every charge to the run's patient-level
ledger with the patient-level cost (ρ·k², sensitivity·k, ε·k), so the composed (ε, δ) of the
run holds for one patient. ``k`` is a public bound (the cap, or less where the schema itself
bounds the rows, e.g. a table keyed by its link), never the largest count seen in the data: a
group size read from the rows would itself depend on the patients, and so would the noise.

What it refuses for ``k > 1`` (``ConfigError``): charges with a δ (thresholded category
discovery -- declare the categories, or a fixed-combination rule's combinations, public),
approximate (ε, δ) pieces and DP-SGD, whose group-privacy bounds are loose; use the gmm
generator (DP-EM, all zCDP) for descendant tables.

Its ``epsilon``/``delta`` are a planning budget only: chosen so that the generator's own
budget split (:func:`synthdata.privacy.accounting.plan_split`) gives it exactly the row-level ρ
(and threshold δ) it was allotted; ``rho_budget``/``delta_budget`` hold the table to that
allotment (a clear :class:`~synthdata.errors.PrivacyBudgetError` naming the table otherwise) and
the run's ledger enforces the real budget.

:func:`check_privacy_unit` is the check every pipeline makes on its ``privacy:`` block: the
unit ``patient`` and ``max_rows_per_unit`` only mean something for linked tables.
"""

from __future__ import annotations

from typing import Any, Literal

from synthdata.errors import ConfigError, PrivacyBudgetError

__all__ = ["GroupLedger", "check_privacy_unit", "planning_delta", "planning_epsilon",
           "remaining_rho"]

_TOLERANCE = 1e-9   # relative float slack on a table's allotment


def check_privacy_unit(privacy: Any, *, linked: bool) -> None:
    """Refuse a ``privacy:`` block whose unit does not fit the data (``ConfigError``).

    ``linked`` is True for linked tables (``data.tables`` with a multi-table schema), whose
    unit is always one patient; a single table is protected per row.
    """
    if privacy is None:
        return
    explicit: set[str] = getattr(privacy, "model_fields_set", set())
    if not linked:
        if privacy.unit == "patient":
            raise ConfigError(
                "privacy.unit: patient needs linked tables with a patient key (data.tables with "
                "a multi-table schema whose root table holds one row per patient); for one "
                "table use unit: row, or split a table with several rows per patient into a "
                "patients table and a linked child table")
        if privacy.max_rows_per_unit is not None:
            raise ConfigError(
                "privacy.max_rows_per_unit caps the rows of each linked table per patient "
                "(patient-level privacy over data.tables); a single table is protected per row: "
                "remove max_rows_per_unit")
        return
    if privacy.unit == "row" and "unit" in explicit:
        raise ConfigError(
            "privacy.unit: row is not available for linked tables: the relational fit protects "
            "one patient with all their rows in every table; set unit: patient or leave it out")


def planning_epsilon(rho: float, delta: float, preprocessing_share: float,
                     training: Literal["zcdp"] = "zcdp") -> float:
    """The ε whose ``plan_split(ε, delta, ...)`` gives a total ρ of ``rho`` (bisection)."""
    from synthdata.privacy.accounting import plan_split

    if not rho > 0:
        raise ConfigError(f"a table's privacy share must be positive, got rho={rho!r}")

    def total(eps: float) -> float:
        plan = plan_split(eps, delta, preprocessing_share, training=training)
        assert plan.training_rho is not None  # a zCDP plan's training part is a ρ
        return plan.preprocessing_rho + plan.training_rho

    lo, hi = 1e-9, 1.0
    while total(hi) < rho:
        hi *= 2
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if total(mid) < rho else (lo, mid)
    return lo  # never plans more than rho


def planning_delta(threshold_delta: float, preprocessing_share: float,
                   training: str = "zcdp") -> float:
    """The δ whose ``plan_split(·, δ, ...)`` lets category thresholds spend ``threshold_delta``
    (plan_split gives thresholds a fixed share of δ)."""
    from synthdata.privacy.accounting import plan_split

    probe = 0.5
    share = plan_split(1.0, probe, preprocessing_share,
                       training=training).preprocessing_threshold_delta / probe  # type: ignore[arg-type]
    if not share > 0:
        raise ConfigError("the budget plan leaves no δ for category thresholds; declare the "
                          "categories public (public: true)")
    return min(threshold_delta / share, 0.5)


def remaining_rho(ledger: Any, *, reserve_delta: float = 0.0) -> float:
    """Largest ρ a new Gaussian charge could take on ``ledger`` while ``reserve_delta`` of its
    δ stays free for later category thresholds (they shrink the δ left to convert ρ into ε)."""
    if not reserve_delta:
        return float(ledger.remaining_rho())
    from synthdata.privacy.ledger import LedgerEntry

    def fits(rho: float) -> bool:
        return bool(ledger._fits(LedgerEntry("\x00probe", "gaussian", rho=rho, delta=reserve_delta)))

    if not fits(0.0):
        return 0.0
    lo, hi = 0.0, max(float(ledger.epsilon), 1e-12)
    while fits(hi):  # pragma: no cover - ρ <= ε always
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


class GroupLedger:
    """A per-table view of a patient-level ledger (see the module docstring).

    Parameters
    ----------
    main
        The run's :class:`~synthdata.privacy.ledger.PrivacyLedger` (unit ``patient``).
    table
        Prefix for the steps it records (``"pbcseq."``).
    group_size
        ``k``: the most rows one patient contributes to this table's training data.
    epsilon, delta
        The planning budget (see :func:`planning_epsilon`, :func:`planning_delta`).
    rho_budget, delta_budget
        The table's allotment at the level of a patient (after the ``k²`` scaling): its
        charges may add up to at most this ρ and this threshold δ (``None``: no own limit).
    """

    def __init__(self, main: Any, table: str, group_size: int, epsilon: float, delta: float,
                 *, rho_budget: float | None = None, delta_budget: float | None = None) -> None:
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ConfigError(f"group_size must be a positive integer, got {group_size!r}")
        self.main, self.table, self.k = main, table, group_size
        self.epsilon, self.delta = float(epsilon), float(delta)
        self.rho_budget, self.delta_budget = rho_budget, delta_budget
        self.rho_spent, self.delta_spent = 0.0, 0.0
        self.unit = main.unit
        self.accountant = main.accountant

    @property
    def is_private(self) -> bool:
        return True

    def _step(self, step: str) -> str:
        return f"{self.table}.{step}"

    def _refuse(self, step: str, what: str) -> None:
        if self.k > 1:
            raise ConfigError(
                f"patient-level privacy: step '{self._step(step)}' uses {what}, whose cost for "
                f"a patient with up to {self.k} rows has no tight bound here; declare the "
                "table's categories public (public: true), declare the combinations of its "
                "fixed-combination rules, and use the gmm generator for linked tables")

    def _check_allotment(self, step: str, rho: float, delta: float) -> None:
        """Refuse a charge beyond this table's share, saying which part overran."""
        if self.delta_budget is not None and delta and \
                self.delta_spent + delta > self.delta_budget * (1 + _TOLERANCE):
            raise PrivacyBudgetError(
                f"patient-level privacy: step '{self._step(step)}' would spend δ={delta:.3g} on "
                f"a category threshold, but table {self.table!r} was allotted δ="
                f"{self.delta_budget:.3g} for thresholds ({self.delta_spent:.3g} spent); "
                "declare the column's categories (or a fixed-combination rule's combinations) "
                "public in the schema so that no δ is needed")
        if self.rho_budget is not None and rho and \
                self.rho_spent + rho > self.rho_budget * (1 + _TOLERANCE):
            raise PrivacyBudgetError(
                f"patient-level privacy: step '{self._step(step)}' needs ρ={rho:.4g} for a "
                f"patient ({self.k} row(s) of {self.table!r}), but the table has ρ="
                f"{max(self.rho_budget - self.rho_spent, 0.0):.4g} left of its share ρ="
                f"{self.rho_budget:.4g} of the run's budget: its generator spent beyond its "
                "plan (please report this); a larger epsilon does not change the shares")

    def charge(self, step: str, mechanism: str = "gaussian", *, rho: float | None = None,
               sigma: float | None = None, sensitivity: float | None = None,
               epsilon: float | None = None, delta: float | None = None, note: str = "",
               **params: Any) -> Any:
        k = self.k
        if delta:
            self._refuse(step, "a δ (thresholded category discovery)")
        if mechanism == "approx":
            self._refuse(step, "an approximate (ε, δ) charge")
        group = f"group privacy: at most {k} row(s) per {self.unit}"
        note = f"{note}; {group}" if note else group
        self._check_allotment(step, _patient_rho(mechanism, k, rho, sigma, sensitivity, epsilon),
                              float(delta or 0.0))
        try:
            entry = self.main.charge(
                self._step(step), mechanism,
                rho=None if rho is None else rho * k * k,
                sigma=sigma,
                sensitivity=None if sensitivity is None else sensitivity * k,
                epsilon=None if epsilon is None else epsilon * k,
                delta=delta, note=note, rows_per_unit=k, **params)
        except PrivacyBudgetError as err:
            raise PrivacyBudgetError(
                f"patient-level privacy, table {self.table!r} (at most {k} row(s) per "
                f"{self.unit}): {err}") from err
        # what the main ledger recorded is what counts (it derives ρ from σ and Δ if needed)
        self.rho_spent += float(getattr(entry, "rho", None) or 0.0)
        self.delta_spent += float(getattr(entry, "delta", None) or 0.0)
        return entry

    def charge_dpsgd(self, step: str, *args: Any, **kwargs: Any) -> Any:
        self._refuse(step, "DP-SGD")
        return self.main.charge_dpsgd(self._step(step), *args, **kwargs)

    @property
    def dpsgd_delta(self) -> float:
        return self.main.dpsgd_delta

    def reserve(self, step: str, **kwargs: Any) -> None:
        self._refuse(step, "a DP-SGD reservation")
        self.main.reserve(self._step(step), **kwargs)

    def release(self, step: str) -> None:
        self.main.release(self._step(step))

    def record_public(self, step: str, reason: str) -> Any:
        return self.main.record_public(self._step(step), reason)

    def annotate(self, step: str, note: str, **params: Any) -> Any:
        return self.main.annotate(self._step(step), note, **params)

    def record_not_private(self, step: str, reason: str, *, shapes_release: bool = False) -> Any:
        return self.main.record_not_private(self._step(step), reason, shapes_release=shapes_release)

    # read-only views of the run
    def spent(self) -> tuple[float, float]:
        return self.main.spent()

    def composition(self, **kwargs: Any) -> Any:
        return self.main.composition(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return self.main.to_dict()


def _patient_rho(mechanism: str, k: int, rho: float | None, sigma: float | None,
                 sensitivity: float | None, epsilon: float | None) -> float:
    """The zCDP ρ a charge costs one patient of ``k`` rows (0 when the ledger derives it)."""
    if rho is not None:
        return float(rho) * k * k
    if mechanism == "gaussian" and sigma and sensitivity is not None:
        return (float(sensitivity) * k) ** 2 / (2.0 * float(sigma) ** 2)
    if mechanism in ("laplace", "pure"):
        if epsilon is None and mechanism == "laplace" and sigma and sensitivity is not None:
            epsilon = float(sensitivity) / float(sigma)
        if epsilon is not None:
            return (float(epsilon) * k) ** 2 / 2.0
    if mechanism == "exponential":  # ε-bounded range: ρ = ε²/8, and a group of k moves ε by k
        if epsilon is None and sigma and sensitivity is not None:
            epsilon = 2.0 * float(sensitivity) / float(sigma)
        if epsilon is not None:
            return (float(epsilon) * k) ** 2 / 8.0
    return 0.0
