"""Enforcing declared constraints for every generator.

:class:`ConstraintEnforcer` sits between the user's table and the ``TableTransformer``:

* ``fit`` checks that the training data obeys every declared rule (a ``DataError`` names
  the rule and how many rows break it) and plans the reparameterisation;
* ``forward`` turns the table into the *inner* table the transformer learns:
  ``low <= high`` becomes a non-negative difference column in place of ``high`` (exact
  for integers, datetimes and numbers with a fixed number of decimals); a proportional
  column becomes its ratio to the product of its factors;
  a fixed combination or one-hot group becomes one categorical column (its values are
  the allowed tuples); derived columns are dropped;
* ``inverse`` undoes it on sampled inner rows (``high = low + difference``, tuples split
  back, derived columns recomputed, constant ranges clipped), so those rules hold by
  construction, with the original dtypes;
* ``sample`` checks every declared rule on each batch (vectorised) and redraws the rows
  that break one (``unique``, rules that could not be reparameterised) for at most
  ``MAX_ROUNDS`` rounds; when that is not enough it raises ``ConfigError`` naming the rule.

Conditional sampling on a member of a merged group is translated into conditions on the
merged column (a mixture over the allowed tuples, weighted by a pilot draw).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from synthdata.constraints.kinds import (
    Conditional,
    Constraint,
    Derived,
    FixedCombinations,
    HistoryRule,
    Inequality,
    OneHot,
    Positive,
    Proportional,
    Range,
    Unique,
    column_values,
    combination_keys,
    row_key,
)
from synthdata.errors import ConfigError, DataError
from synthdata.schema.model import Column, ColumnKind, Schema, to_native

STATE_VERSION = 1
MAX_ROUNDS = 10          # reject-and-resample rounds before giving up
MAX_DRAW_FACTOR = 20     # one round never draws more than this many times the rows asked for
MAX_DECIMALS = 8
_DT_UNITS = (86_400 * 10**9, 3600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)

DrawInner = Callable[[int, "dict[str, Any] | None"], pd.DataFrame]


def _restore(values: pd.Series, column: Column) -> pd.Series:
    """Cast values to the column's dtype the way the transformer does."""
    dtype = column.dtype
    if dtype == "object":
        return values.astype(object)
    try:
        if dtype.startswith(("int", "uint", "bool")) and values.isna().any():
            return values.astype("float64") if dtype.startswith(("int", "uint")) else values
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values


def _format_datetime(ns: np.ndarray, missing: np.ndarray, column: Column) -> pd.Series:
    stamps = pd.Series(pd.to_datetime(np.where(missing, 0, ns).astype(np.int64), unit="ns"))
    stamps = stamps.mask(pd.Series(missing))
    if column.datetime_format is not None and not column.dtype.startswith("datetime"):
        text = stamps.dt.strftime(column.datetime_format)
        return text.astype(object) if column.dtype == "object" else text.astype(column.dtype)
    return stamps.astype(column.dtype) if column.dtype.startswith("datetime") else stamps


def _decimals(*arrays: np.ndarray) -> int | None:
    """Fewest decimals that represent every finite value exactly (None: not decimal)."""
    values = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if values.size == 0:
        return 0
    if np.abs(values).max() >= 2**52:
        return None
    for k in range(MAX_DECIMALS + 1):
        if np.array_equal(np.round(values, k), values):
            return k
    return None


def _declared_unit(schema: Schema, *names: str) -> int:
    """The coarsest output unit the declared datetime formats of ``names`` share (the
    finest of their units, so both ends stay exact)."""
    from synthdata.schema.public import datetime_unit_ns

    units = [datetime_unit_ns(schema[n].datetime_format) for n in names
             if schema[n].kind == ColumnKind.DATETIME]
    return min(units) if units else 1


def _declared_decimals(schema: Schema, *names: str) -> int | None:
    """Decimals of a difference from the declared precisions (integers: 0; a continuous
    column without a declared precision: ``None``, full precision)."""
    out = 0
    for name in names:
        col = schema[name]
        if col.kind == ColumnKind.INTEGER:
            continue
        if col.kind != ColumnKind.CONTINUOUS or col.precision is None:
            return None
        out = max(out, col.precision)
    return out


