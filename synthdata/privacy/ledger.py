"""``PrivacyLedger``: the one stateful privacy object of a run.

Every step that reads the real training data and shapes a released artefact records an
entry here: a DP mechanism (what it spent), a public fact (nothing spent), or a step that
was *not private* (its outputs must not be published). Charges are checked against the
budget *before* they are recorded; a charge that does not fit raises
:class:`~synthdata.errors.PrivacyBudgetError` and records nothing, so whoever charges
before doing the work never overspends. Composition maths live in
:mod:`synthdata.privacy.accounting` (see :func:`~synthdata.privacy.accounting.compose`).

Typical use::

    ledger = PrivacyLedger.from_config(cfg, n_rows=len(df))
    ledger.reserve("model.dp_sgd", epsilon=plan.training_epsilon)  # fails before any work
    ledger.charge("transform.bounds[age]", mechanism="gaussian", rho=0.01)
    ledger.record_public("transform.categories[sex]", reason="declared public in schema")
    ledger.charge_dpsgd("model.dp_sgd", noise_multiplier=1.1, sample_rate=0.01, steps=3000)
    eps, delta = ledger.spent()

DP-SGD: charge the planned steps once before training (or per epoch -- each charge
recomposes the whole history with the accountant, which costs up to seconds for tens of
thousands of steps with PRV), calibrate the noise at :attr:`PrivacyLedger.dpsgd_delta`, and
cross-check :meth:`PrivacyLedger.dpsgd_epsilon` against opacus's own accountant at the end.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthdata.errors import ConfigError, PrivacyBudgetError
from synthdata.jsonsafe import json_safe
from synthdata.privacy import accounting as acc
from synthdata.privacy.config import DPConfig

__all__ = ["LedgerEntry", "PrivacyLedger", "Reservation"]

_ZCDP = ("gaussian", "laplace", "pure", "exponential")
_MECHANISMS = (*_ZCDP, "approx")
_FORMAT_VERSION = 1
#: where the written privacy contract lives; every DP statement points to it
CONTRACT = "docs/privacy.md in the synthdata repository"


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded step.

    ``mechanism``: ``gaussian`` | ``laplace`` | ``pure`` | ``exponential`` (zCDP, composed
    in ``rho``; ``epsilon`` shows a pure or exponential mechanism's own ε),
    ``approx`` (an explicit ``(epsilon, delta)`` piece), ``dpsgd`` (composed by the
    accountant in ``params["accountant"]``; ``epsilon``/``delta`` show this entry alone at
    the DP-SGD δ), ``public`` (nothing read, nothing spent) or ``not_private``.
    ``private`` is True when the step is covered by the guarantee (DP or public), False
    when it read real data without privacy. For zCDP entries ``delta`` is the
    approximate-zCDP failure probability (e.g. a category threshold), usually None.
    """

    step: str
    mechanism: str
    private: bool = True
    rho: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["params"] = json_safe(dict(self.params))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"ledger entry has unknown keys {sorted(unknown)}")
        kwargs = dict(data)
        kwargs["params"] = dict(kwargs.get("params") or {})
        return cls(**kwargs)


@dataclass(frozen=True)
class Reservation:
    """Budget held for a step before it runs: ``rho`` for zCDP steps, ``epsilon`` for
    DP-SGD / explicit ``(ε, δ)`` steps (at the DP-SGD δ share). Charges to the step, or to
    a sub-step (``step.x`` / ``step[x]``), consume it."""

    step: str
    epsilon: float = 0.0
    rho: float = 0.0




def _under(step: str, prefix: str) -> bool:
    return step == prefix or step.startswith(prefix + ".") or step.startswith(prefix + "[")


