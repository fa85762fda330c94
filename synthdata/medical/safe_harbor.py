"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of the columns a schema marks.

Which columns are touched, and as what identifier type:

1. ``policy.types`` — an explicit ``{column: type}`` mapping — wins;
2. otherwise columns the schema marks ``pii: direct`` or ``pii: quasi`` get a type from their
   name (``zip``/``postal`` -> zip, ``dob``/``*date*`` -> date, ``age`` -> age, ``email``, ``phone``,
   ``ssn``, ``mrn``, ``name``, ...); a ``direct`` column with no recognisable name is ``other_id``
   (dropped); a ``quasi`` column with no recognisable name is left as it is;
3. ``text`` columns (schema kind) are ``free_text`` unless listed in ``policy.safe_text``.

A column marked ``pii: none`` (reviewed, not an identifier) is left as it is unless
``policy.types`` names it. Which columns *look* like identifiers (by name and values) is
:mod:`synthdata.medical.identifiers`; the pipeline step checks its findings against the marks.

Rules per type:

- names, street/city (``geo``), phone, fax, e-mail, SSN, MRN, health-plan/account/licence/
  vehicle/device numbers, URLs, IPs, biometrics, photos, other ids: dropped, or with
  ``policy.identifiers="pseudonym"`` replaced by random codes (``"ID-000042"``) that are not
  derived from the value (a Safe Harbor re-identification code may not be); equal values get
  equal codes within one call, so a pseudonymised MRN still links rows of one patient;
- ``zip``: the first three digits, or ``"000"`` for the 17 three-digit areas with 20,000 people or
  fewer (2000 Census, as listed by HHS guidance) — ``policy.restricted_zip3`` to update the list;
- ``date``: the year only (``policy.dates="year"``), or every date of a patient shifted by the same
  random number of days (``policy.dates="shift"``, needs ``policy.patient_column``), which keeps
  intervals within a patient. A date shift is *not* Safe Harbor (it keeps month and day
  information); it is the usual expert-determination practice and the log says so;
- ``birth_date``: the year only, and missing when the person would be over 89 in
  ``policy.reference_year`` (default: the latest year among the data's own dates, not the year
  of the run) (ages over 89 and birth years revealing them are aggregated);
- ``age``: values over 89 become 90, meaning "90 or older";
- ``free_text``: dropped unless the column is in ``policy.safe_text``.

Everything done is recorded in a :class:`DeidLog` (JSON-able, for the run report).