def _dt_unit(*arrays: np.ndarray) -> int:
    values = np.concatenate(arrays)
    for unit in _DT_UNITS:
        if np.all(values % unit == 0):
            return unit
    return 1


def _flatten(schema: Schema) -> list[tuple[int, Constraint]]:
    """Declared rules as (index, rule), with positive/negative and column-ended ranges
    expressed through inequalities and constant ranges."""
    out: list[tuple[int, Constraint]] = []
    for i, rule in enumerate(schema.constraints):
        if isinstance(rule, Positive):  # also Negative
            out.append((i, rule.as_range()))
        elif isinstance(rule, Range):
            ends = rule.column_ends(schema)
            if "low" in ends:
                out.append((i, Inequality(ends["low"], rule.column, strict=rule.strict)))
            if "high" in ends:
                out.append((i, Inequality(rule.column, ends["high"], strict=rule.strict)))
            const = {k: getattr(rule, k) for k in ("low", "high") if k not in ends}
            if any(v is not None for v in const.values()):
                out.append((i, Range(rule.column, strict=rule.strict, **const)))
        else:
            out.append((i, rule))
    return out


class ConstraintEnforcer:
    """Validate, reparameterise and enforce the declared constraints of ``schema``."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    # -- fit ----------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, *, private: bool = False) -> ConstraintEnforcer:
        self.learn(data, private=private)
        self._check_training(data)
        self._plan(data, private=private)
        return self

    def learn(self, data: pd.DataFrame, *, private: bool = False) -> ConstraintEnforcer:
        """Learn what rules leave to the data (seen combinations, lookup tables) without
        checking or planning; enough for :meth:`violation_counts`."""
        schema = self.schema
        self.tables_: dict[int, dict[str, Any]] = {}
        self.allowed_: dict[int, list[str]] = {}
        for i, rule in enumerate(schema.constraints):
            if isinstance(rule, Derived) and rule.expression == "lookup" and rule.table is None:
                if private:
                    raise ConfigError(f"constraint {rule.describe()!r}: a lookup table learned "
                                      "from private data is not differentially private; declare "
                                      "its 'table' (public) or remove the rule")
                self.tables_[i] = _learn_table(data, rule)
            if isinstance(rule, FixedCombinations) and rule.combinations is None and not private:
                # Under privacy the seen combinations are not stored: the merged column's
                # category set comes from the DP transformer (noisy, thresholded counts),
                # so the model only emits combinations that set released.
                self.allowed_[i] = sorted(set(combination_keys(data, rule.columns)))
        return self

    def _check_training(self, data: pd.DataFrame) -> None:
        n = len(data)
        for i, rule in enumerate(self.schema.constraints):
            bad = self._rule_violations(i, rule, data)
            if bad.any():
                rows = np.flatnonzero(bad)
                raise DataError(f"the training data breaks constraint {rule.describe()!r} "
                                f"({rule.kind}) in {rows.size} of {n} row(s) (first: row "
                                f"{int(rows[0])}); fix the data or remove the rule from the schema")

    def _plan(self, data: pd.DataFrame, *, private: bool = False) -> None:
        """Plan the reparameterisation. Without privacy, nullability, the datetime unit
        and the decimals of a difference are read off the data; under privacy they come
        from the declared schema only (``nullable``, ``datetime_format``, ``precision``),
        so one extra row cannot change how every synthetic value is shaped."""
        schema = self.schema
        flat = _flatten(schema)
        derived = [(i, r) for i, r in flat if isinstance(r, Derived)]
        derived_targets = {r.column for _, r in derived}
        self.derived_: list[int] = []
        done: set[str] = set()
        pending = list(derived)
        while pending:  # topological: inputs that are derived come first
            ready = [(i, r) for i, r in pending
                     if not (set(r.inputs) & derived_targets) - done]
            if not ready:
                break  # a cycle: the rest are only checked
            for i, r in ready:
                self.derived_.append(i)
                done.add(r.column)
                pending.remove((i, r))
        dropped = {schema.constraints[i].column for i in self.derived_}

        # merged groups (fixed combinations, one-hot)
        self.merged_: list[dict[str, Any]] = []
        in_group: set[str] = set()
        names = set(schema.names)
        for i, rule in flat:
            if not isinstance(rule, (FixedCombinations, OneHot)):
                continue
            members = list(rule.columns)
            if set(members) & (in_group | dropped) or \
                    any(not schema[c].kind.is_discrete for c in members):
                continue
            name = "+".join(members)
            while name in names:
                name += "_"
            names.add(name)
            in_group |= set(members)
            keys = rule.allowed_keys() if isinstance(rule, FixedCombinations) else None
            self.merged_.append({"rule": i, "name": name, "members": members,
                                 "declared": sorted(keys) if keys is not None else None})

        # inequalities as difference columns
        self.inequalities_: list[dict[str, Any]] = []
        highs: dict[str, str] = {}
        for i, rule in flat:
            if not isinstance(rule, Inequality):
                continue
            lo, hi = rule.low, rule.high
            if {lo, hi} & (dropped | in_group) or hi in highs or _reaches(highs, lo, hi):
                continue
            if private:
                if schema[lo].nullable:
                    continue  # the low end must always be there to rebuild the high end
                plan: dict[str, Any] = {"rule": i, "low": lo, "high": hi,
                                        "strict": rule.strict, "nullable": schema[hi].nullable}
                unit, k = _declared_unit(schema, lo, hi), _declared_decimals(schema, lo, hi)
            else:
                a, ma = column_values(data, lo, schema)
                b, mb = column_values(data, hi, schema)
                if ma.any() or schema[lo].nullable:
                    continue  # the low end must always be there to rebuild the high end
                plan = {"rule": i, "low": lo, "high": hi, "strict": rule.strict,
                        "nullable": bool(mb.any() or schema[hi].nullable)}
                unit, k = _dt_unit(a, b[~mb]), _decimals(a, b[~mb])
            if schema[hi].kind == ColumnKind.DATETIME:
                plan.update(mode="datetime", unit=unit)
                plan["min"] = 1 if rule.strict else 0
            elif schema[lo].kind == schema[hi].kind == ColumnKind.INTEGER and k == 0:
                plan.update(mode="integer", min=1 if rule.strict else 0)
            else:
                plan.update(mode="float", decimals=k,
                            min=(10.0 ** -k if k is not None else 0.0) if rule.strict else 0.0)
            highs[hi] = lo
            self.inequalities_.append(plan)
        self.inequalities_ = _order_inequalities(self.inequalities_)
        self.proportional_ = self._plan_proportional(flat, dropped | in_group, highs, private)

        # constant ranges: clipped on output
        self.clips_: list[dict[str, Any]] = []
        for i, rule in flat:
            if isinstance(rule, Range) and not rule.column_ends(schema) and \
                    schema[rule.column].kind.is_numeric and rule.column not in dropped:
                const = rule.constant_ends(schema)
                is_int = schema[rule.column].kind == ColumnKind.INTEGER
                low, high = const.get("low"), const.get("high")
                if low is not None:
                    low = (math.floor(low) + 1 if rule.strict else math.ceil(low)) if is_int \
                        else (float(np.nextafter(low, np.inf)) if rule.strict else low)
                if high is not None:
                    high = (math.ceil(high) - 1 if rule.strict else math.floor(high)) if is_int \
                        else (float(np.nextafter(high, -np.inf)) if rule.strict else high)
                self.clips_.append({"rule": i, "column": rule.column, "low": low, "high": high})
        self.inner_schema_ = self._inner_schema()

    def _plan_proportional(self, flat: list[tuple[int, Constraint]], skip: set[str],
                           highs: Mapping[str, str], private: bool) -> list[dict[str, Any]]:
        """One plan per proportional rule whose columns no other reparameterisation
        rebuilds: the column is modelled as its ratio to the product of the factors. The
        rebuilt column is rounded to its declared precision (integers: whole numbers)."""
        schema = self.schema
        taken = set(skip) | set(highs) | set(highs.values())
        plans: list[dict[str, Any]] = []
        for i, rule in flat:
            if not isinstance(rule, Proportional) or set(rule.column_names) & taken:
                continue
            col = schema[rule.column]
            decimals = 0 if col.kind == ColumnKind.INTEGER else col.precision
            plans.append({"rule": i, "column": rule.column, "factors": list(rule.factors),
                          "decimals": decimals, "nullable": bool(col.nullable)})
            taken.add(rule.column)  # a factor may feed several rules, a column only one
        return plans

    def _inner_schema(self) -> Schema:
        schema = self.schema
        dropped = {schema.constraints[i].column for i in self.derived_}
        first = {g["members"][0]: g for g in self.merged_}
        grouped = {c for g in self.merged_ for c in g["members"]}
        diffs = {p["high"]: p for p in self.inequalities_}
        ratios = {p["column"]: p for p in self.proportional_}
        columns = []
        for col in schema.columns:
            if col.name in dropped:
                continue
            if col.name in first:
                g = first[col.name]
                columns.append(Column(g["name"], ColumnKind.CATEGORICAL, dtype="object",
                                      categories=None if g["declared"] is None
                                      else tuple(g["declared"]),
                                      public=g["declared"] is not None,
                                      description=f"merged {g['members']} (constraint)"))
                continue
            if col.name in grouped:
                continue
            if col.name in diffs:
                p = diffs[col.name]
                kind = ColumnKind.CONTINUOUS if p["mode"] == "float" else ColumnKind.INTEGER
                columns.append(Column(col.name, kind, dtype="float64", nullable=p["nullable"],
                                      min=p["min"], pii=col.pii,
                                      description=f"{p['high']} - {p['low']} (constraint)"))
                continue
            if col.name in ratios:  # the ratio: missing where the product is 0 or missing
                r = ratios[col.name]
                columns.append(Column(col.name, ColumnKind.CONTINUOUS, dtype="float64",
                                      nullable=True, pii=col.pii,
                                      description=f"{col.name} / ({' × '.join(r['factors'])}) "
                                                  "(constraint)"))
                continue
            columns.append(col)
        if not columns:
            raise ConfigError("every column is derived from others by a constraint; nothing "
                              "is left to learn")
        return Schema(columns=tuple(columns), name=schema.name)

    # -- the table and its inner form -------------------------------------------------------
    def forward(self, data: pd.DataFrame) -> pd.DataFrame:
        """The inner table the transformer learns."""
        schema = self.schema
        out = {c.name: data[c.name] for c in schema.columns}
        for p in self.inequalities_:
            a, _ = column_values(data, p["low"], schema)
            b, mb = column_values(data, p["high"], schema)
            if p["mode"] == "datetime":
                d = ((b - a) // p["unit"]).astype(float)
            elif p["mode"] == "integer":
                d = np.rint(b - a)
            else:
                d = b - a if p["decimals"] is None else np.round(b - a, p["decimals"])
            out[p["high"]] = pd.Series(np.where(mb, np.nan, d), index=data.index)
        for r in self.proportional_:
            rule = schema.constraints[r["rule"]]
            values, missing = column_values(data, r["column"], schema)
            prod = rule.product(data, schema)
            ok = ~missing & np.isfinite(prod) & (prod != 0)
            ratio = np.divide(values, prod, out=np.full(len(data), np.nan), where=ok)
            ratio[~missing & (prod == 0)] = 0.0  # 0 for 0, told apart from a missing value
            out[r["column"]] = pd.Series(ratio, index=data.index)
        for g in self.merged_:
            out[g["name"]] = combination_keys(data, tuple(g["members"]))
        return pd.DataFrame({c.name: out[c.name] for c in self.inner_schema_.columns},
                            index=data.index)

    def inverse(self, inner: pd.DataFrame) -> pd.DataFrame:
        """The user's table from inner rows; rules reparameterised here hold exactly."""
        schema = self.schema
        inner = inner.reset_index(drop=True)
        out: dict[str, pd.Series] = {c: inner[c] for c in inner.columns}
        for g in self.merged_:
            keys = inner[g["name"]]
            codes, uniq = pd.factorize(keys, use_na_sentinel=False)
            rows = [json.loads(k) if isinstance(k, str) else [None] * len(g["members"])
                    for k in uniq]
            for j, member in enumerate(g["members"]):
                values = np.array([r[j] for r in rows] + [None], dtype=object)
                series = pd.Series(values[codes] if len(codes) else [], dtype=object)
                out[member] = _restore(series, schema[member])
            del out[g["name"]]
        frame = pd.DataFrame(out)
        for p in self.inequalities_:
            d = pd.to_numeric(inner[p["high"]], errors="coerce").to_numpy(dtype=float,
                                                                          na_value=np.nan)
            md = np.isnan(d)
            d = np.maximum(np.where(md, p["min"], d), p["min"])  # post-processing: always >= min
            a, _ = column_values(frame, p["low"], schema)
            col = schema[p["high"]]
            if p["mode"] == "datetime":
                ns = a + np.rint(d).astype(np.int64) * p["unit"]
                frame[p["high"]] = _format_datetime(ns, md, col)
                continue
            if p["mode"] == "integer":
                b = a + np.rint(d)
            else:
                b = a + d
                if p["decimals"] is not None:
                    b = np.round(b, p["decimals"])
            frame[p["high"]] = _restore(pd.Series(np.where(md, np.nan, b)), col)
        for r in self.proportional_:
            frame[r["column"]] = self._rebuild_proportional(r, inner, frame)
        for c in self.clips_:
            col = schema[c["column"]]
            x, mx = column_values(frame, c["column"], schema)
            x = np.clip(x, -np.inf if c["low"] is None else c["low"],
                        np.inf if c["high"] is None else c["high"])
            frame[c["column"]] = _restore(pd.Series(np.where(mx, np.nan, x)), col)
        for i in self.derived_:
            rule = schema.constraints[i]
            values = rule.compute(frame, schema, self.tables_.get(i))
            frame[rule.column] = _restore(values.reset_index(drop=True), schema[rule.column])
        for i in self.row_repairs:  # event flags, time-derived columns, conditionals: recomputed
            frame, _ = schema.constraints[i].repair(frame, schema)
        return frame[schema.names]

    def _rebuild_proportional(self, plan: Mapping[str, Any], inner: pd.DataFrame,
                              frame: pd.DataFrame) -> pd.Series:
        """``column = ratio × product`` (0 where the product is 0); where the ratio or a
        factor is missing the column is missing -- or, for a column declared not nullable,
        the product itself (ratio 1, the rule's neutral value), or 0 without a product."""
        schema = self.schema
        rule = schema.constraints[plan["rule"]]
        ratio = pd.to_numeric(inner[plan["column"]], errors="coerce").to_numpy(
            dtype=float, na_value=np.nan)
        prod = rule.product(frame, schema)
        value = ratio * prod
        if not plan["nullable"]:
            usable = np.isfinite(prod) & (prod != 0)
            value = np.where(np.isnan(value), np.where(usable, prod, 0.0), value)
        if plan["decimals"] is not None:
            value = np.round(value, plan["decimals"])
        return _restore(pd.Series(value), schema[plan["column"]])

    @property
    def row_repairs(self) -> list[int]:
        """Row-level rules fixed in :meth:`inverse` by recomputing a column (event flags,
        time-derived columns with a baseline column, conditionals with a unique fix);
        rules grouped by patient are left to the relational synthesizer, which sees whole
        histories."""
        return [i for i, r in enumerate(self.schema.constraints)
                if isinstance(r, HistoryRule) and not r.needs_group and r.can_repair]

    # -- checking ----------------------------------------------------------------------------
    def _rule_violations(self, i: int, rule: Constraint, df: pd.DataFrame) -> np.ndarray:
        if isinstance(rule, FixedCombinations) and i in self.allowed_:
            return rule.violations(df, self.schema, allowed=set(self.allowed_[i]))
        if isinstance(rule, Derived) and i in self.tables_:
            return rule.violations(df, self.schema, table=self.tables_[i])
        return rule.violations(df, self.schema)

    def violation_counts(self, df: pd.DataFrame) -> dict[str, int]:
        """Rows breaking each declared rule (keyed by its description)."""
        return {rule.describe(): int(self._rule_violations(i, rule, df).sum())
                for i, rule in enumerate(self.schema.constraints)}

    def _exact_rules(self) -> set[int]:
        """Rules whose every part is enforced exactly by ``inverse`` (merged groups,
        recomputed derived columns, clipped constant ranges, integer/datetime/decimal
        differences; a strict float difference without a grid may still tie)."""
        parts: dict[int, list[bool]] = {}
        for g in self.merged_:
            parts.setdefault(g["rule"], []).append(True)
        for i in self.derived_:
            parts.setdefault(i, []).append(True)
        for c in self.clips_:
            parts.setdefault(c["rule"], []).append(True)
        for i in self.row_repairs:  # a conditional's fix may break another: re-checked
            if not isinstance(self.schema.constraints[i], Conditional):
                parts.setdefault(i, []).append(True)
        for p in self.inequalities_:
            exact = p["mode"] != "float" or p["decimals"] is not None or not p["strict"]
            parts.setdefault(p["rule"], []).append(exact)
        for r in self.proportional_:  # a product of 0 gives 0: never a violation
            parts.setdefault(r["rule"], []).append(True)
        n_parts: dict[int, int] = {}
        for j, _ in _flatten(self.schema):
            n_parts[j] = n_parts.get(j, 0) + 1
        return {i for i, flags in parts.items() if all(flags) and len(flags) == n_parts[i]}

    def reparameterised(self) -> list[str]:
        """Descriptions of the rules enforced by construction."""
        idx = {p["rule"] for p in self.inequalities_} | {g["rule"] for g in self.merged_} | \
            {c["rule"] for c in self.clips_} | set(self.derived_) | \
            {r["rule"] for r in self.proportional_}
        return [self.schema.constraints[i].describe() for i in sorted(idx)]

    # -- sampling ------------------------------------------------------------------------------
    def inner_conditions(self, conditions: Mapping[str, Any] | None,
                         categories: Callable[[str], list[Any]],
                         ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """(plain conditions, {merged column: allowed keys}) for the inner table."""
        plain: dict[str, Any] = {}
        groups: dict[str, list[str]] = {}
        if not conditions:
            return plain, groups
        member_of = {m: g for g in self.merged_ for m in g["members"]}
        dropped = {self.schema.constraints[i].column for i in self.derived_}
        for column, value in conditions.items():
            if column in dropped:
                raise ConfigError(f"condition on {column!r}: it is derived from other columns "
                                  "by a constraint; condition on those columns instead")
            if column not in member_of:
                plain[column] = value
        for g in self.merged_:
            conds = {m: conditions[m] for m in g["members"] if m in conditions}
            if not conds:
                continue
            keys = [k for k in categories(g["name"]) if isinstance(k, str)
                    and _matches(json.loads(k), g["members"], conds)]
            if not keys:
                raise ConfigError(f"conditions {conds} match no combination of "
                                  f"{g['members']} seen in training (fixed by constraint "
                                  f"{self.schema.constraints[g['rule']].describe()!r})")
            groups[g["name"]] = keys
        return plain, groups

    def sample(self, draw_inner: DrawInner, n: int, rng: np.random.Generator, *,
               conditions: Mapping[str, Any] | None = None,
               categories: Callable[[str], list[Any]] = lambda name: []) -> pd.DataFrame:
        """Draw ``n`` rows that obey every declared rule (bounded reject-and-resample)."""
        plain, groups = self.inner_conditions(conditions, categories)
        plans = self._condition_mixture(draw_inner, plain, groups, n, rng)
        shares = np.array([s for _, s in plans])

        def draw(m: int) -> pd.DataFrame:
            if len(plans) == 1:
                return self.inverse(draw_inner(m, plans[0][0] or None))
            counts = rng.multinomial(m, shares)
            parts = [self.inverse(draw_inner(int(c), cond)) for (cond, _), c
                     in zip(plans, counts) if c]
            both = pd.concat(parts, ignore_index=True)
            return both.iloc[rng.permutation(len(both))].reset_index(drop=True)

        exact = self._exact_rules()  # hold by construction: not re-checked
        rules = [(i, r) for i, r in enumerate(self.schema.constraints) if i not in exact]
        uniques = [(i, r) for i, r in rules if isinstance(r, Unique)]
        others = [(i, r) for i, r in rules if not isinstance(r, Unique)]
        broken = np.zeros(len(self.schema.constraints), dtype=np.int64)
        pool: pd.DataFrame | None = None
        drawn, m = 0, n
        for _ in range(MAX_ROUNDS):
            batch = draw(m)
            drawn += m
            bad = np.zeros(len(batch), dtype=bool)
            for i, rule in others:
                mask = self._rule_violations(i, rule, batch)
                broken[i] += int(mask.sum())
                bad |= mask
            batch = batch[~bad]
            pool = batch if pool is None else pd.concat([pool, batch], ignore_index=True)
            for i, rule in uniques:
                dup = rule.violations(pool, self.schema)
                broken[i] += int(dup.sum())
                pool = pool[~dup].reset_index(drop=True)
            have = len(pool)
            if have >= n:
                return pool.iloc[:n].reset_index(drop=True)
            rate = max(have, 1) / drawn
            m = int(min(math.ceil((n - have) / rate * 1.2) + 16, MAX_DRAW_FACTOR * n + 1000))
        worst = int(np.argmax(broken))
        rule = self.schema.constraints[worst]
        raise ConfigError(f"could not sample {n} rows that meet the constraints in {MAX_ROUNDS} "
                          f"rounds: {len(pool) if pool is not None else 0} of {drawn} drawn rows "
                          f"qualified; constraint {rule.describe()!r} ({rule.kind}) broke "
                          f"{int(broken[worst])} of them. Check the rule can hold for {n} rows "
                          "(e.g. unique over few categories), loosen it, or train longer")

    def _condition_mixture(self, draw_inner: DrawInner, plain: dict[str, Any],
                           groups: dict[str, list[str]], n: int,
                           rng: np.random.Generator) -> list[tuple[dict[str, Any], float]]:
        if not groups:
            return [(plain, 1.0)]
        names = list(groups)
        combos = [tuple(k) for k in _product([groups[g] for g in names])]
        if len(combos) == 1:
            return [(plain | dict(zip(names, combos[0])), 1.0)]
        pilot = draw_inner(max(500, min(n, 2000)), plain or None)
        seen = pd.Series(list(zip(*(pilot[g] for g in names)))).value_counts()
        weights = np.array([float(seen.get(c, 0)) for c in combos])
        if weights.sum() == 0:
            weights = np.ones(len(combos))
        weights /= weights.sum()
        return [(plain | dict(zip(names, c)), float(w)) for c, w in zip(combos, weights) if w > 0]

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "inner_schema": self.inner_schema_.to_dict(),
                "merged": self.merged_, "inequalities": self.inequalities_,
                "proportional": self.proportional_,
                "clips": self.clips_, "derived": self.derived_,
                "tables": {str(i): {k: to_native(v) for k, v in t.items()}
                           for i, t in self.tables_.items()},
                "allowed": {str(i): keys for i, keys in self.allowed_.items()}}

    @classmethod
    def from_state(cls, schema: Schema, state: Mapping[str, Any]) -> ConstraintEnforcer:
        if state.get("version") != STATE_VERSION:
            raise DataError(f"constraint state version {state.get('version')} is not supported")
        enf = cls(schema)
        enf.merged_ = list(state["merged"])
        enf.inequalities_ = list(state["inequalities"])
        enf.proportional_ = list(state.get("proportional", []))  # absent before the kind
        enf.clips_ = list(state["clips"])
        enf.derived_ = [int(i) for i in state["derived"]]
        enf.tables_ = {int(i): dict(t) for i, t in state["tables"].items()}
        enf.allowed_ = {int(i): list(k) for i, k in state["allowed"].items()}
        enf.inner_schema_ = Schema.from_dict(state["inner_schema"], where="constraint state")
        return enf


