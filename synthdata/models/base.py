"""Generator protocol, the shared base class and the one-file model archive."""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import json
import math
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd

from synthdata._progress import Progress, ProgressOption, no_progress, progress_reporter
from synthdata._rng import make_rng
from synthdata.errors import ConfigError, DataError, NotFittedError, SynthDataError
from synthdata.models.conditions import RangeCondition, split_conditions
from synthdata.schema.model import Schema
from synthdata.transform.table import TableTransformer

if TYPE_CHECKING:
    from synthdata.privacy.config import DPConfig

__all__ = ["ARCHIVE_VERSION", "BaseGenerator", "Progress", "load_generator", "no_progress"]

ARCHIVE_VERSION = 1
CHECKSUMS = "checksums.json"  # {member: SHA-256}, written last by save()
# Range conditions (reject-and-resample): at most this many rounds, each drawing at most
# MAX_RANGE_DRAW_FACTOR * n rows.
MAX_RANGE_ROUNDS = 10
MAX_RANGE_DRAW_FACTOR = 20


MIN_TRAINING_ROWS = 10
# Training records computed from the real rows without privacy (losses per epoch, fit
# time, likelihoods): left out of the archive of a DP fit, which holds only DP releases.
NOT_PUBLIC_EXTRA = frozenset({"history", "fit_seconds", "bic", "loglik", "best_epoch"})


