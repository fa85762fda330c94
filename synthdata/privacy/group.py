"""Patient-level privacy for tables with several rows per patient: group privacy on the ledger.

A child table (visits, labs) has up to ``k`` rows per patient once contributions are capped
(:mod:`synthdata.medical.relational` keeps at most ``k`` random rows of each patient for
training). A mechanism that is ρ-zCDP for one *row* is ``k²ρ``-zCDP for a group of ``k`` rows,
i.e. for one *patient* (Bun & Steinke 2016, group privacy of zCDP); a pure ε-DP mechanism is
``kε``-DP. :class:`GroupLedger` is what a per-table generator sees as its ledger: it forwards
every charge to the run's patient-level ledger with the patient-level cost (ρ·k², L2
sensitivity·k, ε·k), so the composed (ε, δ) of the run is exact at the level of a patient.

What it refuses for ``k > 1`` (``ConfigError``): charges with a δ (thresholded category
discovery — declare the categories ``public: true``), approximate (ε, δ) pieces and DP-SGD,
whose group-privacy bounds are loose; use the gmm generator (DP-EM, all zCDP) for child tables.

Its ``epsilon``/``delta`` are a planning budget only: chosen so that the generator's own
budget split (:func:`synthdata.privacy.accounting.plan_split`) gives it exactly the row-level ρ
it was allotted; the run's ledger enforces the real budget.
"""

from __future__ import annotations

from typing import Any

from synthdata.errors import ConfigError

__all__ = ["GroupLedger", "planning_epsilon"]


def planning_epsilon(rho: float, delta: float, preprocessing_share: float,
                     training: str = "zcdp") -> float:
    """The ε whose ``plan_split(ε, delta, ...)`` gives a total ρ of ``rho`` (bisection)."""
    from synthdata.privacy.accounting import plan_split

    if not rho > 0:
        raise ConfigError(f"a table's privacy share must be positive, got rho={rho!r}")

    def total(eps: float) -> float:
        plan = plan_split(eps, delta, preprocessing_share, training=training)  # type: ignore[arg-type]
        return plan.preprocessing_rho + plan.training_rho

    lo, hi = 1e-9, 1.0
    while total(hi) < rho:
        hi *= 2
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if total(mid) < rho else (lo, mid)
    return lo  # never plans more than rho


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
        The planning budget (see :func:`planning_epsilon`).
    """

    def __init__(self, main: Any, table: str, group_size: int, epsilon: float, delta: float) -> None:
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ConfigError(f"group_size must be a positive integer, got {group_size!r}")
        self.main, self.table, self.k = main, table, group_size
        self.epsilon, self.delta = float(epsilon), float(delta)
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
                "table's categories public (public: true) and use the gmm generator for "
                "child tables")

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
        return self.main.charge(
            self._step(step), mechanism,
            rho=None if rho is None else rho * k * k,
            sigma=sigma,
            sensitivity=None if sensitivity is None else sensitivity * k,
            epsilon=None if epsilon is None else epsilon * k,
            delta=delta, note=note, rows_per_unit=k, **params)

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

    def record_not_private(self, step: str, reason: str, *, shapes_release: bool = False) -> Any:
        return self.main.record_not_private(self._step(step), reason, shapes_release=shapes_release)

    # read-only views of the run
    def spent(self) -> tuple[float, float]:
        return self.main.spent()

    def composition(self, **kwargs: Any) -> Any:
        return self.main.composition(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return self.main.to_dict()