Linked tables (:func:`deidentify_tables`): each table by its own schema; a date shift is drawn
once per patient (a root row) and applied to that patient's rows in every table, and keys marked
as identifiers are replaced by codes shared by the columns that link to them (never dropped).
Pipelines run this before fitting (``deid:`` block, :mod:`synthdata.pipeline.deid`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from synthdata._rng import make_rng
from synthdata.errors import ConfigError, DataError, SchemaError
from synthdata.schema.model import Column, ColumnKind, PiiRole, Schema

if TYPE_CHECKING:
    from synthdata.relational.schema import MultiTableSchema


class IdentifierType(str, Enum):
    """The Safe Harbor identifier types a column can hold (plus age, free text and other ids)."""

    NAME = "name"
    GEO = "geo"                 # street address, city, county, precinct: units below a state
    ZIP = "zip"
    DATE = "date"               # admission, discharge, death, visit ... dates
    BIRTH_DATE = "birth_date"
    AGE = "age"
    PHONE = "phone"
    FAX = "fax"
    EMAIL = "email"
    SSN = "ssn"
    MRN = "mrn"
    HEALTH_PLAN = "health_plan"
    ACCOUNT = "account"
    LICENSE = "license"
    VEHICLE = "vehicle"
    DEVICE = "device"
    URL = "url"
    IP = "ip"
    BIOMETRIC = "biometric"
    PHOTO = "photo"
    OTHER_ID = "other_id"
    FREE_TEXT = "free_text"


# ZIP3 areas with 20,000 or fewer people (2000 Census), as listed in HHS de-identification guidance.
RESTRICTED_ZIP3 = ("036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830",
                   "831", "878", "879", "884", "890", "893")

_DROP_TYPES = frozenset(IdentifierType) - {IdentifierType.ZIP, IdentifierType.DATE,
                                            IdentifierType.BIRTH_DATE, IdentifierType.AGE,
                                            IdentifierType.FREE_TEXT}
# Name heuristics, tried in order on the lower-cased column name.
_NAME_RULES: tuple[tuple[str, IdentifierType], ...] = (
    (r"(^|[_.\s-])(zip|zipcode|postal|postcode|postal_code)($|[_.\s-])|zip", IdentifierType.ZIP),
    (r"(birth|dob)", IdentifierType.BIRTH_DATE),
    (r"(^|[_.\s-])age($|[_.\s-])|^age", IdentifierType.AGE),
    (r"e-?mail", IdentifierType.EMAIL),
    (r"(^|[_.\s-])fax", IdentifierType.FAX),
    (r"(phone|tel($|[_.\s-])|mobile)", IdentifierType.PHONE),
    (r"(ssn|social_?security)", IdentifierType.SSN),
    (r"(mrn|medical_?record|record_?n)", IdentifierType.MRN),
    (r"(^|[_.\s-])(url|website|homepage)", IdentifierType.URL),
    (r"(^|[_.\s-])(ip|ip_?address)($|[_.\s-])", IdentifierType.IP),
    (r"(device|serial|imei|udi)", IdentifierType.DEVICE),
    (r"(date|_dt$|^dt_|time_?stamp)", IdentifierType.DATE),
    (r"(address|street|city|county|precinct|town|geo)", IdentifierType.GEO),
    (r"(name|surname)", IdentifierType.NAME),
)


def guess_identifier_type(column: str) -> IdentifierType | None:
    """Identifier type suggested by a column name, or None."""
    low = column.lower()
    for pattern, kind in _NAME_RULES:
        if re.search(pattern, low):
            return kind
    return None


@dataclass(frozen=True)
class DeidPolicy:
    """How to de-identify.

    Parameters
    ----------
    types
        ``{column: identifier type}`` (an :class:`IdentifierType` or its value); wins over the
        schema and the name heuristics. Use it for columns the schema does not mark.
    identifiers
        ``"drop"`` (default) or ``"pseudonym"`` for names, numbers, addresses and other ids.
    dates
        ``"year"`` (Safe Harbor) or ``"shift"`` (per-patient shift keeping intervals).
    patient_column
        The column that identifies a patient (needed for ``dates="shift"``).
    max_shift_days
        Shifts are drawn uniformly from ``[-max_shift_days, max_shift_days]``.
    reference_year
        Birth years implying an age over 89 in this year are removed. None (default): the
        latest year among the table's own dates (:func:`latest_year`); a table with a birth
        date and no other date then needs it set.
    safe_text
        Free-text columns declared free of identifiers (kept).
    restricted_zip3
        Three-digit ZIP areas replaced by ``"000"``.
    seed
        Seed for date shifts and pseudonyms.
    """

    types: Mapping[str, IdentifierType | str] = field(default_factory=dict)
    identifiers: str = "drop"
    dates: str = "year"
    patient_column: str | None = None
    max_shift_days: int = 365
    reference_year: int | None = None
    safe_text: tuple[str, ...] = ()
    restricted_zip3: tuple[str, ...] = RESTRICTED_ZIP3
    seed: int | None = 0

    def validate(self) -> None:
        if self.identifiers not in ("drop", "pseudonym"):
            raise ConfigError(f"policy.identifiers is {self.identifiers!r}; use 'drop' or 'pseudonym'")
        if self.dates not in ("year", "shift"):
            raise ConfigError(f"policy.dates is {self.dates!r}; use 'year' or 'shift'")
        if self.dates == "shift" and not self.patient_column:
            raise ConfigError("policy.dates='shift' needs policy.patient_column (the column that "
                              "identifies a patient, so all of a patient's dates move together)")
        if isinstance(self.max_shift_days, bool) or not isinstance(self.max_shift_days, int) \
                or self.max_shift_days < 1:
            raise ConfigError(f"policy.max_shift_days must be a positive integer, got "
                              f"{self.max_shift_days!r}")
        for column, kind in self.types.items():
            try:
                IdentifierType(kind)
            except ValueError:
                raise ConfigError(f"policy.types[{column!r}] is {kind!r}; choose one of "
                                  f"{[t.value for t in IdentifierType]}") from None
        bad = [z for z in self.restricted_zip3 if not re.fullmatch(r"\d{3}", str(z))]
        if bad:
            raise ConfigError(f"policy.restricted_zip3 has entries that are not 3 digits: {bad}")


@dataclass(frozen=True)
class DeidAction:
    """One rule applied to one column."""

    column: str
    identifier_type: str
    rule: str
    n_rows: int
    n_changed: int
    source: str          # "policy", "schema+name", "schema", "kind:text", "link key"
    note: str = ""
    table: str | None = None  # set for linked tables (deidentify_tables)


@dataclass
class DeidLog:
    """What :func:`deidentify` did, per column; JSON-able for the report."""

    actions: list[DeidAction] = field(default_factory=list)
    unmarked_suspects: dict[str, str] = field(default_factory=dict)
    safe_harbor: bool = True

    @property
    def dropped_columns(self) -> list[str]:
        return [a.column for a in self.actions if a.rule == "drop"]

    def to_dict(self) -> dict[str, Any]:
        return {"method": "HIPAA Safe Harbor" if self.safe_harbor
                else "Safe Harbor rules with a per-patient date shift (expert determination, "
                     "not Safe Harbor)",
                "actions": [asdict(a) for a in self.actions],
                "dropped_columns": self.dropped_columns,
                "unmarked_suspects": dict(self.unmarked_suspects)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def apply_to_schema(self, schema: Schema) -> Schema:
        """The schema of the de-identified table: dropped columns removed, kinds updated.

        Constraints naming a dropped column go with it; the others are kept (a year or a
        per-patient shift keeps the order of two dates of one row).
        """
        by_column = {a.column: a for a in self.actions}
        columns: list[Column] = []
        for col in schema.columns:
            action = by_column.get(col.name)
            if action is None:
                columns.append(col)
            elif action.rule == "drop":
                continue
            elif action.rule in ("year", "birth_year"):
                columns.append(Column(col.name, ColumnKind.INTEGER, dtype="Int64", nullable=True,
                                      pii=col.pii, description=col.description))
            elif action.rule in ("zip3", "pseudonym"):
                kind = ColumnKind.CATEGORICAL if action.rule == "zip3" else ColumnKind.ID
                columns.append(Column(col.name, kind, dtype="object", nullable=col.nullable,
                                      pii=col.pii, description=col.description))
            elif action.rule == "top_code_90":
                cats = None if col.categories is None else tuple(dict.fromkeys(
                    90 if _is_number(c) and c > 89 else c for c in col.categories))
                columns.append(replace(col, max=None if col.max is None else min(col.max, 90),
                                       categories=cats))
            elif action.rule == "date_shift":  # bounds of the unshifted dates would leak
                columns.append(replace(col, min=None, max=None))
            else:
                columns.append(col)
        names = {c.name for c in columns}
        if schema.primary_key is not None and schema.primary_key not in names:
            schema = replace(schema, primary_key=None)
        try:
            return schema.replace_columns(columns)
        except SchemaError:  # a rule no longer fits a transformed column (e.g. date -> year)
            changed = {a.column for a in self.actions if a.rule != "keep"}
            fits = lambda rules: tuple(r for r in rules  # noqa: E731
                                       if not set(r.names_in(schema)) & changed)
            schema = replace(schema, constraints=fits(schema.constraints),
                             proposed_constraints=fits(schema.proposed_constraints))
            return schema.replace_columns(columns)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def deidentify(df: pd.DataFrame, schema: Schema, *, policy: DeidPolicy | None = None,
               shifts: pd.Series | None = None) -> tuple[pd.DataFrame, DeidLog]:
    """Apply Safe Harbor rules to the identifier columns of ``df``; return a new frame and the log.

    ``shifts`` (days per row, aligned with ``df``) replaces the per-patient draw of
    ``dates="shift"``: :func:`deidentify_tables` passes one patient's shift to all their tables.

    Examples
    --------
    >>> policy = DeidPolicy(types={"zip": "zip", "admit": "date"}, reference_year=2024)
    >>> clean, log = deidentify(df, schema, policy=policy)          # doctest: +SKIP
    >>> log.to_dict()["actions"][0]["rule"]                          # doctest: +SKIP
    'zip3'
    """
    policy = policy or DeidPolicy()
    policy.validate()
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"deidentify() expects a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in policy.types if c not in df.columns]
    if missing:
        raise ConfigError(f"policy.types names column(s) {missing} that the data does not have; "
                          f"columns are {list(df.columns)}")
    plan = _plan(df, schema, policy)
    if policy.dates == "shift" and any(t == IdentifierType.DATE for t, _ in plan.values()):
        if policy.patient_column not in df.columns:
            raise ConfigError(f"policy.patient_column {policy.patient_column!r} is not a column; "
                              f"columns are {list(df.columns)}")
    reference_year, year_source = policy.reference_year, "policy.reference_year"
    if any(t == IdentifierType.BIRTH_DATE for t, _ in plan.values()) and reference_year is None:
        reference_year = latest_year(df, schema, plan)
        year_source = "the latest year among the table's own dates"
        if reference_year is None:
            raise ConfigError("a birth_date column needs a reference year (the year ages are "
                              "computed for, to remove birth years of people over 89) and the "
                              "table has no other date to take it from; set policy.reference_year "
                              "(deid.reference_year in a pipeline)")
    rng = make_rng(policy.seed)
    out = df.copy()
    log = DeidLog(safe_harbor=not (policy.dates == "shift"
                                   and any(t == IdentifierType.DATE for t, _ in plan.values())))
    n = len(df)
    for column, (kind, source) in plan.items():
        values = df[column]
        if kind == IdentifierType.FREE_TEXT:
            if column in policy.safe_text:
                log.actions.append(DeidAction(column, kind.value, "keep", n, 0, source,
                                              "declared safe in policy.safe_text"))
                continue
            out = out.drop(columns=[column])
            log.actions.append(DeidAction(column, kind.value, "drop", n, int(values.notna().sum()),
                                          source, "free text may hold any identifier"))
        elif kind in _DROP_TYPES:
            if policy.identifiers == "pseudonym":
                out[column], changed = _pseudonyms(values, rng)
                log.actions.append(DeidAction(column, kind.value, "pseudonym", n, changed, source,
                                              "random codes, not derived from the values"))
            else:
                out = out.drop(columns=[column])
                log.actions.append(DeidAction(column, kind.value, "drop", n,
                                              int(values.notna().sum()), source))
        elif kind == IdentifierType.ZIP:
            out[column], changed, restricted = _zip3(values, policy.restricted_zip3, column)
            log.actions.append(DeidAction(column, kind.value, "zip3", n, changed, source,
                                          f"first 3 digits kept; {restricted} value(s) in restricted "
                                          "3-digit areas (population <= 20,000) set to '000'"))
        elif kind == IdentifierType.AGE:
            out[column], changed = _top_code_age(values, column)
            log.actions.append(DeidAction(column, kind.value, "top_code_90", n, changed, source,
                                          "ages over 89 set to 90, meaning '90 or older'"))
        elif kind == IdentifierType.BIRTH_DATE:
            years = _parse_dates(values, column).dt.year.astype("Int64")
            old = (reference_year - years) > 89
            old = old.fillna(False).astype(bool)
            years = years.mask(old)
            out[column] = years
            log.actions.append(DeidAction(column, kind.value, "birth_year", n,
                                          int(values.notna().sum()), source,
                                          f"year only; {int(old.sum())} birth year(s) implying an age "
                                          f"over 89 in {reference_year} ({year_source}) removed"))
        elif kind == IdentifierType.DATE:
            parsed = _parse_dates(values, column)
            if policy.dates == "year":
                out[column] = parsed.dt.year.astype("Int64")
                log.actions.append(DeidAction(column, kind.value, "year", n, int(parsed.notna().sum()),
                                              source, "all date elements except the year removed"))
            else:
                if shifts is None:
                    shifts = _patient_shifts(df[policy.patient_column], policy.max_shift_days, rng)
                elif len(shifts) != n or shifts.isna().any():
                    raise DataError(f"shifts must give a number of days for each of the {n} rows "
                                    f"(got {len(shifts)} values, {int(shifts.isna().sum())} missing)")
                shifted = parsed + pd.to_timedelta(shifts.to_numpy(), unit="D")
                out[column] = _restore_format(shifted, values, schema, column)
                log.actions.append(DeidAction(
                    column, kind.value, "date_shift", n, int(parsed.notna().sum()), source,
                    f"one random shift in [-{policy.max_shift_days}, {policy.max_shift_days}] days per "
                    f"{policy.patient_column}; intervals kept; not Safe Harbor (expert determination)"))
    for column in df.columns:
        if column in plan or (column in schema and schema[column].pii == PiiRole.NONE):
            continue
        guess = guess_identifier_type(column)
        if guess is not None:
            log.unmarked_suspects[column] = (f"looks like {guess.value}; not marked pii in the schema "
                                             "nor listed in policy.types, so left unchanged")
    return out, log


def latest_year(df: pd.DataFrame, schema: Schema,
                plan: Mapping[str, tuple[IdentifierType, str]] | None = None) -> int | None:
    """The latest year among the table's dates other than birth dates, or None.

    The dates are the columns typed ``date`` in ``plan`` and the schema's datetime columns
    (birth dates excluded). This is the Safe Harbor reference year for "ages over 89": the
    data's own time, not the year the pipeline happens to run.
    """
    plan = _plan(df, schema, DeidPolicy()) if plan is None else plan
    columns = [c for c, (t, _) in plan.items() if t == IdentifierType.DATE]
    columns += [c.name for c in schema.columns if c.kind == ColumnKind.DATETIME and c.name in df
                and c.name not in plan and guess_identifier_type(c.name) != IdentifierType.BIRTH_DATE]
    years = []
    for column in columns:
        parsed = pd.to_datetime(df[column], errors="coerce", format="mixed") \
            if not pd.api.types.is_datetime64_any_dtype(df[column]) else df[column]
        if parsed.notna().any():
            years.append(int(parsed.max().year))
    return max(years) if years else None


def identifier_plan(df: pd.DataFrame, schema: Schema, policy: DeidPolicy | None = None
                    ) -> dict[str, IdentifierType]:
    """The identifier type :func:`deidentify` would give each column it touches (reads names only)."""
    return {c: kind for c, (kind, _) in _plan(df, schema, policy or DeidPolicy()).items()}


def deidentify_tables(tables: Mapping[str, pd.DataFrame], schema: MultiTableSchema, *,
                      policy: DeidPolicy | None = None
                      ) -> tuple[dict[str, pd.DataFrame], MultiTableSchema, dict[str, DeidLog]]:
    """De-identify linked tables, each by its own schema, keeping links and per-patient intervals.

    - ``policy.types`` and ``policy.safe_text`` name columns as ``table.column``.
    - A patient is a row of the root table; a child row belongs to the patient its links lead
      to. With ``dates="shift"`` all dates of one patient, in every table, move by the same
      number of days. ``policy.patient_column`` may be left out (the root table's primary key
      is the patient) or name that key.
    - Keys (primary keys and link columns) are never dropped: a key marked as an identifier
      (``pii: direct``/``quasi`` with an identifier name, or in ``policy.types``) gets random
      codes shared by every column that links to it, so links hold. Synthetic keys are
      regenerated in any case.

    Returns the new tables, the schema of the de-identified tables and one log per table.
    """
    from synthdata.relational.schema import MultiTableSchema

    if not isinstance(schema, MultiTableSchema):
        raise ConfigError(f"deidentify_tables() needs a MultiTableSchema, got {type(schema).__name__}")
    policy = policy or DeidPolicy()
    order = schema.order()
    roots = [t for t in order if schema.parent_link(t) is None]
    if policy.patient_column is not None:
        root_keys = [f"{t}.{k}" for t in roots for k in schema.primary_keys.get(t, ())]
        if policy.patient_column not in root_keys and \
                policy.patient_column not in [k.split(".", 1)[1] for k in root_keys]:
            raise ConfigError(f"policy.patient_column is {policy.patient_column!r}; with linked "
                              f"tables the patient is the root table's key ({root_keys}): name it or "
                              "leave it out")
    replace(policy, patient_column=policy.patient_column or "<root key>").validate()
    types = _by_table(policy.types, schema, "policy.types")
    safe = _by_table({c: True for c in policy.safe_text}, schema, "policy.safe_text")
    rng = make_rng(policy.seed)
    out = {t: tables[t] for t in order}
    if policy.reference_year is None:  # the latest date of any table, for every table
        years = [latest_year(tables[t], schema.tables[t],
                             _plan(tables[t], schema.tables[t], DeidPolicy(types=types[t])))
                 for t in order]
        known = [y for y in years if y is not None]
        if known:
            policy = replace(policy, reference_year=max(known))
    key_actions, handled = _pseudonymise_keys(out, schema, types, policy, rng)
    row_shifts = (_linked_shifts(tables, schema, policy.max_shift_days, rng)
                  if policy.dates == "shift" else {})
    logs: dict[str, DeidLog] = {}
    new_schemas: dict[str, Schema] = {}
    for tname in order:
        table_schema = schema.tables[tname]
        keys = _key_columns(schema, tname)
        link = schema.parent_link(tname)
        if tname in row_shifts:  # dates="shift": the column that leads to the patient
            patient_column = link.column if link is not None else schema.primary_keys[tname][0]
        else:                    # no shift asked, or no patient key: years only
            patient_column = None
        table_policy = replace(policy, types={c: k for c, k in types[tname].items() if c not in keys},
                               safe_text=tuple(safe[tname]), patient_column=patient_column,
                               dates="shift" if patient_column is not None else "year")
        # keys are handled above: the per-table rules never see their pii marks
        unkeyed = table_schema.replace_columns(
            [replace(c, pii=None) if c.name in keys else c for c in table_schema.columns])
        frame, log = deidentify(out[tname], unkeyed, policy=table_policy,
                                shifts=row_shifts.get(tname))
        for column in handled.get(tname, ()):
            log.unmarked_suspects.pop(column, None)
        log.actions[:0] = key_actions.get(tname, [])
        log.actions = [replace(a, table=tname) for a in log.actions]
        out[tname] = frame
        logs[tname] = log
        new_schemas[tname] = log.apply_to_schema(table_schema)
    dropped = {f"{t}.{c}" for t, log in logs.items() for c in log.dropped_columns}
    rules = tuple(r for r in schema.constraints if not _rule_names(r) & dropped)
    try:
        new_schema = replace(schema, tables=new_schemas, constraints=rules)
    except SchemaError as err:
        raise ConfigError(f"de-identification drops column(s) {sorted(dropped)} that the "
                          f"multi-table schema still uses ({err}); keep them with policy.safe_text "
                          "or another policy.types entry, or take them out of the schema") from err
    return out, new_schema, logs


def _rule_names(rule: Any) -> set[str]:
    """Qualified ``table.column`` names a rule across tables reads (columns and column ends)."""
    ends = (getattr(rule, "low", None), getattr(rule, "high", None))
    return set(rule.column_names) | {v for v in ends if isinstance(v, str)}


def _by_table(entries: Mapping[str, Any], schema: MultiTableSchema, what: str
              ) -> dict[str, dict[str, Any]]:
    """``{"table.column": v}`` -> ``{table: {column: v}}`` (column names may hold dots)."""
    out: dict[str, dict[str, Any]] = {t: {} for t in schema.tables}
    for name, value in entries.items():
        tname, column = schema.split_qualified(name, f"{what} (linked tables)", ConfigError)
        out[tname][column] = value
    return out


def _key_columns(schema: MultiTableSchema, table: str) -> set[str]:
    keys = set(schema.primary_keys.get(table, ()))
    for fk in schema.foreign_keys:
        if fk.child == table:
            keys.add(fk.column)
        if fk.parent == table:
            keys.add(fk.parent_column)
    return keys


def _pseudonymise_keys(tables: dict[str, pd.DataFrame], schema: MultiTableSchema,
                       types: Mapping[str, Mapping[str, Any]], policy: DeidPolicy,
                       rng: np.random.Generator
                       ) -> tuple[dict[str, list[DeidAction]], dict[str, set[str]]]:
    """Replace identifying keys by random codes, one mapping per key and the columns linking to it."""
    actions: dict[str, list[DeidAction]] = {}
    handled: dict[str, set[str]] = {}
    for tname in schema.order():
        pk = schema.primary_keys.get(tname, ())
        if len(pk) != 1:
            continue
        members = [(tname, pk[0])] + [(fk.child, fk.column) for fk in schema.foreign_keys
                                      if fk.parent == tname and fk.parent_column == pk[0]
                                      and fk.child != tname]
        members += [(fk.child, fk.column) for fk in schema.foreign_keys
                    if fk.parent == tname and fk.child == tname]  # self links (e.g. case.id)
        found = None
        for t, c in members:
            kind = _key_identifier_type(schema.tables[t], c, types[t].get(c))
            if kind is not None:
                found = (t, c, kind)
                break
        if found is None:
            continue
        if found[2] not in _DROP_TYPES:
            raise ConfigError(f"key column {found[0]}.{found[1]} is marked as a "
                              f"{found[2].value}; a key can only be replaced by codes (mark it "
                              "mrn or other_id, or not at all)")
        values = pd.concat([tables[t][c] for t, c in members], ignore_index=True)
        uniques = pd.unique(values.dropna())
        codes = rng.permutation(len(uniques)) + 1
        width = max(6, len(str(len(uniques))))
        mapping = {u: f"ID-{k:0{width}d}" for u, k in zip(uniques, codes, strict=True)}
        linked = ", ".join(f"{t}.{c}" for t, c in members)
        for t, c in members:
            col = tables[t][c]
            tables[t] = tables[t].assign(**{c: col.map(mapping).astype(object).where(col.notna(),
                                                                                      None)})
            note = (f"link key: one random code per value, shared by {linked}, so links hold"
                    + ("; a key is never dropped" if policy.identifiers == "drop" else ""))
            actions.setdefault(t, []).append(DeidAction(
                c, found[2].value, "pseudonym", len(col), int(col.notna().sum()),
                "link key", note))
            handled.setdefault(t, set()).add(c)
    return actions, handled


def _key_identifier_type(schema: Schema, column: str, declared: Any) -> IdentifierType | None:
    if declared is not None:
        return IdentifierType(declared)
    col = schema[column]
    if col.pii not in (PiiRole.DIRECT, PiiRole.QUASI):
        return None
    guess = guess_identifier_type(column)
    if guess is None and col.pii == PiiRole.DIRECT:
        return IdentifierType.OTHER_ID
    return guess


def _linked_shifts(tables: Mapping[str, pd.DataFrame], schema: MultiTableSchema, max_days: int,
                   rng: np.random.Generator) -> dict[str, pd.Series]:
    """Days to shift each row of each table: one draw per patient (root row), followed down links.

    Tables under a root without a single-column key are left out (their dates become years).
    """
    out: dict[str, pd.Series] = {}
    for tname in schema.order():
        link = schema.parent_link(tname)
        df = tables[tname]
        if link is None:
            pk = schema.primary_keys.get(tname, ())
            if len(pk) == 1:
                out[tname] = _patient_shifts(df[pk[0]], max_days, rng)
        elif link.parent in out:
            by_key = pd.Series(out[link.parent].to_numpy(),
                               index=tables[link.parent][link.parent_column].to_numpy())
            shifts = df[link.column].map(by_key[~by_key.index.duplicated()])
            missing = shifts.isna().to_numpy()
            if missing.any():  # no parent row: a shift of its own, never 0
                shifts.loc[missing] = rng.integers(-max_days, max_days + 1, size=int(missing.sum()))
            out[tname] = shifts.astype("int64")
    return out


def _plan(df: pd.DataFrame, schema: Schema, policy: DeidPolicy) -> dict[str, tuple[IdentifierType, str]]:
    plan: dict[str, tuple[IdentifierType, str]] = {}
    for column in df.columns:
        if column in policy.types:
            plan[column] = (IdentifierType(policy.types[column]), "policy")
            continue
        col = schema[column] if column in schema else None
        if col is None or col.pii == PiiRole.NONE:  # none: reviewed, not an identifier
            continue
        if col.kind == ColumnKind.TEXT:
            plan[column] = (IdentifierType.FREE_TEXT, "kind:text")
            continue
        if col.pii in (PiiRole.DIRECT, PiiRole.QUASI):
            guess = guess_identifier_type(column)
            if guess is not None:
                plan[column] = (guess, "schema+name")
            elif col.pii == PiiRole.DIRECT:
                plan[column] = (IdentifierType.OTHER_ID, "schema")
    return plan


def _pseudonyms(values: pd.Series, rng: np.random.Generator) -> tuple[pd.Series, int]:
    uniques = pd.unique(values.dropna())
    codes = rng.permutation(len(uniques)) + 1
    width = max(6, len(str(len(uniques))))
    mapping = {u: f"ID-{c:0{width}d}" for u, c in zip(uniques, codes, strict=True)}
    out = values.map(mapping).astype(object).where(values.notna(), None)
    return out, int(values.notna().sum())


def _zip3(values: pd.Series, restricted: tuple[str, ...], column: str) -> tuple[pd.Series, int, int]:
    restricted_set = set(restricted)
    out: list[str | None] = []
    n_restricted = n_values = 0
    for value in values.tolist():
        text = _zip_text(value)
        if text is None:
            out.append(None)
            continue
        match = re.match(r"^(\d{5})(-?\d{4})?$", text)
        if match is None:
            bad = int(sum(_zip_text(v) is not None and not re.match(r"^(\d{5})(-?\d{4})?$",
                                                                   _zip_text(v) or "")
                          for v in values.tolist()))
            raise DataError(f"column {column!r}: {bad} value(s) are not US ZIP codes (5 digits, "
                            f"optionally +4; first: {value!r}); fix them or mark the column as "
                            "another identifier type")
        n_values += 1
        zip3 = match.group(1)[:3]
        if zip3 in restricted_set:
            n_restricted += 1
            zip3 = "000"
        out.append(zip3)
    return pd.Series(out, index=values.index, dtype=object), n_values, n_restricted


def _zip_text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and float(value).is_integer()):
        return f"{int(value):05d}"  # numeric ZIPs lose their leading zeros
    return str(value).strip()


def _top_code_age(values: pd.Series, column: str) -> tuple[pd.Series, int]:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & numeric.isna()
    if bad.any():
        raise DataError(f"column {column!r}: {int(bad.sum())} age value(s) are not numbers "
                        f"(first: {values[bad].iloc[0]!r})")
    over = (numeric > 89).fillna(False).astype(bool)  # missing ages stay missing
    out = values.copy()
    if over.any():
        out = out.mask(over, 90)
    return out, int(over.sum())


def _parse_dates(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    parsed = pd.to_datetime(values, errors="coerce", format="mixed")
    bad = values.notna() & parsed.isna()
    if bad.any():
        raise DataError(f"column {column!r}: {int(bad.sum())} value(s) are not dates "
                        f"(first: {values[bad].iloc[0]!r}); fix them or mark the column differently")
    return parsed


def _restore_format(shifted: pd.Series, original: pd.Series, schema: Schema, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(original):
        return shifted
    fmt = schema[column].datetime_format if column in schema else None
    return shifted.dt.strftime(fmt or "%Y-%m-%d").astype(object).where(shifted.notna(), None)


def _patient_shifts(patients: pd.Series, max_days: int, rng: np.random.Generator) -> pd.Series:
    """One random shift per patient (drawn over the sorted distinct ids), aligned to the rows.

    A row with no patient id gets a shift of its own (never 0, which would keep its true dates).
    """
    ids = np.sort(pd.unique(patients.dropna()))
    draws = rng.integers(-max_days, max_days + 1, size=len(ids))
    out = patients.map(dict(zip(ids, draws, strict=True)))
    missing = out.isna().to_numpy()
    if missing.any():
        out.loc[missing] = rng.integers(-max_days, max_days + 1, size=int(missing.sum()))
    return out.astype("int64")