class BaseGenerator:
    """Shared behaviour of every generator.

    Subclasses set ``name``, define ``__init__`` with keyword parameters (stored as
    given), and implement ``_fit(matrix, rng)``, ``_sample_matrix(n, rng, conditions)``,
    ``_get_arrays()``/``_set_arrays()`` for learned numpy state and optionally
    ``_get_torch_state()``/``_set_torch_state()``.

    Randomness: ``fit`` uses a generator made from ``seed``; ``sample(n)`` continues one
    stream (two calls differ), while ``sample(n, seed=s)`` is reproducible whatever came
    before.
    """

    name: ClassVar[str] = "base"
    # "mode" (mode-specific normalisation) or "quantile" (normal scores); the neural
    # generators take it as a constructor parameter
    numeric_encoding: str = "mode"
    # How training spends a DP budget: "zcdp" (noisy statistics), "dpsgd", or None (no DP).
    dp_training: ClassVar[str | None] = None
    schema: Schema
    seed: int | None
    _privacy: DPConfig | None = None
    # threads for torch/OpenMP/BLAS during fit and sample (None: the cores available to the
    # process); set by make_generator(..., threads=n) or set_params (synthdata._threads)
    threads: int | None = None

    # -- params -------------------------------------------------------------------------
    @property
    def privacy(self) -> DPConfig | None:
        """The differential-privacy settings (None: no privacy)."""
        return self._privacy

    @privacy.setter
    def privacy(self, value: DPConfig | Mapping[str, Any] | None) -> None:
        # a mapping such as {"epsilon": 3} becomes a DPConfig; anything else that is not a
        # DPConfig or None is a ConfigError here, before any data is read
        from synthdata.privacy.config import as_dp_config

        self._privacy = as_dp_config(value, where=f"{self.name}: privacy")

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p not in ("self", "schema")]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (without ``schema``) as a dict, scikit-learn style.

        ``deep`` is accepted for compatibility; generators hold no nested estimators.
        """
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters by name and return self (checked again by ``fit``).

        Unknown names are a ``ConfigError`` listing the valid ones. Setting parameters on
        a fitted generator does not refit it.
        """
        valid = [*self._param_names(), "threads"]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(f"{type(self).__name__}.set_params: unknown parameter(s) "
                              f"{unknown}; valid: {valid}")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def clone(self) -> Self:
        """A new, unfitted generator with the same schema and (copied) parameters."""
        new = type(self)(self.schema, **copy.deepcopy(self.get_params()))
        new.threads = self.threads
        return new

    def __repr__(self) -> str:
        """``GMMGenerator(<schema 'flchain': 10 columns>, n_components=5)``: the parameters
        that differ from their defaults, as scikit-learn shows them."""
        sig = inspect.signature(type(self).__init__)
        shown = [f"<schema {self.schema.name!r}: {len(self.schema)} columns>"]
        for key, value in self.get_params().items():
            default = sig.parameters[key].default
            if not _same_value(value, default):
                shown.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _validate_params(self) -> None:
        """Raise ConfigError naming the bad parameter; subclasses extend."""
        seed = getattr(self, "seed", None)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ConfigError(f"{self.name}: seed must be a non-negative integer or None, got {seed!r}")

    def _positive(self, **params: Any) -> None:
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or value <= 0:
                raise ConfigError(f"{self.name}: parameter {key} must be a positive number, got {value!r}")

    # -- fit / sample -------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, *, ledger: Any = None,
            progress: ProgressOption = None) -> Self:
        """Learn the table ``data``; returns self.

        ``progress``: None/False (silent, the default), True or ``"auto"`` (a tqdm bar in a
        notebook, a rich bar on a terminal, plain lines with ETA otherwise), ``"tqdm"``,
        ``"rich"``, ``"plain"``, or a callable ``progress(step, done, total)``.
        """
        if not callable(progress):
            with progress_reporter(progress) as callback:
                return self.fit(data, ledger=ledger, progress=callback)
        self._validate_params()
        if not isinstance(data, pd.DataFrame):  # a polars DataFrame is converted
            from synthdata.io.sql import as_pandas

            data = as_pandas(data, where="fit()")
        self.schema.validate(data, where="training data")
        if len(data) < MIN_TRAINING_ROWS:
            raise DataError(f"the training data has {len(data)} row(s); at least "
                            f"{MIN_TRAINING_ROWS} are needed to fit a generator")
        rng = make_rng(self.seed)
        self.ledger_ = self._make_ledger(ledger, len(data))
        # Under DP n is not public: DP-SGD rates and steps use the run's noisy unit count
        # (ledger step data.count); None when the caller's ledger made no count.
        from synthdata.privacy.count import released_count

        self.dp_rows_ = released_count(self.ledger_) if self.privacy is not None else None
        # Declared constraints: checked against the data, then the table is reparameterised
        # (difference columns, merged categoricals, derived columns dropped) before the
        # transformer sees it; sample() inverts that and rejects what still breaks a rule.
        from synthdata.constraints.enforce import fit_enforcer

        self.constraints_ = fit_enforcer(self.schema, data, private=self.privacy is not None)
        if self.constraints_ is not None:
            self.ledger_.record_public("constraints", reason="declared rules are public; under "
                                       "privacy, combinations and lookup tables are either "
                                       "declared or come from the DP transformer")
            data = self.constraints_.forward(data)
        self.transformer_ = self._fit_transformer(data, rng, progress)
        matrix = self.transformer_.transform(data)
        if matrix.shape[1] == 0:
            skipped = [f"{c.name} ({c.kind.value})" for c in self.schema.columns] or \
                "it has no columns left (de-identification drops identifiers and free text)"
            raise DataError(f"the table has no column a generator can learn: {skipped}; ids "
                            "are regenerated, text is not synthesised and empty columns stay "
                            "empty; add a numeric, categorical, boolean or datetime column, or "
                            "declare a learnable kind for one of these in the schema")
        self.n_train_rows_ = len(data)
        from synthdata._threads import check_threads, limit_threads

        with limit_threads(check_threads(self.threads, where=f"{self.name}: threads")):
            self._fit(matrix, rng, progress)
        if self.privacy is None:
            self.ledger_.record_not_private(f"model.{self.name}.fit", reason="model parameters "
                                            "learned without privacy", shapes_release=True)
        self.sample_seed_ = int(rng.integers(0, 2**63 - 1))
        self._sample_rng = np.random.default_rng(self.sample_seed_)
        return self

    def _make_ledger(self, ledger: Any, n_rows: int) -> Any:
        if ledger is not None:
            return ledger
        if self.privacy is not None:  # n is not public: one DP count, δ from the noisy n
            from synthdata.privacy.count import dp_unit_count

            return dp_unit_count(n_rows, self.privacy)[0]
        from synthdata.privacy.ledger import PrivacyLedger

        return PrivacyLedger.from_config(self.privacy, n_rows=n_rows)

    def _planning_rows(self, n_rows: int) -> int:
        """The n that DP-SGD batch size, sampling rate and steps are planned from: the
        noisy count under DP (``n_rows`` when the caller's ledger made no count)."""
        noisy = getattr(self, "dp_rows_", None)
        return int(noisy) if noisy is not None else int(n_rows)

    def _fit_transformer(self, data: pd.DataFrame, rng: np.random.Generator,
                         progress: Progress) -> TableTransformer:
        if self.privacy is not None:
            return self._fit_private_transformer(data, rng, progress)
        if self.ledger_.is_private:
            raise ConfigError(f"{self.name}: the ledger has a privacy budget but the generator "
                              "has no privacy=DPConfig; pass the same DPConfig to both")
        tt = TableTransformer(self._model_schema(), numeric=self.numeric_encoding,
                              **self._transformer_options())
        tt = tt.fit(data, rng=rng, progress=progress)
        self.ledger_.record_not_private(
            "transform.fit", reason="bounds, categories and encodings learned from the training "
            "data without privacy", shapes_release=True)
        return tt

    def _fit_private_transformer(self, data: pd.DataFrame, rng: np.random.Generator,
                                 progress: Progress) -> TableTransformer:
        from synthdata.privacy.accounting import plan_split
        from synthdata.transform.private import PrivateBudget

        if self.dp_training is None:
            raise ConfigError(f"{self.name}: differential privacy is not available for this "
                              "generator; remove privacy= or choose another generator")
        if not self.ledger_.is_private:
            raise ConfigError(f"{self.name}: privacy= is set but the ledger has no budget; "
                              "build it with PrivacyLedger.from_config(privacy, n_rows=...)")
        eps, delta = self.ledger_.epsilon, self.ledger_.delta
        self.dp_plan_ = plan_split(eps, delta, self.privacy.preprocessing_share,
                                   training=self.dp_training)
        from synthdata.errors import PrivacyBudgetError
        from synthdata.privacy.count import count_spent_rho

        rho = self.dp_plan_.preprocessing_rho - count_spent_rho(self.ledger_)  # n came first
        if rho <= 0:
            raise PrivacyBudgetError(f"{self.name}: the unit count used the whole preprocessing "
                                     "budget; raise privacy.preprocessing_share")
        budget = PrivateBudget(rho=rho,
                               threshold_delta=self.dp_plan_.preprocessing_threshold_delta)
        tt = TableTransformer(self._model_schema(), numeric="quantile", **self._transformer_options())
        return tt.fit(data, rng=rng, progress=progress, ledger=self.ledger_, private=budget)

    def _model_schema(self) -> Schema:
        """The schema of the table the transformer learns (reparameterised by constraints)."""
        enforcer = getattr(self, "constraints_", None)
        return self.schema if enforcer is None else enforcer.inner_schema_

    def _transformer_options(self) -> dict[str, Any]:
        """Extra TableTransformer options a generator wants (e.g. discrete encoding)."""
        return {}

    def _fit(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        raise NotImplementedError

    def _fit_stream(self, stream: Any, rng: np.random.Generator, progress: Progress) -> None:
        """Like ``_fit`` on a table read in mini-batches (``synthdata.models.streaming``:
        ``stream`` is a ``MatrixStream``); the generators that can stream implement it."""
        raise ConfigError(f"{self.name}: cannot fit by streaming; fit in memory")

    def _sample_matrix(self, n: int, rng: np.random.Generator,
                       conditions: dict[str, Any] | None) -> np.ndarray:
        raise NotImplementedError

    def check_is_fitted(self) -> None:
        if not hasattr(self, "transformer_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit() first")

    @property
    def ledger(self) -> Any:
        """The privacy ledger of the fit (every data-touching step, private or not)."""
        self.check_is_fitted()
        return self.ledger_

    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None,
               seed: int | None = None) -> pd.DataFrame:
        """Draw ``n`` synthetic rows as a DataFrame with the schema's columns and dtypes.

        ``conditions`` fixes discrete columns, e.g. ``{"death": 1}``, and/or restricts
        numeric columns to a range, e.g. ``{"age": {"min": 60, "max": 70}}`` (inclusive;
        rows outside are rejected and redrawn, see :mod:`synthdata.models.conditions`).
        """
        self.check_is_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ConfigError(f"number of rows to sample must be a positive integer, got {n!r}")
        from synthdata._rng import check_seed

        check_seed(seed, name="sample(seed=...)")
        equal, ranges = split_conditions(self.schema, conditions)
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        from synthdata._threads import limit_threads

        with limit_threads(self.threads):
            if ranges:
                return self._sample_in_ranges(int(n), rng, equal, ranges)
            return self._draw_conditioned(int(n), rng, equal)

    def _draw_conditioned(self, n: int, rng: np.random.Generator,
              conditions: Mapping[str, Any] | None) -> pd.DataFrame:
        enforcer = getattr(self, "constraints_", None)
        if enforcer is not None:
            return self._sample_constrained(enforcer, n, rng, conditions or None)
        codes = self._condition_codes(conditions or None)
        return self._sample_frame(n, rng, codes)

    def _sample_frame(self, n: int, rng: np.random.Generator,
                      conditions: dict[str, Any] | None) -> pd.DataFrame:
        """``n`` rows of the learned table: the model's matrix through the inverse transform
        (a model may build the rows more directly)."""
        return self.transformer_.inverse_transform(self._sample_matrix(n, rng, conditions))

    def _sample_in_ranges(self, n: int, rng: np.random.Generator, equal: Mapping[str, Any],
                          ranges: list[RangeCondition]) -> pd.DataFrame:
        """Bounded reject-and-resample until ``n`` rows fall in every range."""
        parts: list[pd.DataFrame] = []
        have = drawn = 0
        m = n
        for _ in range(MAX_RANGE_ROUNDS):
            batch = self._draw_conditioned(m, rng, equal)
            drawn += m
            keep = np.ones(len(batch), dtype=bool)
            for cond in ranges:
                keep &= cond.mask(batch)
            parts.append(batch[keep])
            have += int(keep.sum())
            if have >= n:
                out = pd.concat(parts, ignore_index=True).iloc[:n].reset_index(drop=True)
                return self._regenerate_ids(out, n)
            rate = max(have, 1) / drawn
            m = int(min(math.ceil((n - have) / rate * 1.2) + 16, MAX_RANGE_DRAW_FACTOR * n + 1000))
        described = " and ".join(c.describe() for c in ranges)
        raise ConfigError(f"conditions: only {have} of {drawn} sampled rows "
                          f"({have / drawn:.3%}) satisfy {described}, {n} were asked for; the "
                          "model rarely produces such rows: widen the range, ask for fewer "
                          "rows, or check the range against the data")

    def _regenerate_ids(self, out: pd.DataFrame, n: int) -> pd.DataFrame:
        """Id columns count 1..n again after rows were rejected."""
        from synthdata.transform.columns import RegeneratedEncoder

        for name, enc in self.transformer_.encoders_.items():
            if isinstance(enc, RegeneratedEncoder) and name in out.columns:
                out[name] = enc.generate(n)
        return out

    def _sample_constrained(self, enforcer: Any, n: int, rng: np.random.Generator,
                            conditions: Mapping[str, Any] | None) -> pd.DataFrame:
        unknown = [c for c in (conditions or {}) if c not in self.schema]
        if unknown:
            raise ConfigError(f"condition on unknown column {unknown[0]!r}; columns are "
                              f"{self.schema.names}")

        def draw_inner(m: int, inner: dict[str, Any] | None) -> pd.DataFrame:
            return self._sample_frame(m, rng, self._condition_codes(inner))

        out = enforcer.sample(draw_inner, n, rng, conditions=conditions,
                              categories=lambda name: list(self.transformer_.encoder(name).categories_))
        return self._regenerate_ids(out, n)  # ids stay 1..n after redraws

    def _condition_codes(self, conditions: Mapping[str, Any] | None) -> dict[str, int] | None:
        """Map {column: value} to {column: category code}, with errors that say what to do."""
        if not conditions:
            return None
        from synthdata.transform.columns import CategoryEncoder

        out = {}
        for column, value in conditions.items():
            schema = self.transformer_.schema  # the learned table (constraints may reshape it)
            if column not in schema:
                raise ConfigError(f"condition on unknown column {column!r}; columns are "
                                  f"{self.schema.names}")
            kind = schema[column].kind
            enc = self.transformer_.encoder(column)
            if not isinstance(enc, CategoryEncoder):
                raise ConfigError(f"condition on column {column!r} ({kind.value}): equality works "
                                  "on discrete (categorical/boolean) columns; for numbers give a "
                                  f"range such as {{{column!r}: {{'min': ..., 'max': ...}}}}")
            try:
                code = int(enc.codes(pd.Series([value], dtype=object))[0])
            except DataError:
                raise ConfigError(f"condition {column}={value!r}: value not seen in training; "
                                  f"known values are {enc.categories_}") from None
            out[column] = code
        return out

    # -- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one archive: version, params, schema, transformer state, arrays, weights, ledger."""
        self.check_is_fitted()
        from synthdata.io.files import atomic_write

        params = {k: _jsonable(v) for k, v in self.get_params().items() if k != "privacy"}
        privacy = self.privacy.model_dump() if hasattr(self.privacy, "model_dump") else None
        meta = {"format": "synthdata-generator", "version": ARCHIVE_VERSION, "generator": self.name,
                "params": params, "privacy": privacy, "n_train_rows": self.n_train_rows_,
                "sample_seed": self.sample_seed_,
                "extra": self._get_extra()}
        if self.privacy is not None:  # the archive of a DP fit is a release: no exact n, no
            meta.pop("n_train_rows")  # per-epoch losses on real rows, no fit time
            meta["extra"] = {k: v for k, v in meta["extra"].items()
                             if k not in NOT_PUBLIC_EXTRA}
        arrays = self._get_arrays()
        torch_state = self._get_torch_state()

        members: dict[str, bytes] = {
            "meta.json": json.dumps(meta, indent=1).encode(),
            "schema.json": json.dumps(self._archived_schema().to_dict()).encode(),
            "transformer.json": json.dumps(self.transformer_.get_state()).encode(),
            "ledger.json": json.dumps(self.ledger_.to_dict()).encode(),
        }
        if getattr(self, "constraints_", None) is not None:
            members["constraints.json"] = json.dumps(self.constraints_.get_state()).encode()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        members["arrays.npz"] = buf.getvalue()
        if torch_state is not None:
            import torch

            tbuf = io.BytesIO()
            torch.save(torch_state, tbuf)
            members["weights.pt"] = tbuf.getvalue()
        # SHA-256 of every member: load_generator refuses an archive edited or damaged after
        # saving (integrity against accidents; not a signature against a deliberate forger)
        members[CHECKSUMS] = json.dumps(
            {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
            indent=1).encode()

        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
        return atomic_write(Path(path), write)

    def _archived_schema(self) -> Schema:
        """The schema written to the archive: under DP without bounds and categories that
        are not declared public (an inferred schema's are facts of the private rows; the
        fitted encoders keep their DP versions in the transformer state)."""
        if self.privacy is None:
            return self.schema
        import dataclasses

        return self.schema.replace_columns(
            c if c.public else dataclasses.replace(c, min=None, max=None, categories=None)
            for c in self.schema.columns)

    def _get_extra(self) -> dict[str, Any]:
        return {}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        return None

    def _get_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        return None

    def _get_torch_state(self) -> dict[str, Any] | None:
        return None

    def _set_torch_state(self, state: dict[str, Any]) -> None:
        return None


def _same_value(value: Any, default: Any) -> bool:
    """``value`` equals the parameter default (for ``__repr__``; never raises)."""
    if value is default:
        return True
    if default is inspect.Parameter.empty or type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def load_generator(path: str | Path) -> BaseGenerator:
    """Rebuild a generator saved with ``save()``.

    Checks the archive version and every member's SHA-256 against ``checksums.json``
    (written by ``save()``); a truncated, damaged or edited archive is a ``DataError``.
    """
    from synthdata.privacy.ledger import PrivacyLedger

    p = Path(path)
    if not p.is_file():
        raise DataError(f"model file not found: {p}")
    bad = f"{p} is not a valid synthdata model archive"
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            if "meta.json" not in names:
                raise DataError(f"{bad}: it has no meta.json")
            meta = json.loads(zf.read("meta.json"))
            if not isinstance(meta, dict) or meta.get("format") != "synthdata-generator":
                raise DataError(f"{p} is not a synthdata model archive")
            if meta.get("version") != ARCHIVE_VERSION:
                raise DataError(f"{p}: archive version {meta.get('version')} is not supported by "
                                f"this synthdata (reads version {ARCHIVE_VERSION}); refit the model")
            _verify_checksums(zf, names, p)
            schema = Schema.from_dict(json.loads(zf.read("schema.json")), where=str(p))
            tstate = json.loads(zf.read("transformer.json"))
            ledger = PrivacyLedger.from_dict(json.loads(zf.read("ledger.json")))
            cstate = (json.loads(zf.read("constraints.json"))
                      if "constraints.json" in names else None)
            with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            torch_state = None
            if "weights.pt" in names:
                import torch

                torch_state = torch.load(io.BytesIO(zf.read("weights.pt")), weights_only=True)
    except SynthDataError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, TypeError, OSError,
            EOFError, RuntimeError, pickle.UnpicklingError) as err:
        raise DataError(f"{bad}: {err}; it may be truncated or damaged: copy it again or refit "
                        "and save the model") from err
    try:
        return _rebuild(meta, schema, tstate, ledger, cstate, arrays, torch_state)
    except SynthDataError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as err:
        raise DataError(f"{bad}: its contents do not fit together ({type(err).__name__}: "
                        f"{err}); refit and save the model") from err


