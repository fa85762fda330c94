"""The pipeline side of the per-dataset privacy budget (:mod:`synthdata.privacy.budget`).

A DP pipeline declares where its dataset's budget lives, in its ``privacy`` block::

    privacy:
      epsilon: 1.0
      budget: {file: budget.json, total_epsilon: 5, total_delta: 1.0e-5}

(``file`` relative to the YAML; ``synthdata run --budget-file PATH`` sets or replaces it).
The runner reserves the run's ε (and its δ, or :data:`MAX_DEFAULT_DELTA` when δ is derived
from the row count) before it reads the data, and commits the ledger's spent (ε, δ) when
the run ends. A run that fails before any DP step releases its reservation; one that fails
after keeps what its ledger had committed (fail closed). A DP run without ``budget`` runs,
and its report says that nothing adds its cost to earlier runs on the same data.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthdata.errors import ConfigError, SynthDataError, format_validation_error
from synthdata.privacy.budget import MAX_DEFAULT_DELTA, BudgetStatus, BudgetStore, BudgetToken

log = logging.getLogger(__name__)

UNTRACKED = ("no per-dataset budget tracked: repeated DP runs on the same data add up (their "
             "ε and δ sum); declare privacy.budget (or synthdata run --budget-file) to count "
             "them and refuse a run that would exceed a declared total")
COMPOSITION = "basic composition across runs: the ε of all runs add up, and their δ"


class BudgetConfig(BaseModel):
    """``privacy.budget``: the budget file and the total declared for this dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path
    total_epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    total_delta: float | None = Field(default=None, gt=0, lt=1)


def split_privacy(privacy: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                            BudgetConfig | None]:
    """The privacy block without ``budget`` (for ``DPConfig``) and the parsed budget."""
    if privacy is None or "budget" not in privacy:
        return privacy, None
    rest = {k: v for k, v in privacy.items() if k != "budget"}
    raw = privacy["budget"]
    if not isinstance(raw, dict):
        raise ConfigError("privacy.budget: must be a mapping with 'file' (and total_epsilon, "
                          f"total_delta), got {raw!r}")
    try:
        return rest, BudgetConfig(**raw)
    except ValidationError as err:
        raise ConfigError("privacy.budget." + format_validation_error(err)) from None


def with_budget_file(cfg: Any, path: str | Path) -> Any:
    """``cfg`` (a ``PipelineConfig``) with ``privacy.budget.file`` set to ``path``."""
    if cfg.privacy is None:
        raise ConfigError("--budget-file: the pipeline has no privacy block; a budget file "
                          "adds up DP runs only (set privacy.epsilon)")
    budget = cfg.privacy.get("budget")
    budget = dict(budget) if isinstance(budget, dict) else {}
    budget["file"] = str(Path(path).resolve())
    return cfg.model_copy(update={"privacy": {**cfg.privacy, "budget": budget}})


def resolve_budget_path(privacy: dict[str, Any] | None, base: Path) -> dict[str, Any] | None:
    """``privacy`` with a relative ``budget.file`` made relative to ``base`` (the YAML's
    folder); anything malformed is left for :func:`split_privacy` to report."""
    if not isinstance(privacy, dict) or not isinstance(privacy.get("budget"), dict):
        return privacy
    file = privacy["budget"].get("file")
    if not isinstance(file, str | Path) or Path(file).is_absolute():
        return privacy
    return {**privacy, "budget": {**privacy["budget"], "file": str(base / file)}}


def dataset_key(cfg: Any, data: Any = None) -> str | None:
    """The dataset fingerprint: SHA-256 of the input file (or of the frame given to
    ``run_pipeline(data=...)``; of all tables' hashes for linked tables). ``None`` when an
    input file is missing (the run then fails on loading, as without a budget)."""
    from synthdata.io.files import fingerprint

    if data is not None:
        from synthdata.io.files import frame_fingerprint

        return frame_fingerprint(data)
    if cfg.data.tables is not None:
        paths = dict(sorted(cfg.data.tables.items()))
        if not all(Path(p).is_file() for p in paths.values()):
            return None
        joined = "\n".join(f"{name}:{fingerprint(p)}" for name, p in paths.items())
        return hashlib.sha256(joined.encode("utf-8")).hexdigest()
    if getattr(cfg.data, "sql", None) is not None:  # keyed by the source (URL without its
        from synthdata.io.sql import resolve_url, safe_url  # password, query or table), since
        # the rows are read only after the reservation
        source = f"sql:{safe_url(resolve_url(cfg.data.sql))}|{cfg.data.query}|{cfg.data.table}"
        return hashlib.sha256(source.encode("utf-8")).hexdigest()
    if cfg.data.path is None or not Path(cfg.data.path).is_file():
        return None
    return fingerprint(cfg.data.path)