def apply_real_policy(data: pd.DataFrame, schema: Schema, *, table: str | None = None
                      ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Apply each declared rule's ``on_real_violation`` (``drop``/``repair``) to the real
    ``data``; rules left at ``error`` are refused later by the enforcer. Returns the data
    and one ``{"rule", "table", "policy", "rows"}`` entry per rule with a policy (rows: how
    many real rows broke it)."""
    out = data.reset_index(drop=True)
    done: list[dict[str, Any]] = []
    for rule in schema.constraints:
        if rule.on_real_violation == "error":
            continue
        bad = rule.violations(out, schema)
        done.append({"rule": rule.describe(), "table": table or schema.name,
                     "policy": rule.on_real_violation, "rows": int(bad.sum())})
        if not bad.any():
            continue
        if rule.on_real_violation == "drop":
            out = out.loc[~bad].reset_index(drop=True)
        else:
            out, _ = rule.repair(out, schema)
    return out, done


def fit_enforcer(schema: Schema, data: pd.DataFrame, *, private: bool = False
                 ) -> ConstraintEnforcer | None:
    """An enforcer fitted on ``data``, or None when the schema declares no constraints."""
    if not schema.constraints:
        return None
    return ConstraintEnforcer(schema).fit(data, private=private)


def _learn_table(data: pd.DataFrame, rule: Derived) -> dict[str, Any]:
    keys = combination_keys(data, rule.inputs)
    frame = pd.DataFrame({"k": keys.to_numpy(), "v": combination_keys(data, (rule.column,)).to_numpy()})
    table: dict[str, Any] = {}
    counts = frame.groupby("k", sort=False)["v"].nunique()
    if (counts > 1).any():
        mode = frame.groupby("k", sort=False)["v"].agg(lambda v: v.value_counts().index[0])
        total = int((frame["v"] != frame["k"].map(mode)).sum())
        k = counts.index[counts > 1][0]
        raise DataError(f"the training data breaks constraint {rule.describe()!r} (derived) in "
                        f"{total} of {len(data)} row(s): input {k} (and maybe others) gives more "
                        "than one value; fix the data or remove the rule from the schema")
    first = frame.drop_duplicates("k")
    for k, v in zip(first["k"], first["v"]):
        table[k] = json.loads(v)[0]
    return table


def _reaches(highs: dict[str, str], start: str, target: str) -> bool:
    """Whether following high→low links from ``start`` reaches ``target`` (a cycle)."""
    seen = set()
    node: str | None = start
    while node is not None and node not in seen:
        if node == target:
            return True
        seen.add(node)
        node = highs.get(node)
    return False


def _order_inequalities(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    highs = {p["high"] for p in plans}
    ordered, done, pending = [], set(), list(plans)
    while pending:
        for p in list(pending):
            if p["low"] not in highs or p["low"] in done:
                ordered.append(p)
                done.add(p["high"])
                pending.remove(p)
    return ordered


def _matches(values: list[Any], members: list[str], conds: Mapping[str, Any]) -> bool:
    return all(row_key([values[members.index(m)]]) == row_key([v]) for m, v in conds.items())


def _product(lists: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for options in lists:
        out = [o + [x] for o in out for x in options]
    return out


__all__ = ["ConstraintEnforcer", "MAX_ROUNDS", "apply_real_policy", "fit_enforcer"]