def _verify_checksums(zf: zipfile.ZipFile, names: set[str], path: Path) -> None:
    """Refuse an archive whose members differ from the checksums written at save time."""
    if CHECKSUMS not in names:
        raise DataError(f"{path}: the archive has no {CHECKSUMS} (written by every save since "
                        "synthdata checks archive integrity), so edits or damage cannot be "
                        "ruled out; load it with the synthdata that wrote it and save it again, "
                        "or refit")
    sums = json.loads(zf.read(CHECKSUMS))
    if not isinstance(sums, dict):
        raise DataError(f"{path}: {CHECKSUMS} is not a mapping; the archive was edited")
    extra = sorted(names - set(sums) - {CHECKSUMS})
    missing = sorted(set(sums) - names)
    if extra or missing:
        raise DataError(f"{path}: the archive's members changed after saving (added {extra}, "
                        f"missing {missing}); refit and save the model")
    for name, expected in sums.items():
        if hashlib.sha256(zf.read(name)).hexdigest() != expected:
            raise DataError(f"{path}: member {name} was modified after saving (its SHA-256 "
                            "does not match the archive's checksums); use an unmodified copy "
                            "or refit and save the model")


def _rebuild(meta: dict[str, Any], schema: Schema, tstate: Any, ledger: Any, cstate: Any,
             arrays: dict[str, np.ndarray], torch_state: Any) -> BaseGenerator:
    from synthdata.models.registry import generator_class

    cls = generator_class(meta["generator"])
    params = dict(meta["params"])
    if meta.get("privacy"):
        from synthdata.privacy.config import DPConfig

        params["privacy"] = DPConfig(**meta["privacy"])
    gen = cls(schema, **params)
    gen.constraints_ = None
    if cstate is not None:
        from synthdata.constraints.enforce import ConstraintEnforcer

        gen.constraints_ = ConstraintEnforcer.from_state(schema, cstate)
    gen.transformer_ = TableTransformer.from_state(gen._model_schema(), tstate)
    gen.ledger_ = ledger
    gen.n_train_rows_ = meta.get("n_train_rows")  # absent in the archive of a DP fit
    gen._set_extra(meta.get("extra", {}))
    gen._set_arrays(arrays)
    if torch_state is not None:
        gen._set_torch_state(torch_state)
    gen.sample_seed_ = int(meta["sample_seed"])
    gen._sample_rng = np.random.default_rng(gen.sample_seed_)
    return gen