class BudgetHold:
    """One run's reservation on its dataset's budget (made by :func:`reserve_budget`)."""

    def __init__(self, store: BudgetStore, token: BudgetToken, before: BudgetStatus) -> None:
        self.store, self.token, self.before = store, token, before
        self.ledger: Any = None
        self.done = False

    def attach(self, ledger: Any) -> None:
        """The run's ledger: what :meth:`commit` (or :meth:`abandon`) charges."""
        self.ledger = ledger

    def section(self) -> dict[str, Any]:
        """The report's ``budget`` section (ε values only: no data, no input hash)."""
        eps, delta = self.ledger.spent() if self.ledger is not None else (None, None)
        b = self.before
        others = [r for r in b.runs if r["run"] != self.token.run_id]
        spent_e = sum(math.inf if r["epsilon"] == "inf" else float(r["epsilon"]) for r in others)
        spent_d = sum(float(r["delta"]) for r in others)
        out = {"tracked": True, "file": str(self.store.path), "composition": COMPOSITION,
               "total_epsilon": b.total_epsilon, "total_delta": b.total_delta,
               "earlier_runs": len(others), "earlier_epsilon": spent_e,
               "earlier_delta": spent_d, "this_run_reserved_epsilon": self.token.epsilon,
               "this_run_reserved_delta": self.token.delta}
        if eps is not None and math.isfinite(eps):
            out.update(this_run_epsilon=eps, this_run_delta=delta,
                       remaining_epsilon=max(0.0, b.total_epsilon - spent_e - eps),
                       remaining_delta=max(0.0, b.total_delta - spent_d - delta))
        return out

    def commit(self) -> None:
        """Charge what the ledger spent (the reservation when no ledger was attached)."""
        if self.done:
            return
        if self.ledger is None:
            eps, delta = self.token.epsilon, self.token.delta
        else:
            eps, delta = self.ledger.spent()
        self.store.commit(self.token, eps, delta)
        self.done = True

    def abandon(self) -> None:
        """The run failed: release the reservation if no DP step ran, else charge what the
        ledger committed (reservations included). Never raises (the run's own error wins);
        a reservation that cannot be updated stays charged."""
        if self.done:
            return
        self.done = True
        try:
            charged = self.ledger is not None and any(
                e.private and e.mechanism != "public" for e in self.ledger.entries)
            if not charged:
                self.store.release(self.token)
                return
            eps, delta = self.ledger.committed()
            self.store.commit(self.token, min(eps, self.token.epsilon) if math.isfinite(eps)
                              else eps, delta)
        except SynthDataError as err:
            log.error("the budget reservation %s stays charged: %s", self.token.run_id, err)


def reserve_budget(cfg: Any, data: Any = None) -> BudgetHold | None:
    """Reserve the run's (ε, δ) on its dataset's budget, before any data is read.

    ``None`` for a run without ``privacy.budget``. Raises ``PrivacyBudgetError`` when the run
    does not fit in what remains.
    """
    rest, budget = split_privacy(cfg.privacy)
    if budget is None or rest is None:
        return None
    privacy = dp_config(cfg)
    key = dataset_key(cfg, data)
    if key is None:
        return None
    delta = privacy.delta if privacy.delta is not None else MAX_DEFAULT_DELTA
    if data is not None:
        label = "a data frame"
    elif cfg.data.tables is not None:
        label = "linked tables " + ", ".join(sorted(cfg.data.tables))
    else:
        label = cfg.data.path.name if cfg.data.path is not None else cfg.data.source
    kind = "relational" if cfg.data.tables is not None else cfg.generator.kind
    store = BudgetStore(budget.file)
    token = store.reserve(key, privacy.epsilon, delta, total_epsilon=budget.total_epsilon,
                          total_delta=budget.total_delta, generator=kind, label=label)
    before = store.status(key)
    assert before is not None
    return BudgetHold(store, token, before)


def budget_section(hold: BudgetHold | None, privacy: Any) -> dict[str, Any]:
    """The report's ``budget`` section for any run."""
    if hold is not None:
        return hold.section()
    if privacy is None:
        return {"tracked": False, "note": "not a DP run: no privacy cost to add up"}
    return {"tracked": False, "note": UNTRACKED}


def dp_config(cfg: Any) -> Any:
    """The pipeline's ``privacy:`` block as a ``DPConfig`` (``None`` without one)."""
    if cfg.privacy is None:
        return None
    from pydantic import ValidationError

    from synthdata.privacy.config import DPConfig

    try:
        return DPConfig(**split_privacy(cfg.privacy)[0])  # privacy.budget: pipeline/budget.py
    except ValidationError as err:
        raise ConfigError("privacy: " + format_validation_error(err)) from None
    except TypeError as err:
        raise ConfigError(f"privacy: {err}") from None