def _round_up(x: float, digits: int = 3) -> str:
    """Format ``x`` with ``digits`` significant digits, rounding up (never understate ε)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(x))))
    up = math.ceil(x * scale - 1e-9) / scale
    return f"{up:.{digits}g}"


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a number, got {value!r}") from err
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                          f"got {value!r}")
    return v



def _dpsgd_run(entry: LedgerEntry) -> tuple[float, float, int]:
    """``(noise multiplier, sample rate, steps)`` of a DP-SGD entry, for its accountant."""
    if entry.sample_rate is None or entry.steps is None:
        raise ValueError(f"DP-SGD ledger entry '{entry.step}' has no sample rate or steps")
    return float(entry.params["noise_multiplier"]), float(entry.sample_rate), int(entry.steps)

class PrivacyLedger:
    """Records every data-touching step of a run and enforces the ``(epsilon, delta)`` budget.

    ``PrivacyLedger()`` (``epsilon=None``) is a non-private run: entries are recorded,
    nothing is refused, and :meth:`spent` returns ``(inf, 1.0)``.
    """

    def __init__(
        self,
        epsilon: float | None = None,
        delta: float | None = None,
        *,
        accountant: str = "prv",
        dpsgd_delta_share: float = 0.5,
        unit: str = "row",
    ) -> None:
        if epsilon is not None:
            epsilon = _positive("epsilon", epsilon)
            if delta is None:
                raise ConfigError(
                    "a privacy budget needs delta as well as epsilon; use "
                    "PrivacyLedger.from_config(cfg, n_rows) to derive it from the row count"
                )
        if delta is not None:
            delta = _positive("delta", delta)
            if delta >= 1:
                raise ConfigError(f"delta must be < 1, got {delta!r}")
        if accountant not in acc.ACCOUNTANTS:
            raise ConfigError(f"accountant must be one of {acc.ACCOUNTANTS}, got {accountant!r}")
        if not 0 < dpsgd_delta_share <= 1:
            raise ConfigError(f"dpsgd_delta_share must be in (0, 1], got {dpsgd_delta_share!r}")
        self.epsilon: float | None = epsilon
        self.delta: float | None = delta
        self.accountant = accountant
        self.dpsgd_delta_share = float(dpsgd_delta_share)
        self.unit = unit
        self._entries: list[LedgerEntry] = []
        self._reservations: dict[str, Reservation] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, cfg: DPConfig | None, n_rows: int | None = None) -> PrivacyLedger:
        """A ledger for ``cfg`` (``None`` = non-private run); δ resolved from ``n_rows``."""
        if cfg is None:
            return cls()
        return cls(
            epsilon=cfg.epsilon,
            delta=cfg.resolve_delta(n_rows),
            accountant=cfg.accountant,
            dpsgd_delta_share=cfg.dpsgd_delta_share,
            unit=cfg.unit,
        )

    # ------------------------------------------------------------------ read-only views

    @property
    def is_private(self) -> bool:
        """True when the ledger enforces a budget."""
        return self.epsilon is not None

    @property
    def entries(self) -> list[LedgerEntry]:
        """A copy of the entries, in the order they were recorded."""
        return list(self._entries)

    @property
    def reservations(self) -> list[Reservation]:
        return list(self._reservations.values())

    @property
    def dpsgd_delta(self) -> float:
        """The δ at which DP-SGD is accounted (calibrate the noise at exactly this δ)."""
        if self.delta is None:
            raise ConfigError("a ledger without delta cannot account DP-SGD; set a budget")
        n = len({self._accountant_of(e) for e in self._entries if e.mechanism == "dpsgd"})
        return acc.dpsgd_delta_for(self.delta, max(n, 1), self.dpsgd_delta_share)

    def not_private_steps(self) -> list[str]:
        """Steps that read real data without privacy (their outputs must not be published)."""
        return [e.step for e in self._entries if not e.private]

    # ------------------------------------------------------------------ composition

    @staticmethod
    def _accountant_of(entry: LedgerEntry) -> str:
        return str(entry.params.get("accountant", "prv"))

    def _compose(
        self, entries: list[LedgerEntry], reservations: Mapping[str, Reservation], delta: float
    ) -> acc.Composition:
        rho = sum(e.rho or 0.0 for e in entries if e.mechanism in _ZCDP)
        rho_delta = sum(e.delta or 0.0 for e in entries if e.mechanism in _ZCDP)
        explicit = [(e.epsilon or 0.0, e.delta or 0.0) for e in entries if e.mechanism == "approx"]
        hist: dict[str, list[tuple[float, float, int]]] = {}
        for e in entries:
            if e.mechanism == "dpsgd":
                hist.setdefault(self._accountant_of(e), []).append(
                    _dpsgd_run(e)
                )
        for r in reservations.values():
            if r.rho > 0:
                used = sum(e.rho or 0.0 for e in entries if e.mechanism in _ZCDP
                           and _under(e.step, r.step))
                rho += max(0.0, r.rho - used)
        eps_res = [r for r in reservations.values() if r.epsilon > 0]
        comp = acc.compose(
            delta=delta,
            zcdp_rho=rho,
            zcdp_delta_total=rho_delta,
            dpsgd=hist,
            dpsgd_planned=bool(eps_res),
            explicit=explicit,
            dpsgd_delta_share=self.dpsgd_delta_share,
        )
        unused = 0.0
        for r in eps_res:
            mine = [e for e in entries if _under(e.step, r.step)]
            used = sum(e.epsilon or 0.0 for e in mine if e.mechanism == "approx")
            mine_hist: dict[str, list[tuple[float, float, int]]] = {}
            for e in mine:
                if e.mechanism == "dpsgd":
                    mine_hist.setdefault(self._accountant_of(e), []).append(
                        _dpsgd_run(e)
                    )
            used += sum(acc.dpsgd_epsilon(h, comp.dpsgd_delta, a) for a, h in mine_hist.items())
            unused += max(0.0, r.epsilon - used)
        if unused:
            comp = dataclasses.replace(comp, epsilon=comp.epsilon + unused,
                                       explicit_epsilon=comp.explicit_epsilon + unused)
        return comp

    def composition(self, *, include_reservations: bool = False) -> acc.Composition:
        """The full breakdown of :meth:`spent` (or of the committed total with reservations)."""
        if self.delta is None:
            raise ConfigError("a ledger without delta has no (ε, δ) composition")
        private = [e for e in self._entries if e.private]
        res = self._reservations if include_reservations else {}
        return self._compose(private, res, self.delta)

    def _releases_without_privacy(self) -> bool:
        return any(not e.private and e.params.get("shapes_release") for e in self._entries)

    def spent(self) -> tuple[float, float]:
        """Composed ``(epsilon, delta)`` of everything charged so far (never above budget).

        ``(inf, 1.0)`` for a ledger without δ or one where a non-private step shaped the
        released artefact.
        """
        if self.delta is None or self._releases_without_privacy():
            return math.inf, 1.0
        comp = self.composition()
        return comp.epsilon, comp.delta

    def total(self) -> tuple[float, float]:
        """Same as :meth:`spent`: the ``(epsilon, delta)`` of the released artefact."""
        return self.spent()

    def committed(self) -> tuple[float, float]:
        """Like :meth:`spent` but counting the unused part of every reservation too."""
        if self.delta is None or self._releases_without_privacy():
            return math.inf, 1.0
        comp = self.composition(include_reservations=True)
        return comp.epsilon, comp.delta

    def remaining_epsilon(self) -> float:
        """Budget ε minus the committed ε (reservations count as spent); inf if non-private."""
        if self.epsilon is None:
            return math.inf
        return max(0.0, self.epsilon - self.committed()[0])

    def remaining_rho(self) -> float:
        """Largest zCDP ``ρ`` a new (unreserved) Gaussian charge could take right now."""
        if self.epsilon is None:
            return math.inf
        if not self._fits(self._probe(0.0)):
            return 0.0
        lo, hi = 0.0, max(self.epsilon, 1e-12)
        while self._fits(self._probe(hi)):  # pragma: no cover - ρ <= ε always
            lo, hi = hi, hi * 2
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self._fits(self._probe(mid)):
                lo = mid
            else:
                hi = mid
        return lo

    def dpsgd_epsilon(self, accountant: str | None = None) -> float:
        """ε of the DP-SGD entries of one accountant alone, at :attr:`dpsgd_delta`
        (compare with ``PrivacyEngine.get_epsilon(ledger.dpsgd_delta)`` after training)."""
        name = accountant or self.accountant
        hist = [
            _dpsgd_run(e)
            for e in self._entries
            if e.mechanism == "dpsgd" and self._accountant_of(e) == name
        ]
        return acc.dpsgd_epsilon(hist, self.dpsgd_delta, name)

    # ------------------------------------------------------------------ budget checks

    def _probe(self, rho: float) -> LedgerEntry:
        return LedgerEntry(step="\x00probe", mechanism="gaussian", rho=rho)

    def _fits(
        self,
        entry: LedgerEntry | None = None,
        reservations: Mapping[str, Reservation] | None = None,
    ) -> bool:
        assert self.epsilon is not None and self.delta is not None
        entries = [e for e in self._entries if e.private]
        if entry is not None:
            entries.append(entry)
        comp = self._compose(
            entries, self._reservations if reservations is None else reservations, self.delta
        )
        return comp.epsilon <= self.epsilon and comp.delta <= self.delta

    def _refuse(self, step: str, what: str, entry: LedgerEntry | None,
                reservations: Mapping[str, Reservation] | None = None) -> None:
        """Raise PrivacyBudgetError if adding ``entry``/``reservations`` breaks the budget."""
        if not self.is_private or self._fits(entry, reservations):
            return
        assert self.epsilon is not None and self.delta is not None
        entries = [e for e in self._entries if e.private] + ([entry] if entry else [])
        res = self._reservations if reservations is None else reservations
        after = self._compose(entries, res, self.delta)
        eps_now = self.committed()[0]
        pieces = sum(e.delta or 0.0 for e in entries)  # δ spent outright (thresholds)
        if after.epsilon <= self.epsilon or pieces >= self.delta:  # it is δ that ran out
            raise PrivacyBudgetError(
                f"step '{step}' ({what}) does not fit the privacy budget "
                f"(ε={self.epsilon:g}, δ={self.delta:g}): δ runs out (the steps' own δ "
                f"add up to {pieces:.3g}, and converting ρ to ε needs the rest); raise "
                f"delta, or spend less δ on category thresholds by declaring the categories "
                f"public in the schema"
            )
        raise PrivacyBudgetError(
            f"step '{step}' ({what}) does not fit the privacy budget "
            f"(ε={self.epsilon:g}, δ={self.delta:g}): it would bring the committed total to "
            f"ε={after.epsilon:.4g} (already committed: ε={eps_now:.4g}, of which reserved "
            f"by {sorted(self._reservations) or 'no step'}); add noise, plan fewer steps or "
            f"iterations, mark bounds/categories public in the schema, or raise epsilon"
        )

    # ------------------------------------------------------------------ recording

    def reserve(self, step: str, *, epsilon: float | None = None, rho: float | None = None) -> None:
        """Hold budget for ``step`` before doing any work; raise if the plan cannot fit.

        ``rho`` reserves zCDP budget (Gaussian mechanisms, DP-EM); ``epsilon`` reserves an
        ε spent at the DP-SGD δ share (DP-SGD). A second reservation for the same step
        adds to the first. Charges to ``step`` or its sub-steps consume the reservation;
        :meth:`release` returns what is left.
        """
        if epsilon is None and rho is None:
            raise ConfigError(f"reserve('{step}') needs epsilon= or rho=")
        e = _positive("epsilon", epsilon, allow_zero=True) if epsilon is not None else 0.0
        r = _positive("rho", rho, allow_zero=True) if rho is not None else 0.0
        old = self._reservations.get(step, Reservation(step))
        new = Reservation(step, epsilon=old.epsilon + e, rho=old.rho + r)
        trial = {**self._reservations, step: new}
        self._refuse(step, f"reservation of ε={e:g}, ρ={r:g}", None, trial)
        self._reservations[step] = new

    def release(self, step: str) -> None:
        """Drop the reservation of ``step`` (e.g. training stopped early); charges stay."""
        self._reservations.pop(step, None)

    def _record(self, entry: LedgerEntry, what: str) -> LedgerEntry:
        if entry.private and entry.mechanism not in ("public",):
            self._refuse(entry.step, what, entry)
        self._entries.append(entry)
        return entry

    def charge(
        self,
        step: str,
        mechanism: str = "gaussian",
        *,
        rho: float | None = None,
        sigma: float | None = None,
        sensitivity: float | None = None,
        epsilon: float | None = None,
        delta: float | None = None,
        note: str = "",
        **params: Any,
    ) -> LedgerEntry:
        """Charge a DP mechanism to the ledger; raise (recording nothing) if it does not fit.

        * ``gaussian``: ``rho``, or ``sigma`` and ``sensitivity`` (L2) to derive
          ``ρ = Δ²/(2σ²)``; if all three are given, ``rho`` must not understate them.
          ``delta`` is an approximate-zCDP failure probability (e.g. category thresholds).
        * ``laplace`` / ``pure``: ``epsilon`` (pure ε-DP), charged as ``ρ = ε²/2``; for
          ``laplace``, ``sigma`` may be given as the Laplace scale with ``sensitivity``.
        * ``exponential``: a selection (the exponential mechanism, or report-noisy-max with
          Gumbel noise, which is the same mechanism): ``epsilon``, the mechanism's ε -- it
          picks candidate ``i`` with probability ∝ ``exp(ε·score_i / (2Δ))`` --, or ``sigma``
          (the Gumbel scale β) and ``sensitivity`` (Δ, how far one unit moves any score) for
          ``ε = 2Δ/β``; charged as ``ρ = ε²/8`` (the exponential mechanism is ε-bounded
          range, and ε-bounded range is ε²/8-zCDP: Cesar & Rogers 2021, Lemma 3.2 -- a
          quarter of the ε²/2 a generic pure ε-DP mechanism costs). ``rho`` may be given
          too, as long as it does not understate ε²/8.
        * ``approx``: an explicit ``(epsilon, delta)`` piece, added by basic composition.

        Extra keyword ``params`` are stored in the entry (JSON-serialisable values please).
        """
        if mechanism not in _MECHANISMS:
            raise ConfigError(
                f"mechanism for step '{step}' must be one of {_MECHANISMS} (DP-SGD: use "
                f"charge_dpsgd), got {mechanism!r}"
            )
        stored = dict(params)
        if mechanism == "gaussian":
            if epsilon is not None:
                raise ConfigError(f"step '{step}': a gaussian charge takes rho (or sigma and "
                                  "sensitivity), not epsilon")
            derived = None
            if sigma is not None:
                if sensitivity is None:
                    raise ConfigError(f"step '{step}': give sensitivity together with sigma")
                derived = acc.gaussian_rho(_positive("sigma", sigma),
                                           _positive("sensitivity", sensitivity, allow_zero=True))
                stored.update(sigma=float(sigma), sensitivity=float(sensitivity))
            if rho is None:
                if derived is None:
                    raise ConfigError(f"step '{step}': a gaussian charge needs rho, or sigma "
                                      "and sensitivity")
                rho = derived
            rho = _positive("rho", rho, allow_zero=True)
            if derived is not None and rho < derived * (1 - 1e-9):
                raise ConfigError(
                    f"step '{step}': rho={rho:g} understates sigma={sigma:g}, "
                    f"sensitivity={sensitivity:g} (ρ = {derived:g})"
                )
            d0 = _positive("delta", delta, allow_zero=True) if delta is not None else None
            entry = LedgerEntry(step, mechanism, True, rho=rho, delta=d0 or None,
                                params=stored, note=note)
            return self._record(entry, f"gaussian, ρ={rho:g}")
        if mechanism in ("laplace", "pure"):
            if delta:
                raise ConfigError(f"step '{step}': a {mechanism} charge is pure ε-DP; use "
                                  "mechanism='approx' for an (ε, δ) piece")
            if epsilon is None and mechanism == "laplace" and sigma is not None:
                if sensitivity is None:
                    raise ConfigError(f"step '{step}': give sensitivity with the Laplace scale")
                epsilon = float(sensitivity) / _positive("sigma", sigma)
                stored.update(scale=float(sigma), sensitivity=float(sensitivity))
            if epsilon is None:
                raise ConfigError(f"step '{step}': a {mechanism} charge needs epsilon")
            epsilon = _positive("epsilon", epsilon, allow_zero=True)
            rho_e = acc.pure_to_rho(epsilon)
            entry = LedgerEntry(step, mechanism, True, rho=rho_e, epsilon=epsilon,
                                params=stored, note=note)
            return self._record(entry, f"{mechanism}, ε={epsilon:g} (ρ={rho_e:g})")
        if mechanism == "exponential":
            return self._charge_exponential(step, rho, sigma, sensitivity, epsilon, delta,
                                            note, stored)
        # approx
        if epsilon is None or delta is None:
            raise ConfigError(f"step '{step}': an approx charge needs epsilon and delta")
        epsilon = _positive("epsilon", epsilon, allow_zero=True)
        delta = _positive("delta", delta, allow_zero=True)
        entry = LedgerEntry(step, "approx", True, epsilon=epsilon, delta=delta,
                            params=stored, note=note)
        return self._record(entry, f"approx, ε={epsilon:g}, δ={delta:g}")

    def _charge_exponential(self, step: str, rho: float | None, sigma: float | None,
                            sensitivity: float | None, epsilon: float | None,
                            delta: float | None, note: str,
                            stored: dict[str, Any]) -> LedgerEntry:
        """The ``exponential`` branch of :meth:`charge` (ρ = ε²/8, bounded range)."""
        if delta:
            raise ConfigError(f"step '{step}': an exponential charge is pure ε-DP; use "
                              "mechanism='approx' for an (ε, δ) piece")
        if sigma is not None:
            if sensitivity is None:
                raise ConfigError(f"step '{step}': give sensitivity (the score sensitivity) "
                                  "with the Gumbel scale sigma")
            derived = 2.0 * _positive("sensitivity", sensitivity, allow_zero=True) \
                / _positive("sigma", sigma)
            if epsilon is not None and _positive("epsilon", epsilon) < derived * (1 - 1e-9):
                raise ConfigError(f"step '{step}': epsilon={epsilon:g} understates "
                                  f"sigma={sigma:g}, sensitivity={sensitivity:g} "
                                  f"(ε = 2Δ/β = {derived:g})")
            epsilon = derived if epsilon is None else epsilon
            stored.update(scale=float(sigma), sensitivity=float(sensitivity))
        if epsilon is None:
            raise ConfigError(f"step '{step}': an exponential charge needs epsilon, or sigma "
                              "(the Gumbel scale) and sensitivity")
        epsilon = _positive("epsilon", epsilon, allow_zero=True)
        rho_e = acc.exponential_rho(epsilon)
        if rho is not None:
            rho = _positive("rho", rho, allow_zero=True)
            if rho < rho_e * (1 - 1e-9):
                raise ConfigError(f"step '{step}': rho={rho:g} understates the exponential "
                                  f"mechanism's ε={epsilon:g} (ρ = ε²/8 = {rho_e:g})")
            rho_e = rho
        entry = LedgerEntry(step, "exponential", True, rho=rho_e, epsilon=epsilon,
                            params=stored, note=note)
        return self._record(entry, f"exponential, ε={epsilon:g} (ρ={rho_e:g})")

    def charge_dpsgd(
        self,
        step: str,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        accountant: str | None = None,
        *,
        note: str = "",
        **params: Any,
    ) -> LedgerEntry:
        """Charge ``steps`` Poisson-sampled DP-SGD steps; raise (recording nothing) if they
        do not fit. All DP-SGD entries of one accountant are composed together by it."""
        name = accountant or self.accountant
        if name not in acc.ACCOUNTANTS:
            raise ConfigError(f"accountant must be one of {acc.ACCOUNTANTS}, got {name!r}")
        sigma = _positive("noise_multiplier", noise_multiplier)
        q = _positive("sample_rate", sample_rate)
        if q > 1:
            raise ConfigError(f"sample_rate must be <= 1, got {sample_rate!r}")
        if int(steps) != steps or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        stored = {"noise_multiplier": sigma, "accountant": name, **params}
        entry_eps = None
        entry_delta = None
        if self.delta is not None:
            accs = {self._accountant_of(e) for e in self._entries if e.mechanism == "dpsgd"}
            entry_delta = acc.dpsgd_delta_for(self.delta, len(accs | {name}),
                                              self.dpsgd_delta_share)
            entry_eps = acc.dpsgd_epsilon([(sigma, q, int(steps))], entry_delta, name)
        entry = LedgerEntry(step, "dpsgd", True, epsilon=entry_eps, delta=entry_delta,
                            sample_rate=q, steps=int(steps), params=stored, note=note)
        return self._record(
            entry, f"DP-SGD, noise_multiplier={sigma:g}, sample_rate={q:g}, steps={int(steps)}"
        )

    def record_public(self, step: str, reason: str) -> LedgerEntry:
        """Record that ``step`` used only public knowledge (e.g. bounds declared public)."""
        return self._record(LedgerEntry(step, "public", True, note=reason), "public")

    def record_not_private(
        self, step: str, reason: str, *, shapes_release: bool = False
    ) -> LedgerEntry:
        """Record that ``step`` read real data without privacy, e.g. "fidelity metrics on
        the training split": the report flags its outputs as not publishable.

        ``shapes_release=True`` means the step influences the released artefact; a ledger
        with a budget refuses that (PrivacyBudgetError), a non-private ledger records it.
        """
        if shapes_release and self.is_private:
            raise PrivacyBudgetError(
                f"step '{step}' reads the real data without privacy and shapes the released "
                f"artefact ({reason}); under DP it must use a DP mechanism or public facts"
            )
        entry = LedgerEntry(step, "not_private", False, note=reason,
                            params={"shapes_release": bool(shapes_release)})
        self._entries.append(entry)
        return entry

    def annotate(self, step: str, note: str, **params: Any) -> LedgerEntry:
        """Add what a DP output turned out to mean to the latest entry of ``step`` (e.g. "no
        bucket cleared the noise: the range fell back to [0, 1]"). Post-processing of the
        released value: nothing is read or spent, the charge stays as recorded."""
        for i in range(len(self._entries) - 1, -1, -1):
            entry = self._entries[i]
            if entry.step == step:
                note = f"{entry.note}; {note}" if entry.note else note
                self._entries[i] = dataclasses.replace(
                    entry, note=note, params={**entry.params, **params})
                return self._entries[i]
        raise KeyError(f"no ledger entry for step {step!r} to annotate")

    # ------------------------------------------------------------------ report / archive

    def plain_language(self, unit: str | None = None) -> str:
        """One sentence for the report, e.g. "this dataset was generated with (ε=3,
        δ=1e-06)-differential privacy at the level of one row"."""
        unit = unit or self.unit
        eps, delta = self.spent()
        if not self.is_private or not math.isfinite(eps):
            text = ("this dataset was generated without differential privacy; its privacy "
                    "rests only on the leakage checks in this report")
        else:
            text = (f"this dataset was generated with (ε={_round_up(eps)}, "
                    f"δ={_round_up(delta, 2)})-differential privacy at the level of one {unit}")
        if self.is_private:
            from synthdata.privacy.noise import REPRODUCIBILITY_NOTE

            text += ". " + REPRODUCIBILITY_NOTE.rstrip(".")
            text += (". What is protected, what is public and what each file of the run "
                     f"contains: the privacy contract, {CONTRACT}")
        hidden = [e for e in self._entries if not e.private]
        if hidden:
            items = "; ".join(f"{e.step} ({e.note})" for e in hidden)
            text += f". Not private, must not be published: {items}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for ``report.json`` and model archives (round-trips via from_dict)."""
        out: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "private": self.is_private,
            "budget": {"epsilon": self.epsilon, "delta": self.delta},
            "accountant": self.accountant,
            "dpsgd_delta_share": self.dpsgd_delta_share,
            "unit": self.unit,
            "entries": [e.to_dict() for e in self._entries],
            "reservations": [dataclasses.asdict(r) for r in self._reservations.values()],
            "not_private_steps": self.not_private_steps(),
            "plain_language": self.plain_language(),
        }
        eps, delta = self.spent()
        out["spent"] = {"epsilon": eps if math.isfinite(eps) else None, "delta": delta}
        if self.delta is not None and math.isfinite(eps):
            comp = self.composition()
            out["composition"] = json_safe(dataclasses.asdict(comp))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyLedger:
        """Rebuild a ledger from :meth:`to_dict` output (derived fields are recomputed)."""
        if data.get("version", _FORMAT_VERSION) != _FORMAT_VERSION:
            raise ConfigError(f"unsupported ledger format version {data.get('version')!r}")
        budget = data.get("budget") or {}
        ledger = cls(
            epsilon=budget.get("epsilon"),
            delta=budget.get("delta"),
            accountant=data.get("accountant", "prv"),
            dpsgd_delta_share=data.get("dpsgd_delta_share", 0.5),
            unit=data.get("unit", "row"),
        )
        ledger._entries = [LedgerEntry.from_dict(copy.deepcopy(e))
                           for e in data.get("entries", [])]
        ledger._reservations = {r["step"]: Reservation(**r) for r in data.get("reservations", [])}
        return ledger

    def __repr__(self) -> str:
        budget = "non-private" if not self.is_private else f"ε={self.epsilon:g}, δ={self.delta:g}"
        return f"PrivacyLedger({budget}, {len(self._entries)} entries)"
