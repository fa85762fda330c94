"""Relational generation: parents first with child counts, then children conditioned on parents.

How it works (the simplest approach we can defend, and what it does not do):

1. **Parents.** Each parent table is fitted with one extra column per child table,
   ``__n_<child>`` (its number of children), plus the child's ``parent_level`` columns (values
   constant within a parent, e.g. pbcseq.futime) as ``<child>__<column>``. Sampling it gives
   synthetic parents with their child counts; keys are regenerated as 1..n.
2. **Parent context.** Real parents that have children are clustered (k-means on the
   standardised, one-hot encoded parent columns named in ``context``, by default all learned
   ones including the counts) into at most ``n_context_clusters`` groups; synthetic parents are
   assigned to the nearest cluster. The child generator is fitted on child rows plus two
   discrete columns: ``__ctx`` (the parent's cluster) and ``__seq`` (a log-spaced bin of the
   row's rank in time within its parent). Children depend on their parent only through these
   two columns (and the copied ``parent_level`` values): coarse, but it works with any of
   gmm/vae/ctgan through their discrete ``conditions`` and stays vectorised — one ``sample``
   call per (cluster, rank bin) pair, never one per parent.
3. **Children.** Every synthetic parent gets exactly its sampled number of rows; the foreign
   key points to it and ``parent_level`` values are copied from it. Rows are sorted in time
   within the parent (whole rows move, so row values stay together), clipped to the bounds
   that declared constraints put on them and, when the time column is part of the child's
   key, made strictly increasing (rows that cannot fit between the bounds are dropped and
   counted).

Steps 2-3 are the ``gmm`` path. By default (``generator="auto"``) a child table whose link
has a numeric time column is instead one *history* per parent from the sequence generator
(:mod:`synthdata.models.sequence`): conditioned on the parent's training row, with exactly the
parent's sampled child count of rows (:meth:`RelationalSynthesizer.table_generator` says which
generator a table gets; under privacy every table uses gmm).

Constraints: a table's own rules over columns its generator learns are enforced by that
generator (``synthdata.constraints``); rules that involve the parent (a top-level rule such as
``nafld2.days <= nafld1.futime``, or a table rule naming a ``parent_level`` column such as
``0 <= day <= futime``) bound the child column by the parent's synthetic value and are applied
by clipping after sampling (numeric columns). ``violations_`` then counts the rows breaking each
declared rule in the output (0 expected).

Patient-level privacy (``privacy=DPConfig``, gmm or aim). The unit is a root row (a patient) with
all its linked rows, at every depth (a lab belongs to the patient of its visit). The schema
must give every row exactly one patient (:func:`patient_root`: one root table, one parent per
table, no cycle; otherwise ``ConfigError``) and every row must reach its patient through its
keys (:func:`check_patient_rows`: otherwise ``DataError``). Every table's generator runs DP-EM
(zCDP) on an equal share of the run's ρ; each descendant table is trained on at most
``max_rows_per_unit`` (default 10) random rows *per patient* (:func:`cap_per_patient`, counted
across all of the patient's parent rows, chosen with OS entropy; ranks in time are taken before
the cap) and its charges go to the ledger multiplied by k² (:class:`~synthdata.privacy.group.
GroupLedger`: zCDP group privacy; k is the public cap). Child counts and parent-level values
are columns of the patient's own rows. Parent clusters are fitted on *synthetic* parents; the
non-missing share of an unenforced link (root table only) is a noisy count. Discrete columns
need public category lists; a fixed-combination rule without declared combinations is allowed
on the root table (its thresholded discovery gets a δ held back before the ρ is shared out) and
refused on descendant tables. Nothing else reads the data.

Referential integrity of the output is checked before it is returned. Unenforced links (e.g.
nafld1.case.id) are not modelled: the column is filled with random synthetic keys at the real
share of non-missing values.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd

from synthdata._rng import child_seed, make_rng
from synthdata.constraints.kinds import HistoryRule, Inequality, Range, column_values
from synthdata.errors import ConditionTooRareError, ConfigError, DataError, NotFittedError
from synthdata.relational.schema import ForeignKey, MultiTableSchema
from synthdata.schema.model import Column, ColumnKind, Schema

log = logging.getLogger(__name__)

CTX = "__ctx"
SEQ = "__seq"
AR = "ar"   # the sequence generator: child tables as histories, root tables with gmm
AUTO = "auto"  # the default: ar for child tables with a numeric time column, gmm elsewhere
# A count column with at most this many distinct values is modelled as categorical (its
# distribution is then reproduced exactly up to sampling noise); above, as an integer.
MAX_COUNT_CATEGORIES = 30
MIN_ROWS_PER_CLUSTER = 25
DEFAULT_MAX_ROWS_PER_PATIENT = 10   # child rows per patient used in training under privacy
PUBLIC_MAX_RANK = 1000              # under privacy, rank bins are fixed up to this rank
POOLED_GENERATORS = ("vae",)        # condition by rejection: children come from one pool
POOL_FACTOR = 4                     # pool rows per child row
UNENFORCED_RHO_SHARE = 0.01         # of the run's ρ, per unenforced link (its non-missing share)
PRIVATE_CONTEXT_ROWS = 1000         # synthetic parents the clusters are fitted on under privacy


def count_column(child: str) -> str:
    return f"__n_{child}"


def parent_level_column(child: str, column: str) -> str:
    return f"{child}__{column}"


def _seq_edges(max_rank: int) -> np.ndarray:
    """Log-spaced rank bin edges: 0,1,2,3,5,8,13,... (Fibonacci) covering ``max_rank``."""
    edges = [0, 1, 2, 3]
    while edges[-1] <= max_rank:
        edges.append(edges[-1] + edges[-2])
    return np.array(edges)


@dataclass
class _ContextEncoder:
    """Standardise + one-hot parent columns, then k-means; applied to real and synthetic parents."""

    columns: list[str]
    numeric: list[str] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    categories: dict[str, list[Any]] = field(default_factory=dict)
    model: Any = None

    def fit(self, df: pd.DataFrame, schema: Schema, k: int, seed: int) -> _ContextEncoder:
        from sklearn.cluster import KMeans

        for col in self.columns:
            if schema[col].kind.is_numeric:
                values = pd.to_numeric(df[col], errors="coerce").astype(float)
                self.numeric.append(col)
                self.means[col] = float(values.mean()) if values.notna().any() else 0.0
                std = float(values.std()) if values.notna().sum() > 1 else 1.0
                self.stds[col] = std if std > 0 else 1.0
            else:
                self.categories[col] = sorted(df[col].dropna().astype(str).unique().tolist())
        x = self.features(df)
        k = max(1, min(k, len(df)))
        self.model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
        return self

    def features(self, df: pd.DataFrame) -> np.ndarray:
        parts = []
        for col in self.numeric:
            values = pd.to_numeric(df[col], errors="coerce").astype(float).to_numpy()
            missing = np.isnan(values)
            parts.append(np.where(missing, 0.0, (values - self.means[col]) / self.stds[col]))
            parts.append(missing.astype(float))
        for col, cats in self.categories.items():
            text = df[col].astype(object).where(df[col].notna(), None).map(
                lambda v: None if v is None else str(v))
            for cat in cats:
                parts.append((text == cat).to_numpy(dtype=float))
            parts.append(text.isna().to_numpy(dtype=float))
        if not parts:
            return np.zeros((len(df), 1))
        return np.column_stack(parts)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.model.predict(self.features(df)).astype(np.int64)


@dataclass
class _TablePlan:
    """What is learned for one table."""

    name: str
    schema: Schema                      # the training schema (augmented)
    generator: Any
    link: ForeignKey | None             # link to its parent (None for a root)
    children: list[ForeignKey]
    count_is_categorical: dict[str, bool]
    context: _ContextEncoder | None = None   # for its children: clusters of this table's rows
    seq_edges: np.ndarray | None = None
    n_rows: int = 0
    unenforced: dict[str, float] = field(default_factory=dict)  # column -> non-missing share
    bounds: list[_Bound] = field(default_factory=list)  # rules applied after sampling
    ar_context: list[str] | None = None  # generator "ar": the parent columns it conditions on


@dataclass(frozen=True)
class _Bound:
    """``column`` (a learned child column) is at least (``low``) / at most (not ``low``) ``other``:
    ``("const", number)``, ``("child", column)`` (a parent-level copy) or ``("parent", column)``."""

    column: str
    low: bool
    other: tuple[str, Any]
    strict: bool
    rule: str


class RelationalSynthesizer:
    """Fit linked tables and sample a synthetic copy with consistent keys.

    Parameters
    ----------
    schema
        The :class:`MultiTableSchema` (tables, keys, links, time columns).
    generator
        ``"auto"`` (default): a child table whose link has a numeric time column
        (``order_by``), or whose parent is itself modelled as histories, is one history per
        parent with the sequence generator ``"ar"``; every other table uses gmm, and so does
        every table under ``privacy`` (patient-level DP is DP-EM). Measured on pbc/pbcseq and
        nafld: see docs/sequence.md (whole-patient detection AUC ar vs gmm). Or one name for
        every table: ``"gmm"``, ``"vae"`` or ``"ctgan"``; or ``"ar"``: every child table is one
        history per parent (:mod:`synthdata.models.sequence`, conditioned on the parent's row;
        ``generator_params`` go to it), root tables use gmm.
    generator_params
        Keyword parameters for every table's generator (``seed`` is set here).
    table_params
        ``{table: {param: value}}`` overriding ``generator_params`` for one table.
    n_context_clusters
        At most this many parent clusters condition the children (fewer when the parent
        table is small: at least 25 parents with children per cluster).
    seed
        One seed for everything (per-table generators, clustering, sampling).
    privacy
        A :class:`~synthdata.privacy.config.DPConfig`: differential privacy for one patient
        (see "Patient-level privacy" in the module docstring); gmm or aim generator (all zCDP).
    discover_rules
        Without privacy, also enforce the within-patient rules that hold on every real
        patient (:func:`synthdata.constraints.discover.discover_history`; listed in
        ``discovered_``). Under privacy discovery never runs: only declared rules apply.

    Examples
    --------
    >>> ms = MultiTableSchema.load("schemas/pbc.yaml")                   # doctest: +SKIP
    >>> synth = RelationalSynthesizer(ms, seed=0).fit(tables).sample()  # doctest: +SKIP
    """

    def __init__(self, schema: MultiTableSchema, *, generator: str = AUTO,
                 generator_params: Mapping[str, Any] | None = None,
                 table_params: Mapping[str, Mapping[str, Any]] | None = None,
                 n_context_clusters: int = 8, seed: int | None = 0, privacy: Any = None,
                 discover_rules: bool = True) -> None:
        self.schema, self.generator = schema, generator
        self.privacy, self.discover_rules = privacy, discover_rules
        self.generator_params, self.table_params = generator_params, table_params
        self.n_context_clusters, self.seed = n_context_clusters, seed

    # -- fit ------------------------------------------------------------------------------
    def _validate_params(self) -> None:
        if not isinstance(self.schema, MultiTableSchema):
            raise ConfigError(f"schema must be a MultiTableSchema, got {type(self.schema).__name__}")
        if isinstance(self.n_context_clusters, bool) or not isinstance(self.n_context_clusters, int) \
                or self.n_context_clusters < 1:
            raise ConfigError(f"n_context_clusters must be a positive integer, got "
                              f"{self.n_context_clusters!r}")
        unknown = sorted(set(self.table_params or {}) - set(self.schema.tables))
        if unknown:
            raise ConfigError(f"table_params names unknown table(s) {unknown}; tables are "
                              f"{list(self.schema.tables)}")
        if self.generator == AUTO and self.generator_params and \
                len({self.table_generator(t) for t in self.schema.tables}) > 1:
            raise ConfigError(
                f"generator 'auto' picks the generator per table ({self._kinds_text()}), so "
                "generator parameters would be ambiguous; name the generator kind ('ar' or "
                "'gmm') to pass parameters, or use table_params")
        for params in [self.generator_params or {}, *(self.table_params or {}).values()]:
            if "seed" in params:
                raise ConfigError("set the seed on RelationalSynthesizer(seed=...), not in the "
                                  "generator parameters")

    def fit(self, tables: Mapping[str, pd.DataFrame], *, ledger: Any = None) -> Self:
        """Learn every table (parents before children); returns self.

        With ``privacy=`` the fit is differentially private for one *patient* (a root row with
        all its linked rows), charged to ``ledger`` (default: a new patient-level ledger for
        the number of root rows): see "Patient-level privacy" in the module docstring.
        """
        from synthdata.models.registry import make_generator

        self._validate_params()
        ms = self.schema
        private = self.privacy is not None
        # composite links: one surrogate key column each while fitting (keys checked here);
        # sample() gives the declared columns back when fit() got them
        packed = ms.pack_keys(tables)
        self.unpack_output_ = any(packed[t] is not tables[t] for t in tables)
        tables = packed
        if private:  # every row must belong to one patient, through one chain of links
            patient_root(ms)
            check_patient_rows(ms, tables)
        # declared rules the real data may break (on_real_violation: drop|repair), then refuse
        # any other broken rule; under DP each patient's rows are dropped or fixed by their own
        # values only, so the neighbouring relation is unchanged
        ms.check_keys(tables)
        tables, self.real_violations_ = ms.apply_real_violation_policy(tables)
        ms.validate(tables)
        tables = {t: df.reset_index(drop=True) for t, df in tables.items()}
        self.discovered_: dict[str, list[Any]] = {}
        self.discovered_links_: list[Any] = []
        if self.discover_rules and not private:  # discovery reads the real rows: never under DP
            from synthdata.constraints.discover import discover_history

            self.discovered_, self.discovered_links_ = discover_history(tables, ms)
        rng = make_rng(self.seed)
        self.plans_: dict[str, _TablePlan] = {}
        self.seq_edges_: dict[str, np.ndarray] = {}
        self.order_ = ms.order()
        if private:
            self._threshold_tables = self._tables_needing_thresholds()
        self.ledger_ = self._patient_ledger(ledger, tables) if private else ledger
        ranks, capped = self._ranks_and_caps(tables)
        per_table_rho = self._table_rho() if private else 0.0
        contexts: dict[str, pd.DataFrame] = {}   # child table -> its training rows' extra columns
        for tname in self.order_:
            df = capped.get(tname, tables[tname])
            link = ms.parent_link(tname)
            children = ms.children_of(tname)
            train, train_schema, count_cat = self._training_frame(tname, df, tables, link, children)
            if link is not None and self.table_generator(tname) == AR:
                # a history per parent: fitted here, conditioned on the parent's training row
                plan = self._fit_sequences(tname, df, train, train_schema, link, children,
                                           count_cat, contexts[tname], rng)
                for fk in children:
                    contexts[fk.child] = (plan, train, df)
                self.plans_[tname] = plan
                continue
            if link is not None:
                extra = contexts[tname]
                train = pd.concat([train.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)
                train_schema = train_schema.replace_columns(
                    [*train_schema.columns, *self._context_columns(tname)])
            if private:
                self._check_public_categories(tname, train_schema)
            params = {**(self.generator_params or {}), **(self.table_params or {}).get(tname, {})}
            kind = self.generator
            if kind in (AR, AUTO):  # root tables (one row per patient) and tables without
                # a time column: the gmm baseline (own params only)
                kind, params = "gmm", dict((self.table_params or {}).get(tname, {}))
            if kind == "gmm":
                # measured on pbc: one-hot categorical components keep the children-per-parent
                # distribution closer (TV 0.07 vs 0.12-0.13 with the copula scores)
                params.setdefault("discrete", "onehot")
            if private:
                params["privacy"] = self.privacy
            gen = make_generator(kind, train_schema, seed=child_seed(rng), **params)
            plan = _TablePlan(name=tname, schema=train_schema, generator=gen, link=link,
                              children=children, count_is_categorical=count_cat,
                              n_rows=self._public_size(tname, df))
            for fk in ms.foreign_keys:
                if fk.child == tname and not fk.enforce:
                    plan.unenforced[fk.column] = self._non_missing_share(tname, fk.column, df, rng)
            plan.bounds = self._bounds_of(tname, train_schema)
            for rule in self.discovered_links_:  # child.order <= parent.column, found on real data
                if link is not None and rule.low == f"{tname}.{link.order_by}":
                    plan.bounds.append(_Bound(link.order_by, False,
                                              ("parent", rule.high.split(".", 1)[1]), False,
                                              rule.describe()))
            table_ledger = self._table_ledger(tname, link, per_table_rho) if private else None
            if children and not private and any(self.table_generator(fk.child) != AR for fk in children):
                plan.context = self._fit_context(tname, train, train_schema, children, rng)
            log.info("fitting %s on %d rows x %d columns", tname, len(train), train.shape[1])
            gen.fit(train, ledger=table_ledger)
            if children and private:
                # clusters of *synthetic* parents (post-processing of a private fit), then each
                # real parent is assigned to its nearest cluster: a per-patient feature. The
                # reference size is fixed (the real row count is not public).
                reference = gen.sample(PRIVATE_CONTEXT_ROWS, seed=child_seed(rng))
                plan.context = self._fit_context(tname, reference, train_schema, children, rng)
                self.ledger_.record_public(f"{tname}.context", reason="parent clusters fitted on "
                                           "synthetic parents (post-processing)")
            for fk in children:
                contexts[fk.child] = (plan, train, df) if self.table_generator(fk.child) == AR else \
                    self._child_context(fk, plan, train, df, capped.get(fk.child, tables[fk.child]),
                                        ranks[fk.child])
            self.plans_[tname] = plan
        self.sample_seed_ = int(rng.integers(0, 2**63 - 1))
        self._sample_rng = np.random.default_rng(self.sample_seed_)
        return self

    def _kinds_text(self) -> str:
        return ", ".join(f"{t}: {self.table_generator(t)}" for t in self.schema.tables)

    def table_generator(self, tname: str) -> str:
        """The generator of table ``tname``: ``"ar"`` (histories) or the name given (``"auto"``
        resolves to ``"ar"`` or ``"gmm"``; see the class docstring)."""
        if self.generator != AUTO:
            return self.generator
        if self.privacy is not None:
            return "gmm"
        link = self.schema.parent_link(tname)
        if link is None:
            return "gmm"
        if self.table_generator(link.parent) == AR:   # a child of a history: histories too
            return AR
        col = link.order_by
        child = self.schema.tables[tname]
        return AR if col is not None and col in child and child[col].kind in (
            ColumnKind.INTEGER, ColumnKind.CONTINUOUS) else "gmm"

    # -- patient-level privacy ----------------------------------------------------------------
    @property
    def max_rows_per_patient(self) -> int:
        cap = None if self.privacy is None else self.privacy.max_rows_per_unit
        return DEFAULT_MAX_ROWS_PER_PATIENT if cap is None else int(cap)

    def _patient_ledger(self, ledger: Any, tables: Mapping[str, pd.DataFrame]) -> Any:

        if self.generator == AR:
            raise ConfigError(
                "patient-level privacy for linked tables is not available with the sequence "
                "generator 'ar' (its DP-SGD would need one clipped gradient per patient through "
                "the recurrent network, not implemented); use generator 'gmm' (DP-EM, charged "
                "per patient) or run without privacy")
        if self.generator not in ("gmm", "aim", AUTO):
            raise ConfigError(
                f"patient-level privacy for linked tables needs the gmm or aim generator (DP-EM "
                f"or noisy marginals, whose zCDP cost for a patient with several rows is exact); "
                f"{self.generator!r} trains with DP-SGD, which would need per-patient gradient "
                "clipping (not available)")
        from synthdata.privacy.group import remaining_rho

        roots = [t for t in self.order_ if self.schema.parent_link(t) is None]
        if ledger is None:  # n is not public: one DP count of the patients (data.count)
            from synthdata.privacy.count import dp_unit_count

            cfg = self.privacy.model_copy(update={"unit": "patient"})
            ledger, _ = dp_unit_count(sum(len(tables[t]) for t in roots), cfg,
                                      what="training patients")
        if not ledger.is_private:
            raise ConfigError("privacy= is set but the ledger has no budget")
        # category thresholds (learned combinations of a fixed-combination rule on the root
        # table) spend δ, which leaves less δ to convert the run's ρ into ε: hold it back
        # before the ρ is shared out, or the last fits overrun whatever the ε
        self._threshold_delta = (ledger.delta * self.privacy.threshold_delta_share
                                 if self._threshold_tables else 0.0)
        self._rho_total = remaining_rho(ledger, reserve_delta=self._threshold_delta) * (1 - 1e-6)
        if not self._rho_total > 0:
            raise ConfigError("the privacy ledger has no budget left for the relational fit")
        return ledger

    def _public_size(self, tname: str, df: pd.DataFrame) -> int:
        """The default number of rows to sample for a root table: its size, or under
        privacy the DP count of the patients on the ledger (0 when the ledger has none:
        ``sample`` then needs ``n``). Never the exact count under DP."""
        if self.privacy is None:
            return len(df)
        from synthdata.privacy.count import released_count

        roots = [t for t in self.order_ if self.schema.parent_link(t) is None]
        noisy = released_count(self.ledger_)
        return int(noisy) if noisy is not None and roots == [tname] else 0

    def _tables_needing_thresholds(self) -> list[str]:
        """Tables whose generator must discover categories with a δ (thresholds): the merged
        column of a fixed-combination (or one-hot) rule without declared combinations. Only the
        root table may (one row per patient); elsewhere the rule is refused (``ConfigError``)."""
        from synthdata.constraints.kinds import FixedCombinations, OneHot

        out = []
        for tname in self.order_:
            schema = self.schema.tables[tname]
            for rule in schema.constraints:
                learned = (isinstance(rule, FixedCombinations) and rule.combinations is None) \
                    or isinstance(rule, OneHot)
                if not learned or not all(c in schema and schema[c].kind.is_discrete
                                          for c in rule.column_names):
                    continue
                if self._group_size(tname) > 1:
                    raise ConfigError(
                        f"patient-level privacy: table {tname!r} constraint "
                        f"{rule.describe()!r} learns its allowed combinations from the rows (a "
                        "thresholded DP histogram, which costs a δ that has no tight bound for a "
                        f"patient with up to {self._group_size(tname)} rows of {tname!r}); "
                        "declare them in the rule (combinations: [[...], ...], public "
                        "knowledge) or remove the rule")
                if tname not in out:
                    out.append(tname)
        return out

    def _table_rho(self) -> float:
        """Equal shares of the run's ρ per table (after the unenforced-link shares)."""
        n_unenforced = sum(1 for fk in self.schema.foreign_keys if not fk.enforce)
        misc = UNENFORCED_RHO_SHARE * n_unenforced
        self._unenforced_rho = self._rho_total * UNENFORCED_RHO_SHARE
        return self._rho_total * (1 - misc) / len(self.order_)

    def _table_ledger(self, tname: str, link: ForeignKey | None, rho: float) -> Any:
        """The ledger a table's generator sees: its row-level plan, charged per patient.

        A root row is the patient itself (k = 1); every descendant table holds at most
        k = :meth:`_group_size` rows of one patient after the cap, whatever its depth."""
        from synthdata.privacy.group import GroupLedger, planning_delta, planning_epsilon

        k = self._group_size(tname)
        share = self.privacy.preprocessing_share
        thresholds = self._threshold_delta / len(self._threshold_tables) \
            if tname in self._threshold_tables else 0.0
        # plan with the δ whose threshold part is this table's allotment (planning only)
        delta = planning_delta(thresholds, share) if thresholds else self.ledger_.delta
        eps = planning_epsilon(rho / (k * k), delta, share)
        return GroupLedger(self.ledger_, tname, k, eps, delta, rho_budget=rho,
                           delta_budget=thresholds)

    def _group_size(self, tname: str) -> int:
        """The most rows one patient has in ``tname``'s training data: 1 for the root; the cap
        for a descendant table, or less where the schema itself bounds it (a table whose
        primary key is its link column has at most one row per parent row). Always a public
        bound, never the largest count seen in the data (that would depend on the patients)."""
        link = self.schema.parent_link(tname)
        if link is None:
            return 1
        if tuple(self.schema.primary_keys.get(tname, ())) == (link.column,):
            return min(self.max_rows_per_patient, self._group_size(link.parent))
        return self.max_rows_per_patient

    def _ranks_and_caps(self, tables: Mapping[str, pd.DataFrame]
                        ) -> tuple[dict[str, np.ndarray], dict[str, pd.DataFrame]]:
        """Each child row's rank in time within its parent; under privacy, the capped tables:
        at most ``max_rows_per_patient`` random rows per *patient* (root row) in every
        descendant table (:func:`cap_per_patient`; ranks kept from the full table). The
        random choice is part of the DP mechanism: it comes from OS entropy, never the seed."""
        ranks, capped = {}, {}
        for fk in self.schema.foreign_keys:
            if not fk.enforce or fk.child == fk.parent:
                continue
            child = tables[fk.child]
            order = [fk.column, fk.order_by] if fk.order_by else [fk.column]
            rank = child.sort_values(order, kind="stable").groupby(fk.column, sort=False).cumcount()
            ranks[fk.child] = rank.reindex(child.index).to_numpy()
        if self.privacy is None:
            return ranks, capped
        from synthdata.privacy.noise import secure_rng

        k = self.max_rows_per_patient
        root = patient_root(self.schema)
        for tname, keep in cap_per_patient(self.schema, tables, k, secure_rng()).items():
            capped[tname] = tables[tname].loc[keep].reset_index(drop=True)
            ranks[tname] = ranks[tname][keep]
            group = self._group_size(tname)
            self.ledger_.record_public(
                f"{tname}.cap", reason=f"at most {k} random row(s) per patient (a row of "
                f"{root!r}, counted through every link) used in training, chosen with OS "
                f"entropy; the fit of {tname!r} is charged for a group of {group} row(s)"
                + ("" if group == k else " (its primary key is its link: one row per parent)"))
        return ranks, capped

    def _context_columns(self, tname: str) -> list[Column]:
        if self.privacy is None:
            return [Column(CTX, ColumnKind.CATEGORICAL, dtype="int64"),
                    Column(SEQ, ColumnKind.CATEGORICAL, dtype="int64")]
        link = self.schema.parent_link(tname)
        assert link is not None
        n_ctx = self.n_context_clusters
        return [Column(CTX, ColumnKind.CATEGORICAL, dtype="int64", categories=tuple(range(n_ctx)),
                       public=True),
                Column(SEQ, ColumnKind.CATEGORICAL, dtype="int64",
                       categories=tuple(range(len(_seq_edges(PUBLIC_MAX_RANK)))), public=True)]

    def _check_public_categories(self, tname: str, schema: Schema) -> None:
        bad = [c.name for c in schema.columns
               if c.kind.is_discrete and not (c.public and c.categories)]
        if bad:
            raise ConfigError(
                f"patient-level privacy: table {tname!r} column(s) {bad} have no public category "
                "list; declare `categories: [...]` with `public: true` in the schema (coding "
                "schemes are public knowledge), or drop the columns")

    def _non_missing_share(self, tname: str, column: str, df: pd.DataFrame,
                           rng: np.random.Generator) -> float:
        """Share of rows with a value in an unenforced link column (a noisy count under DP)."""
        count = float(df[column].notna().sum())
        if self.privacy is not None:
            from synthdata.privacy.mechanisms import gaussian_mechanism

            count = float(gaussian_mechanism(count, 1.0, self._unenforced_rho, self.ledger_,
                                             f"{tname}.{column}.non_missing_count"))
        return float(np.clip(count / max(len(df), 1), 0.0, 1.0))

    def _training_frame(self, tname: str, df: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                        link: ForeignKey | None, children: list[ForeignKey]
                        ) -> tuple[pd.DataFrame, Schema, dict[str, bool]]:
        ms = self.schema
        schema = ms.tables[tname]
        drop = set(ms.primary_keys.get(tname, ())) - ({link.order_by} if link else set())
        if link is not None:
            drop |= {link.column, *link.parent_level}
        keep = [c for c in schema.columns if c.name not in drop]
        train = df[[c.name for c in keep]].copy()
        columns = list(keep)
        count_cat: dict[str, bool] = {}
        pk = ms.primary_keys[tname][0] if children else None
        for fk in children:
            child = tables[fk.child]
            counts = child.groupby(fk.column, sort=False).size().reindex(df[pk].to_numpy(), fill_value=0)
            name = count_column(fk.child)
            train[name] = counts.to_numpy().astype("int64")
            # under privacy a count is always an integer column (its range is learned with DP;
            # a category list would have to be public)
            is_cat = self.privacy is None and counts.nunique() <= MAX_COUNT_CATEGORIES
            count_cat[fk.child] = is_cat
            if self.privacy is None:
                columns.append(Column(name, ColumnKind.CATEGORICAL if is_cat else ColumnKind.INTEGER,
                                      dtype="int64", min=None if is_cat else 0.0))
            elif self.max_rows_per_patient <= MAX_COUNT_CATEGORIES:
                # the cap k is public, so the categories 0..k are too: a DP histogram of the
                # counts (an integer column's DP quantiles were too coarse: some runs sampled
                # no child row at all)
                count_cat[fk.child] = True
                columns.append(Column(name, ColumnKind.CATEGORICAL, dtype="int64",
                                      categories=tuple(range(self.max_rows_per_patient + 1)),
                                      public=True))
            else:  # the cap k is a public bound: no DP range estimate (it could explode)
                columns.append(Column(name, ColumnKind.INTEGER, dtype="int64", min=0.0,
                                      max=float(self.max_rows_per_patient), public=True))
            if fk.parent_level:
                ordered = child.sort_values([fk.column, fk.order_by] if fk.order_by else [fk.column],
                                            kind="stable")
                first = ordered.drop_duplicates(fk.column).set_index(fk.column)
                cschema = ms.tables[fk.child]
                for col in fk.parent_level:
                    name = parent_level_column(fk.child, col)
                    train[name] = first[col].reindex(df[pk].to_numpy()).to_numpy()
                    src = cschema[col]
                    columns.append(Column(name, src.kind, dtype=src.dtype, nullable=True,
                                          categories=src.categories, min=src.min, max=src.max,
                                          datetime_format=src.datetime_format, public=src.public))
        # the table's own rules over learned columns go to its generator; the others are bounds
        train_schema = dataclasses.replace(schema, primary_key=None).replace_columns(columns)
        return train, train_schema, count_cat

    def _bounds_of(self, tname: str, train_schema: Schema) -> list[_Bound]:
        """The declared rules ``tname``'s generator does not enforce, as bounds on its columns."""
        ms = self.schema
        link = ms.parent_link(tname)
        kept = {r.describe() for r in train_schema.constraints}
        learned = {c.name for c in train_schema.columns} - {CTX, SEQ}
        if link is not None:
            learned -= set(link.parent_level)
        rules = [(r, None) for r in ms.tables[tname].constraints if r.describe() not in kept
                 and not isinstance(r, HistoryRule)]
        rules += [(r, link) for r in ms.constraints if ms.link_rule_table(r) == tname
                  and not isinstance(r, HistoryRule)]

        def where(name: str, qualified: bool) -> tuple[str, str] | None:
            if qualified:
                table, _, name = name.partition(".")
                if table != tname:
                    return ("parent", name)
            return ("learned", name) if name in learned else ("child", name)

        out: list[_Bound] = []
        for rule, qual in rules:
            label = rule.describe()
            if isinstance(rule, Inequality):
                a, b = where(rule.low, qual is not None), where(rule.high, qual is not None)
                pairs = [(a, False, b), (b, True, a)]  # (target, is-low-bound, other)
            elif isinstance(rule, Range):
                x = where(rule.column, qual is not None)
                pairs = []
                for end, is_low in (("low", True), ("high", False)):
                    value = getattr(rule, end)
                    if value is None:
                        continue
                    is_col = isinstance(value, str) and (
                        (qual is not None and "." in value) or value in ms.tables[tname])
                    other = where(value, qual is not None) if is_col else ("const", value)
                    pairs.append((x, is_low, other))
            else:
                raise ConfigError(f"table {tname!r}: constraint {label!r} names a column the "
                                  "child generator does not learn (a key or parent-level column); "
                                  "only inequality/range rules can bound a child by its parent")
            targets = [(t, lo, o) for t, lo, o in pairs if t[0] == "learned" and o[0] != "learned"]
            if not targets:
                raise ConfigError(f"table {tname!r}: constraint {label!r} bounds no column the "
                                  "child generator learns; declare it on the parent table")
            for (_, col), is_low, other in targets:
                if ms.tables[tname][col].kind not in (ColumnKind.CONTINUOUS, ColumnKind.INTEGER):
                    raise ConfigError(f"table {tname!r}: constraint {label!r} bounds the "
                                      f"{ms.tables[tname][col].kind.value} column {col!r}; rules "
                                      "across a link are applied to numeric columns only")
                out.append(_Bound(col, is_low, (other[0], other[1]), rule.strict, label))
        return out

    def _fit_context(self, tname: str, train: pd.DataFrame, schema: Schema,
                     children: list[ForeignKey], rng: np.random.Generator) -> _ContextEncoder:
        wanted: list[str] | None = None
        for fk in children:
            if fk.context is not None:
                wanted = sorted(set(wanted or []) | set(fk.context))
        if wanted is None:
            wanted = [c.name for c in schema.columns if c.kind.is_learned and c.name not in (CTX, SEQ)]
        unusable = [c for c in wanted if c not in schema]
        if unusable:
            raise ConfigError(f"context column(s) {unusable} of table {tname!r} are keys or not "
                              f"modelled; choose among {schema.names}")
        has_children = np.zeros(len(train), dtype=bool)
        for fk in children:
            has_children |= train[count_column(fk.child)].to_numpy() > 0
        fit_rows = train.loc[has_children] if has_children.any() else train
        k = min(self.n_context_clusters, max(1, len(fit_rows) // MIN_ROWS_PER_CLUSTER))
        return _ContextEncoder(columns=wanted).fit(fit_rows, schema, k, child_seed(rng))

    def _child_context(self, fk: ForeignKey, plan: _TablePlan, parent_train: pd.DataFrame,
                       parent_df: pd.DataFrame, child: pd.DataFrame, rank: np.ndarray) -> pd.DataFrame:
        """``__ctx`` and ``__seq`` for each real child row (in the child's row order)."""
        assert plan.context is not None
        clusters = pd.Series(plan.context.predict(parent_train),
                             index=parent_df[fk.parent_column].to_numpy())
        max_rank = PUBLIC_MAX_RANK if self.privacy is not None else int(rank.max()) if len(rank) else 0
        edges = _seq_edges(max_rank)
        self.seq_edges_[fk.child] = edges
        seq = np.minimum(np.searchsorted(edges, rank, side="right") - 1, len(edges) - 1)
        return pd.DataFrame({CTX: clusters.reindex(child[fk.column].to_numpy()).to_numpy().astype("int64"),
                             SEQ: seq.astype("int64")})

    # -- sample -----------------------------------------------------------------------------
    def check_is_fitted(self) -> None:
        if not hasattr(self, "plans_"):
            raise NotFittedError("this RelationalSynthesizer is not fitted; call fit() first")

    def sample(self, n: int | None = None, *, seed: int | None = None) -> dict[str, pd.DataFrame]:
        """Sample all tables: ``n`` root rows (default: as many as in training).

        ``sample()`` continues one random stream; ``sample(seed=s)`` is reproducible.
        ``fixes_`` then counts the repairs this call made (times clipped to their bounds,
        parent-level values filled, rows dropped for lack of room), for the report.
        """
        self.check_is_fitted()
        roots = [t for t in self.order_ if self.plans_[t].link is None]
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0):
            raise ConfigError(f"number of parent rows to sample must be a positive integer, got {n!r}")
        if n is not None and len(roots) > 1:
            raise ConfigError(f"n applies to a single root table; this schema has {roots}: "
                              "call sample() without n to get the training sizes")
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        self.fixes_: dict[str, int] = {}
        out: dict[str, pd.DataFrame] = {}
        augmented: dict[str, pd.DataFrame] = {}
        for tname in self.order_:
            plan = self.plans_[tname]
            if plan.link is None:
                n_rows = plan.n_rows if n is None else int(n)
                if n_rows <= 0:
                    raise ConfigError(
                        f"under privacy the number of rows of {tname!r} is not public and the "
                        "ledger holds no DP count of the patients: pass n to sample()")
                synth = plan.generator.sample(n_rows, seed=child_seed(rng))
            else:
                parent_aug = augmented[plan.link.parent]
                synth = self._sample_children(plan, parent_aug, out[plan.link.parent], rng)
            synth = self._finish_table(plan, synth, rng)
            augmented[tname] = synth
            out[tname] = self._output_columns(tname, synth, out, rng)
        report = self.schema.check(out)
        self.violations_ = self.schema.constraint_violations(out)
        self.discovered_violations_ = discovered_violations(self.schema, out, self.discovered_,
                                                           self.discovered_links_)
        if not report.is_ok:  # a bug, not a user error: say so plainly
            raise DataError("synthetic tables fail referential integrity (please report this): "
                            + "; ".join(report.problems))
        return self.schema.unpack_keys(out) if getattr(self, "unpack_output_", False) else out

    def _finish_table(self, plan: _TablePlan, synth: pd.DataFrame,
                      rng: np.random.Generator) -> pd.DataFrame:
        """Regenerate the key, clean counts, fix parent-level values of parents with children."""
        ms = self.schema
        synth = synth.reset_index(drop=True)
        pk = ms.primary_keys.get(plan.name, ())
        if len(pk) == 1:
            synth[pk[0]] = _new_keys(len(synth), ms.tables[plan.name][pk[0]].dtype)
        spec = ms.survival.get(plan.name)
        if spec is not None:  # no negative survival times
            low = ms.tables[plan.name][spec.time].min
            low = 0.0 if low is None else max(0.0, low)
            times = pd.to_numeric(synth[spec.time], errors="coerce")
            n_neg = int((times < low).sum())
            if n_neg:
                self.fixes_[f"{plan.name}.{spec.time}<{low:g}"] = n_neg
                synth[spec.time] = times.clip(lower=low).astype(synth[spec.time].dtype)
        for fk in plan.children:
            name = count_column(fk.child)
            counts = pd.to_numeric(synth[name], errors="coerce").fillna(0).round().clip(lower=0)
            synth[name] = counts.astype("int64")
            has = synth[name].to_numpy() > 0
            for col in fk.parent_level:
                pl = parent_level_column(fk.child, col)
                missing = has & synth[pl].isna().to_numpy()
                donors = np.flatnonzero(has & synth[pl].notna().to_numpy())
                if missing.any() and donors.size:
                    # parent-level values must exist for parents with children: borrow them from
                    # another synthetic parent with children (never from real data)
                    pick = rng.choice(donors, size=int(missing.sum()))
                    synth.loc[missing, pl] = synth[pl].to_numpy()[pick]
                    self.fixes_[f"{plan.name}.{pl} filled"] = int(missing.sum())
        return synth

    def _sample_children(self, plan: _TablePlan, parent_aug: pd.DataFrame, parent_out: pd.DataFrame,
                         rng: np.random.Generator) -> pd.DataFrame:
        fk = plan.link
        assert fk is not None
        pplan = self.plans_[fk.parent]
        if plan.ar_context is not None:
            return self._sample_histories(plan, parent_aug, parent_out, rng)
        counts = np.maximum(parent_aug[count_column(plan.name)].to_numpy().astype(np.int64), 0)
        if self.privacy is not None:  # no patient had more than k rows in training
            counts = np.minimum(counts, self.max_rows_per_patient)
        total = int(counts.sum())
        if total == 0:
            return self._no_children(plan)
        parent_idx = np.repeat(np.arange(len(counts)), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        rank = np.arange(total) - starts
        edges = self.seq_edges_[plan.name]
        seq = np.searchsorted(edges, rank, side="right") - 1
        known_seq = set(plan.generator.transformer_.encoder(SEQ).categories_)
        seq = np.minimum(seq, max(known_seq))
        assert pplan.context is not None
        ctx = pplan.context.predict(parent_aug)[parent_idx]
        slots = pd.DataFrame({"ctx": ctx, "seq": seq, "slot": np.arange(total)})
        if getattr(plan.generator, "name", "") in POOLED_GENERATORS:
            synth = self._sample_pooled(plan, slots, rng).drop(columns=[CTX, SEQ])
        else:
            pieces, slot_order = [], []
            known_ctx = set(plan.generator.transformer_.encoder(CTX).categories_)
            for (c, s), group in slots.groupby(["ctx", "seq"], sort=True):
                cond = {CTX: int(c), SEQ: int(s) if int(s) in known_seq else max(known_seq)}
                if int(c) not in known_ctx:  # no real parent of this cluster had such children
                    del cond[CTX]
                    label = f"{plan.name} rows sampled without their {CTX} condition (unseen)"
                    self.fixes_[label] = self.fixes_.get(label, 0) + len(group)
                pieces.append(self._sample_conditioned(plan, len(group), cond, rng))
                slot_order.append(group["slot"].to_numpy())
            synth = pd.concat(pieces, ignore_index=True)
            synth.index = np.concatenate(slot_order)
            synth = synth.sort_index().reset_index(drop=True).drop(columns=[CTX, SEQ])
        return self._attach_to_parents(plan, fk, synth, parent_out, parent_aug, parent_idx)

    def _no_children(self, plan: _TablePlan) -> pd.DataFrame:
        """An empty child table that still has every column its own children are sampled from
        (``__n_<grandchild>``, parent-level copies): a DP count or a small sample can give a
        table no rows at all, and the next level must then get no rows, not a KeyError."""
        names = [*self.schema.tables[plan.name].names, *plan.schema.names]
        return pd.DataFrame(columns=list(dict.fromkeys(names)))

    def _attach_to_parents(self, plan: _TablePlan, fk: Any, synth: pd.DataFrame,
                           parent_out: pd.DataFrame, parent_aug: pd.DataFrame,
                           parent_idx: np.ndarray) -> pd.DataFrame:
        """Give each sampled child row its parent's key (and parent-level columns), then put
        every history in time order and make its within-patient rules hold."""
        synth[fk.column] = parent_out[fk.parent_column].to_numpy()[parent_idx]
        for col in fk.parent_level:
            synth[col] = parent_aug[parent_level_column(plan.name, col)].to_numpy()[parent_idx]
        synth = self._order_in_time(plan, synth, parent_out, parent_idx)
        return self._apply_history(plan, synth, parent_out)

    def _apply_history(self, plan: _TablePlan, synth: pd.DataFrame,
                       parent_out: pd.DataFrame) -> pd.DataFrame:
        """Make every within-patient rule of this child table hold on the whole histories:
        running maxima (monotone), recomputed columns (time_derived) and flags
        (event_consistency), the ``then`` value (conditional). Rules are applied in declared
        order, repeated while one's fix breaks another (at most 5 passes); a conditional
        without a unique fix drops its breaking rows. Every fix is counted in ``fixes_``."""
        ms = self.schema
        schema = ms.tables[plan.name]
        own = [r for r in schema.constraints if isinstance(r, HistoryRule)]
        own += list(self.discovered_.get(plan.name, ()))
        link_rules = [r for r in ms.constraints if isinstance(r, HistoryRule)
                      and ms.link_rule_table(r) == plan.name]
        if not own and not link_rules:
            return synth
        joined = ms.joined_schema(plan.name) if link_rules else None
        fk = plan.link
        assert fk is not None
        for _ in range(5):
            changed = 0
            for rule in own:
                synth, n = self._fix(plan.name, rule, synth, schema)
                changed += n
            if link_rules:
                parent = parent_out.drop_duplicates(fk.parent_column)
                view = ms.joined_view({plan.name: synth, fk.parent: parent}, plan.name)
                prefix = f"{plan.name}."
                for rule in link_rules:
                    view, n = self._fix(plan.name, rule, view, joined)
                    changed += n
                keep = view.columns[view.columns.str.startswith(prefix)]
                synth = view[keep].rename(columns=lambda c: c[len(prefix):]).reset_index(drop=True)
            if not changed:
                break
        return synth

    def _fix(self, tname: str, rule: HistoryRule, df: pd.DataFrame, schema: Schema
             ) -> tuple[pd.DataFrame, int]:
        if rule.can_repair:
            df, n = rule.repair(df, schema)
            if n:
                label = f"{tname}: {rule.describe()} (repaired)"
                self.fixes_[label] = self.fixes_.get(label, 0) + n
            return df, n
        bad = rule.violations(df, schema)
        if bad.any():
            label = f"{tname}: {rule.describe()} (rows dropped)"
            self.fixes_[label] = self.fixes_.get(label, 0) + int(bad.sum())
            df = df.loc[~bad].reset_index(drop=True)
        return df, int(bad.sum())

    # -- generator "ar": one history per parent ------------------------------------------------
    def _fit_sequences(self, tname: str, df: pd.DataFrame, train: pd.DataFrame,
                       train_schema: Schema, link: ForeignKey, children: list[ForeignKey],
                       count_cat: dict[str, bool], parent: tuple, rng: np.random.Generator
                       ) -> _TablePlan:
        """Fit the sequence generator on the child rows, grouped by parent and ordered in
        time, each history conditioned on its parent's training row: its learned columns, the
        parent-level copies and the child counts. The number of rows of a synthetic history
        is the count sampled with its parent row (the parent model learns it jointly with the
        parent's columns: children-per-parent TV 0.065 vs 0.086-0.103 with the model's own
        end-of-history step on pbc), so the model is told the length it has to fill."""
        from synthdata.models.registry import make_generator

        pplan, parent_train, parent_df = parent
        ctx_cols = [c.name for c in pplan.schema.columns]
        ctx_schema = dataclasses.replace(pplan.schema.replace_columns(
            [pplan.schema[c] for c in ctx_cols]), constraints=(), proposed_constraints=(),
            primary_key=None)
        keys = pd.Index(parent_df[link.parent_column].to_numpy())
        pos = keys.get_indexer(df[link.column].to_numpy())
        has_parent = pos >= 0
        if not has_parent.all():
            log.info("%s: %d row(s) without a parent row left out of the histories", tname,
                     int((~has_parent).sum()))
        time_key = (pd.to_numeric(df[link.order_by], errors="coerce").to_numpy(dtype=float)
                    if link.order_by is not None and train_schema[link.order_by].kind.is_numeric
                    else np.zeros(len(df)))
        rows = np.flatnonzero(has_parent)
        rows = rows[np.lexsort((time_key[rows], pos[rows]))]
        order_col = link.order_by if link.order_by in train_schema and \
            train_schema[link.order_by].kind in (ColumnKind.INTEGER, ColumnKind.CONTINUOUS) else None
        params = {**(self.generator_params or {}), **(self.table_params or {}).get(tname, {})}
        params.setdefault("order_column", order_col)
        gen = make_generator(AR, train_schema, seed=child_seed(rng), **params)
        groups = pos[rows]
        first = np.r_[True, groups[1:] != groups[:-1]]
        context = parent_train.iloc[groups[first]][ctx_cols].reset_index(drop=True)
        bounds = self._bounds_of(tname, train_schema)
        # each training history's time limit (``day <= futime``: its parent's futime), as
        # sampling gives it: the model learns the gaps given the time left
        limit = self._limit_of(tname, link, bounds, parent_train.iloc[groups[first]],
                               parent_df.iloc[groups[first]])
        log.info("fitting %s as %d histories (%d rows)", tname, int(first.sum()), len(rows))
        gen.fit(train.iloc[rows].reset_index(drop=True), groups=groups, context=context,
                context_schema=ctx_schema, time_limit=limit)
        plan = _TablePlan(name=tname, schema=train_schema, generator=gen, link=link,
                          children=children, count_is_categorical=count_cat, n_rows=len(df),
                          ar_context=ctx_cols)
        for fk in self.schema.foreign_keys:
            if fk.child == tname and not fk.enforce:
                plan.unenforced[fk.column] = self._non_missing_share(tname, fk.column, df, rng)
        plan.bounds = bounds
        return plan

    def _sample_histories(self, plan: _TablePlan, parent_aug: pd.DataFrame,
                          parent_out: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Every synthetic parent whose sampled child count is positive gets one history of
        that many rows (fewer when a declared bound on the time column ends it early, e.g.
        ``day <= futime``); the others get none."""
        fk = plan.link
        assert fk is not None and plan.ar_context is not None
        counts = pd.to_numeric(parent_aug[count_column(plan.name)], errors="coerce").fillna(0)
        active = np.flatnonzero(counts.to_numpy() > 0)
        if not active.size:
            return self._no_children(plan)
        context = parent_aug.iloc[active][plan.ar_context].reset_index(drop=True)
        limit = self._time_limit(plan, parent_aug, parent_out)
        synth, owner = plan.generator.sample_histories(
            context, min_length=1, time_limit=None if limit is None else limit[active],
            lengths=counts.to_numpy()[active].astype(np.int64), seed=child_seed(rng))
        parent_idx = active[owner]
        return self._attach_to_parents(plan, fk, synth, parent_out, parent_aug, parent_idx)

    def _time_limit(self, plan: _TablePlan, parent_aug: pd.DataFrame,
                    parent_out: pd.DataFrame) -> np.ndarray | None:
        """Per parent, the latest time the declared rules allow (e.g. ``day <= futime``): a
        history ends there instead of piling rows onto the bound (``None``: no such rule)."""
        fk = plan.link
        assert fk is not None
        return self._limit_of(plan.name, fk, plan.bounds, parent_aug, parent_out)

    @staticmethod
    def _limit_of(tname: str, fk: ForeignKey, bounds: list[_Bound], parent_aug: pd.DataFrame,
                  parent_out: pd.DataFrame) -> np.ndarray | None:
        """Per parent row, the latest time of ``tname``'s time column the ``bounds`` allow
        (``parent_aug``: the parents' rows with the parent-level copies, ``parent_out``: their
        own columns; aligned). ``None`` without such a bound."""
        out = None
        for b in bounds:
            if b.column != fk.order_by or b.low:
                continue
            kind, ref = b.other
            if kind == "const":
                value = np.full(len(parent_aug), float(ref))
            else:
                src = (parent_aug[parent_level_column(tname, ref)] if kind == "child"
                       and ref in fk.parent_level else parent_out[ref] if kind == "parent" else None)
                if src is None:
                    continue
                value = pd.to_numeric(src, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            value = np.where(np.isnan(value), np.inf, value)
            out = value if out is None else np.minimum(out, value)
        return out

    def _apply_bounds(self, plan: _TablePlan, synth: pd.DataFrame, parent_out: pd.DataFrame,
                      parent_idx: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, dict[str, tuple]]:
        """Clip bounded child columns to their parent-dependent bounds; drop rows whose bounds
        cross (e.g. a follow-up end before the earliest allowed day). Returns the rows kept,
        their parent indices and ``{column: (low, high)}`` of the kept rows."""
        schema = self.schema.tables[plan.name]
        limits: dict[str, list[np.ndarray]] = {}
        for b in plan.bounds:
            kind, ref = b.other
            if kind == "const":
                value = np.full(len(synth), float(ref))
            else:
                src = synth[ref] if kind == "child" else parent_out[ref].to_numpy()[parent_idx]
                value = pd.to_numeric(pd.Series(np.asarray(src)), errors="coerce").to_numpy(
                    dtype=float, na_value=np.nan)
            is_int = schema[b.column].kind == ColumnKind.INTEGER
            if b.strict:
                step = 1.0 if is_int else None
                toward = np.inf if b.low else -np.inf
                value = value + (step if b.low else -step) if step else np.nextafter(value, toward)
            if is_int:
                value = np.ceil(value) if b.low else np.floor(value)
            lims = limits.setdefault(b.column, [np.full(len(synth), -np.inf), np.full(len(synth), np.inf)])
            value = np.where(np.isnan(value), -np.inf if b.low else np.inf, value)  # vacuous when unknown
            lims[0 if b.low else 1] = np.maximum(lims[0], value) if b.low else np.minimum(lims[1], value)
        keep = np.ones(len(synth), dtype=bool)
        for col, (low, high) in limits.items():
            keep &= low <= high
        if (~keep).any():
            self.fixes_[f"{plan.name} rows dropped (bounds cross)"] = int((~keep).sum())
        synth = synth.loc[keep].reset_index(drop=True)
        parent_idx = parent_idx[keep]
        out = {}
        for col, (low, high) in limits.items():
            low, high = low[keep], high[keep]
            t = pd.to_numeric(synth[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if schema[col].kind == ColumnKind.INTEGER:
                t = np.round(t)
            n_out = int(((t < low) | (t > high)).sum())
            if n_out:
                self.fixes_[f"{plan.name}.{col} clipped to bounds"] = n_out
            synth[col] = np.clip(t, low, high)
            out[col] = (low, high)
        return synth, parent_idx, out

    def _sample_pooled(self, plan: _TablePlan, slots: pd.DataFrame,
                       rng: np.random.Generator) -> pd.DataFrame:
        """Rows for every slot from one unconditional pool (for generators that condition by
        rejection): pool rows go to slots with the same (cluster, rank bin), then to slots of
        the same cluster, then to any slot — the last two counted in ``fixes_``. One draw of
        ``POOL_FACTOR`` × the rows instead of one rejection loop per pair."""
        total = len(slots)
        pool = plan.generator.sample(POOL_FACTOR * total, seed=child_seed(rng)).reset_index(drop=True)
        pc = pd.to_numeric(pool[CTX], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
        ps = pd.to_numeric(pool[SEQ], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
        assign = np.full(total, -1, dtype=np.int64)
        used = np.zeros(len(pool), dtype=bool)
        sc, ss = slots["ctx"].to_numpy(dtype=np.int64), slots["seq"].to_numpy(dtype=np.int64)
        for keys in ((True, True), (True, False), (False, False)):
            open_ = np.flatnonzero(assign < 0)
            if not open_.size:
                break
            avail = np.flatnonzero(~used)
            code = lambda c, q: (c if keys[0] else 0) * 1_000_000 + (q if keys[1] else 0)  # noqa: E731
            want = pd.DataFrame({"code": code(sc[open_], ss[open_]), "slot": open_})
            have = pd.DataFrame({"code": code(pc[avail], ps[avail]), "row": avail})
            want["rank"] = want.groupby("code").cumcount()
            have["rank"] = have.groupby("code").cumcount()
            match = want.merge(have, on=["code", "rank"], how="inner")
            assign[match["slot"].to_numpy()] = match["row"].to_numpy()
            used[match["row"].to_numpy()] = True
            if keys != (True, True) and len(match):
                dropped = SEQ if keys[0] else f"{CTX} and {SEQ}"
                label = f"{plan.name} rows sampled without their {dropped} condition (too rare)"
                self.fixes_[label] = self.fixes_.get(label, 0) + len(match)
        assert (assign >= 0).all()  # the last pass takes any row, and the pool is larger
        return pool.iloc[assign].reset_index(drop=True)

    def _sample_conditioned(self, plan: _TablePlan, n: int, cond: dict[str, int],
                            rng: np.random.Generator) -> pd.DataFrame:
        """Rows for one (parent cluster, rank bin); when the generator cannot reach the pair
        (a VAE conditions by rejection), drop the rank bin, then the cluster, and count it."""
        for keep in ((CTX, SEQ), (CTX,), ()):
            if any(k not in cond for k in keep):
                continue
            try:
                return plan.generator.sample(n, conditions={k: cond[k] for k in keep} or None,
                                             seed=child_seed(rng))
            except ConditionTooRareError:
                if not keep:
                    raise
                label = f"{plan.name} rows sampled without their {keep[-1]} condition (too rare)"
                self.fixes_[label] = self.fixes_.get(label, 0) + n
        raise AssertionError("unreachable")  # pragma: no cover

    def _order_in_time(self, plan: _TablePlan, synth: pd.DataFrame, parent_out: pd.DataFrame,
                       parent_idx: np.ndarray) -> pd.DataFrame:
        fk = plan.link
        assert fk is not None
        synth, parent_idx, limits = self._apply_bounds(plan, synth, parent_out, parent_idx)
        if fk.order_by is None:
            return synth
        col = fk.order_by
        ms = self.schema
        if ms.tables[plan.name][col].kind == ColumnKind.DATETIME:
            # dates: whole rows sorted by date within each parent (missing dates last)
            ns, missing = column_values(synth, col, ms.tables[plan.name])
            key = np.where(missing, np.iinfo(np.int64).max, ns)
            return synth.iloc[np.lexsort((key, parent_idx))].reset_index(drop=True)
        t = pd.to_numeric(synth[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        low, high = limits.get(col, (np.full(len(t), -np.inf), np.full(len(t), np.inf)))
        is_int = ms.tables[plan.name][col].kind == ColumnKind.INTEGER
        # sort whole rows by time within each parent (parents stay in order; missing times last)
        order = np.lexsort((t, parent_idx))
        synth = synth.iloc[order].reset_index(drop=True)
        t, parent_idx, low, high = t[order], parent_idx[order], low[order], high[order]
        keep = np.ones(len(t), dtype=bool)
        if is_int and col in ms.primary_keys.get(plan.name, ()):
            # strictly increasing within a parent so that (fk, time) stays a key
            starts = np.r_[0, np.flatnonzero(np.diff(parent_idx)) + 1]
            sizes = np.diff(np.r_[starts, len(t)])
            rank = np.arange(len(t)) - np.repeat(starts, sizes)
            back = np.repeat(starts + sizes - 1, sizes) - np.arange(len(t))
            shifted = pd.Series(t - rank).groupby(parent_idx).cummax().to_numpy() + rank
            t = np.minimum(shifted, high - back)
            keep = t >= low
            if (~keep).any():
                self.fixes_[f"{plan.name}.{col} rows dropped (no room between bounds)"] = int((~keep).sum())
        synth[col] = t
        synth = synth.loc[keep].reset_index(drop=True)
        return synth

    def _output_columns(self, tname: str, synth: pd.DataFrame, done: Mapping[str, pd.DataFrame],
                        rng: np.random.Generator) -> pd.DataFrame:
        schema = self.schema.tables[tname]
        plan = self.plans_[tname]
        out = pd.DataFrame(index=synth.index)
        for col in schema.columns:
            if col.name in plan.unenforced:
                out[col.name] = self._unenforced(tname, col, synth, done, rng)
                continue
            values = synth[col.name]
            if col.dtype.startswith("int") and not pd.api.types.is_integer_dtype(values):
                numeric = pd.to_numeric(values, errors="coerce").round()
                values = numeric.astype(col.dtype) if numeric.notna().all() else numeric.astype("Int64")
            out[col.name] = values
        return out.reset_index(drop=True)

    def _unenforced(self, tname: str, col: Column, synth: pd.DataFrame,
                    done: Mapping[str, pd.DataFrame], rng: np.random.Generator) -> np.ndarray:
        fk = next(fk for fk in self.schema.foreign_keys if fk.child == tname and fk.column == col.name)
        keys = (synth if fk.parent == tname else done[fk.parent])[fk.parent_column].to_numpy()
        empty = not len(keys)  # no parent rows to point to
        picked = rng.choice(np.array([np.nan]) if empty else keys, size=len(synth))
        missing = rng.random(len(synth)) >= self.plans_[tname].unenforced[col.name]
        missing |= empty
        if pd.api.types.is_numeric_dtype(picked):
            values = picked.astype(float)
            values[missing] = np.nan
        else:  # text keys (regenerated as s1, s2, ...): missing is None
            values = picked.astype(object)
            values[missing] = None
        return values


def _new_keys(n: int, dtype: str) -> np.ndarray | list[str]:
    if dtype.startswith(("int", "uint", "float", "Int")):
        return np.arange(1, n + 1, dtype=np.int64)
    return [f"s{i}" for i in range(1, n + 1)]


# -- patient-level privacy: who owns each row, and the cap ---------------------------------------
def patient_root(schema: MultiTableSchema) -> str:
    """The root table (one row per patient) of a schema that patient-level privacy can bound.

    Every row must belong to exactly one patient through a single chain of enforced links, so
    a schema is refused (``ConfigError``) when a table has two parent tables (several paths to
    a patient), the links form a cycle, there is not exactly one root table, the root has no
    single-column key, a table links to itself, or a descendant table carries an unenforced
    link (its non-missing count would need a per-patient sensitivity).
    """
    ms = schema
    links = [fk for fk in ms.foreign_keys if fk.enforce and fk.child != fk.parent]
    parents: dict[str, list[str]] = {t: [] for t in ms.tables}
    for fk in links:
        parents[fk.child].append(fk.parent)
    for tname, ps in parents.items():
        if len(ps) > 1:
            raise ConfigError(
                f"patient-level privacy: table {tname!r} links to {len(ps)} parent tables {ps}, "
                "so its rows can be reached from a patient along several paths and no cap per "
                "patient can be guaranteed; keep one enforced link per table (the one that "
                "leads to the patient) or run without privacy")
    for tname in ms.tables:  # follow the single parent up: a cycle never reaches a root
        seen = [tname]
        while parents[seen[-1]]:
            nxt = parents[seen[-1]][0]
            if nxt in seen:
                cycle = seen[seen.index(nxt):]
                raise ConfigError(
                    f"patient-level privacy: the foreign keys of tables {cycle} form a cycle, so "
                    "their rows belong to no patient; break the cycle so that every table leads "
                    "to one root table of patients")
            seen.append(nxt)
    roots = [t for t, ps in parents.items() if not ps]
    if len(roots) != 1:
        raise ConfigError(
            f"patient-level privacy needs one root table (one row per patient) that every other "
            f"table links to, directly or through its parents; this schema has {len(roots)} "
            f"root tables {roots}: link them to the patient table, or fit them in separate runs")
    root = roots[0]
    if len(ms.primary_keys.get(root, ())) != 1:
        raise ConfigError(f"patient-level privacy: the root table {root!r} needs a "
                          "single-column primary key (the patient key); declare primary_key")
    for fk in ms.foreign_keys:
        if fk.child == fk.parent and fk.enforce:
            raise ConfigError(
                f"patient-level privacy: {fk.label} links table {fk.child!r} to itself, so a "
                "row can depend on another patient's row; declare the link enforce: false "
                "(it is then filled with random synthetic keys) or drop the column")
        if not fk.enforce and fk.child != root:
            raise ConfigError(
                f"patient-level privacy: {fk.label} is an unenforced link on {fk.child!r}, a "
                f"table with several rows per patient; only the root table {root!r} may carry "
                "one (its share of filled values is a per-patient count); drop the column")
    return root


def patient_lineage(schema: MultiTableSchema, tables: Mapping[str, pd.DataFrame]
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """For every table, each row's patient (its root row's position) and its parent row's
    position; ``-1`` where a key points to no row (a dangling or missing foreign key). Call
    :func:`patient_root` first: it guarantees one chain of links per table."""
    root = patient_root(schema)
    n_root = len(tables[root])
    patient = {root: np.arange(n_root, dtype=np.int64)}
    parent_pos = {root: np.full(n_root, -1, dtype=np.int64)}
    for tname in schema.order():
        link = schema.parent_link(tname)
        if link is None:
            continue
        keys = tables[link.parent][link.parent_column]
        # a missing key matches nothing; duplicate keys are reported by validate()
        first = (~keys.duplicated() & keys.notna()).to_numpy()
        index = pd.Index(keys.to_numpy()[first])
        positions = np.flatnonzero(first)
        hit = index.get_indexer(tables[tname][link.column].to_numpy())
        pos = np.where(hit >= 0, positions[np.maximum(hit, 0)], -1)
        parent_pos[tname] = pos
        patient[tname] = np.where(pos >= 0, patient[link.parent][np.maximum(pos, 0)], -1)
    return patient, parent_pos


def check_patient_rows(schema: MultiTableSchema, tables: Mapping[str, pd.DataFrame]) -> None:
    """Refuse (``DataError``) rows that cannot be attributed to a patient under patient-level
    privacy: their foreign key, or one of their parents' keys, points to no row."""
    for fk in schema.foreign_keys:  # missing tables or columns: validate() names them
        if fk.child not in tables or fk.parent not in tables or \
                fk.column not in tables[fk.child] or fk.parent_column not in tables[fk.parent]:
            return
    patient, parent_pos = patient_lineage(schema, tables)
    problems = []
    for tname in schema.order():
        link = schema.parent_link(tname)
        if link is None:
            continue
        lost = int((patient[tname] < 0).sum())
        if not lost:
            continue
        own = int((parent_pos[tname] < 0).sum())
        how = (f"{own} with a key in column {link.column!r} that matches no "
               f"{link.parent}.{link.parent_column}" if own else "")
        via = lost - own
        if via:
            how += ("; " if how else "") + f"{via} whose parent row in {link.parent!r} belongs to no patient"
        problems.append(f"{lost} row(s) of table {tname!r} ({how})")
    if problems:
        raise DataError(
            "patient-level privacy: " + "; ".join(problems) + " cannot be attributed to a "
            "patient, so their contribution cannot be bounded; fix or drop these rows (and "
            "their children) before the run")


def cap_per_patient(schema: MultiTableSchema, tables: Mapping[str, pd.DataFrame], k: int,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Which rows of each descendant table are kept: at most ``k`` random rows per patient
    (root row) in every table, counted across all of the patient's parent rows; rows whose
    parent row was left out go too (their parent context would be missing). Returns
    ``{table: boolean mask}`` for the non-root tables. Under DP ``rng`` must be
    :func:`synthdata.privacy.noise.secure_rng` (the choice is part of the mechanism)."""
    patient, parent_pos = patient_lineage(schema, tables)
    keep: dict[str, np.ndarray] = {}
    for tname in schema.order():
        link = schema.parent_link(tname)
        if link is None:
            continue
        owner = patient[tname]
        pos = parent_pos[tname]
        candidate = owner >= 0
        if link.parent in keep:
            candidate &= keep[link.parent][np.maximum(pos, 0)]
        draw = rng.random(len(owner))
        draw[~candidate] = 2.0   # never before a candidate of the same patient
        order = np.lexsort((draw, owner))
        sorted_owner = owner[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_owner)) + 1] if len(order) else np.array([], dtype=np.int64)
        sizes = np.diff(np.r_[starts, len(order)])
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - np.repeat(starts, sizes)
        keep[tname] = candidate & (rank < k)
    return keep


def discovered_violations(ms: MultiTableSchema, tables: Mapping[str, pd.DataFrame],
                          own: Mapping[str, list[Any]], links: list[Any]) -> dict[str, int]:
    """Rows of ``tables`` breaking each discovered rule (keys as in
    :meth:`MultiTableSchema.constraint_violations`)."""
    out: dict[str, int] = {}
    for tname, rules in own.items():
        if tname in tables:
            for rule in rules:
                out[f"{tname}: {rule.describe()}"] = int(
                    rule.violations(tables[tname], ms.tables[tname]).sum())
    for rule in links:
        child = ms.link_rule_table(rule)
        view = ms.joined_view(tables, child)
        out[rule.describe()] = int(rule.violations(view, ms.joined_schema(child)).sum())
    return out
