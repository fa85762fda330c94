"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of the columns a schema marks.

Which columns are touched, and as what identifier type:

1. ``policy.types`` — an explicit ``{column: type}`` mapping — wins;
2. otherwise columns the schema marks ``pii: direct`` or ``pii: quasi`` get a type from their
   name (``zip``/``postal`` -> zip, ``dob``/``*date*`` -> date, ``age`` -> age, ``email``, ``phone``,
   ``ssn``, ``mrn``, ``name``, ...); a ``direct`` column with no recognisable name is ``other_id``
   (dropped); a ``quasi`` column with no recognisable name is left as it is;
3. ``text`` columns (schema kind) are ``free_text`` unless listed in ``policy.safe_text``.

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
  ``policy.reference_year`` (ages over 89 and birth years revealing them are aggregated);
- ``age``: values over 89 become 90, meaning "90 or older";
- ``free_text``: dropped unless the column is in ``policy.safe_text``.

Everything done is recorded in a :class:`DeidLog` (JSON-able, for the run report).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from synthdata._rng import make_rng
from synthdata.errors import ConfigError, DataError
from synthdata.schema.model import Column, ColumnKind, PiiRole, Schema


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
        Needed when a ``birth_date`` column exists: birth years implying an age over 89 in
        this year are removed.
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
    source: str          # "policy", "schema+name", "schema", "kind:text"
    note: str = ""


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
        """The schema of the de-identified table: dropped columns removed, kinds updated."""
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
                columns.append(Column(col.name, col.kind, dtype=col.dtype, nullable=col.nullable,
                                      min=col.min, max=None if col.max is None else min(col.max, 90),
                                      pii=col.pii, public=col.public, description=col.description))
            else:
                columns.append(col)
        pk = schema.primary_key if schema.primary_key in {c.name for c in columns} else None
        return Schema(columns=tuple(columns), name=schema.name, primary_key=pk)


def deidentify(df: pd.DataFrame, schema: Schema, *, policy: DeidPolicy | None = None
               ) -> tuple[pd.DataFrame, DeidLog]:
    """Apply Safe Harbor rules to the identifier columns of ``df``; return a new frame and the log.

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
    if any(t == IdentifierType.BIRTH_DATE for t, _ in plan.values()) and policy.reference_year is None:
        raise ConfigError("a birth_date column needs policy.reference_year (the year ages are "
                          "computed for, to remove birth years of people over 89)")
    rng = make_rng(policy.seed)
    out = df.copy()
    log = DeidLog(safe_harbor=not (policy.dates == "shift"
                                   and any(t == IdentifierType.DATE for t, _ in plan.values())))
    shifts: pd.Series | None = None
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
            old = (policy.reference_year - years) > 89  # type: ignore[operator]
            old = old.fillna(False).astype(bool)
            years = years.mask(old)
            out[column] = years
            log.actions.append(DeidAction(column, kind.value, "birth_year", n,
                                          int(values.notna().sum()), source,
                                          f"year only; {int(old.sum())} birth year(s) implying an age "
                                          f"over 89 in {policy.reference_year} removed"))
        elif kind == IdentifierType.DATE:
            parsed = _parse_dates(values, column)
            if policy.dates == "year":
                out[column] = parsed.dt.year.astype("Int64")
                log.actions.append(DeidAction(column, kind.value, "year", n, int(parsed.notna().sum()),
                                              source, "all date elements except the year removed"))
            else:
                if shifts is None:
                    shifts = _patient_shifts(df[policy.patient_column], policy.max_shift_days, rng)
                shifted = parsed + pd.to_timedelta(shifts.to_numpy(), unit="D")
                out[column] = _restore_format(shifted, values, schema, column)
                log.actions.append(DeidAction(
                    column, kind.value, "date_shift", n, int(parsed.notna().sum()), source,
                    f"one random shift in [-{policy.max_shift_days}, {policy.max_shift_days}] days per "
                    f"{policy.patient_column}; intervals kept; not Safe Harbor (expert determination)"))
    for column in df.columns:
        if column in plan:
            continue
        guess = guess_identifier_type(column)
        if guess is not None:
            log.unmarked_suspects[column] = (f"looks like {guess.value}; not marked pii in the schema "
                                             "nor listed in policy.types, so left unchanged")
    return out, log


def _plan(df: pd.DataFrame, schema: Schema, policy: DeidPolicy) -> dict[str, tuple[IdentifierType, str]]:
    plan: dict[str, tuple[IdentifierType, str]] = {}
    for column in df.columns:
        if column in policy.types:
            plan[column] = (IdentifierType(policy.types[column]), "policy")
            continue
        col = schema[column] if column in schema else None
        if col is None:
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
    """One random shift per patient (drawn over the sorted distinct ids), aligned to the rows."""
    ids = np.sort(pd.unique(patients.dropna()))
    draws = rng.integers(-max_days, max_days + 1, size=len(ids))
    return patients.map(dict(zip(ids, draws, strict=True))).fillna(0).astype("int64")
