"""FHIR R4 in and out: Patient, Encounter, Observation and Condition resources as linked tables.

``read_fhir`` turns a folder of FHIR JSON files (single resources, Bundles or NDJSON) or one
Bundle file into four tables linked by ``patient_id``::

    patients      patient_id (key), identifier, names, gender, birth_date, deceased, address, telecom
    encounters    encounter_id (key), patient_id -> patients, status, class, type, period
    observations  observation_id (key), patient_id -> patients, encounter_id -> encounters,
                  status, category, code, effective, value (quantity, string or code)
    conditions    condition_id (key), patient_id -> patients, encounter_id -> encounters,
                  clinical/verification status, category, code, onset, abatement, recorded date

Dates stay ISO 8601 strings exactly as written (FHIR dates may be partial, e.g. ``"2012"``, and
carry time zones, so parsing them would lose information). Only the first coding, name, identifier,
address, phone and e-mail of a resource are kept; effective/onset periods keep their start (and the
observation's end). Reading then writing then reading gives back the same tables.

``write_fhir_bundle`` writes such tables (for example synthetic ones) as a ``collection`` or
``transaction`` Bundle and validates it with the ``fhir.resources`` R4B models (the optional extra
``fhir``). Codes with required bindings (gender, statuses, bundle type) are checked here, since the
models accept any string; every problem is a ``DataError`` naming the resource and the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.io.files import atomic_write_text

# -- table layout -----------------------------------------------------------------------------
PATIENT_COLUMNS = (
    "patient_id", "identifier_system", "identifier", "family_name", "given_name", "gender",
    "birth_date", "deceased", "deceased_date", "address_line", "city", "district", "state",
    "postal_code", "country", "phone", "email",
)
ENCOUNTER_COLUMNS = (
    "encounter_id", "patient_id", "status", "class_system", "class_code", "class_display",
    "type_system", "type_code", "type_display", "period_start", "period_end",
)
OBSERVATION_COLUMNS = (
    "observation_id", "patient_id", "encounter_id", "status", "category_system", "category",
    "code_system", "code", "code_display", "code_text", "effective", "effective_end", "value",
    "value_unit", "value_system", "value_unit_code", "value_string", "value_code_system",
    "value_code", "value_code_display",
)
CONDITION_COLUMNS = (
    "condition_id", "patient_id", "encounter_id", "clinical_status", "verification_status",
    "category_system", "category", "code_system", "code", "code_display", "code_text", "onset",
    "onset_text", "abatement", "recorded_date",
)
TABLES: dict[str, tuple[str, ...]] = {
    "patients": PATIENT_COLUMNS, "encounters": ENCOUNTER_COLUMNS,
    "observations": OBSERVATION_COLUMNS, "conditions": CONDITION_COLUMNS,
}
RESOURCE_OF_TABLE = {"patients": "Patient", "encounters": "Encounter",
                     "observations": "Observation", "conditions": "Condition"}
TABLE_OF_RESOURCE = {v: k for k, v in RESOURCE_OF_TABLE.items()}
KEY_OF_TABLE = {"patients": "patient_id", "encounters": "encounter_id",
                "observations": "observation_id", "conditions": "condition_id"}
# (child table, column, parent table, parent key): the links read_fhir produces.
FOREIGN_KEYS = (
    ("encounters", "patient_id", "patients", "patient_id"),
    ("observations", "patient_id", "patients", "patient_id"),
    ("conditions", "patient_id", "patients", "patient_id"),
    ("observations", "encounter_id", "encounters", "encounter_id"),
    ("conditions", "encounter_id", "encounters", "encounter_id"),
)

# -- required value sets (FHIR R4) ---------------------------------------------------------------
GENDERS = frozenset({"male", "female", "other", "unknown"})
ENCOUNTER_STATUSES = frozenset({"planned", "arrived", "triaged", "in-progress", "onleave",
                                "finished", "cancelled", "entered-in-error", "unknown"})
OBSERVATION_STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected",
                                  "cancelled", "entered-in-error", "unknown"})
CONDITION_CLINICAL = frozenset({"active", "recurrence", "relapse", "inactive", "remission",
                                "resolved"})
CONDITION_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential", "confirmed",
                                    "refuted", "entered-in-error"})
BUNDLE_TYPES = ("collection", "transaction")

SYSTEM_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SYSTEM_CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SYSTEM_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
SYSTEM_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SYSTEM_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DATE_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
_DATETIME_RE = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$")


# =============================================================================================
# reading
# =============================================================================================
def read_fhir(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read FHIR R4 JSON into the tables ``patients``, ``encounters``, ``observations``, ``conditions``.

    Parameters
    ----------
    path
        A ``.json`` file holding one resource or a Bundle, an ``.ndjson`` file (one resource
        per line), or a folder searched recursively for such files. Resources of other types
        are skipped. A resource without an ``id`` gets one from its bundle entry's ``fullUrl``
        (``urn:uuid:...``) or, failing that, ``"<type>-<n>"`` in reading order.

    Returns
    -------
    dict[str, DataFrame]
        The four tables (always present, possibly empty), keyed by table name. References
        (``Patient/x``, ``urn:uuid:...``, absolute URLs) are resolved to the plain ids.

    Raises
    ------
    DataError
        Unreadable JSON, duplicate ids, a code outside a required value set (e.g. gender) or a
        malformed date; the message names the file, the resource and the field.

    Examples
    --------
    >>> tables = read_fhir("fhir_r4_examples/")          # doctest: +SKIP
    >>> tables["observations"][["patient_id", "code", "value"]]   # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"FHIR path not found: {p}")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (".json", ".ndjson")) \
        if p.is_dir() else [p]
    if not files:
        raise DataError(f"no .json or .ndjson files under {p}")
    collected: list[tuple[dict[str, Any], str | None, str]] = []
    for file in files:
        for resource in _load_file(file):
            collected.extend(_flatten(resource, None, str(file)))
    # full URLs and generated ids first, so references resolve whatever the order
    aliases: dict[str, str] = {}
    counters: dict[str, int] = {}
    resources: list[tuple[dict[str, Any], str, str]] = []
    seen: dict[tuple[str, str], str] = {}
    for resource, full_url, where in collected:
        rtype = resource.get("resourceType")
        if rtype not in TABLE_OF_RESOURCE:
            continue
        rid = resource.get("id")
        if rid is None:
            if full_url and full_url.startswith("urn:uuid:"):
                rid = full_url.removeprefix("urn:uuid:")
            else:
                counters[rtype] = counters.get(rtype, 0) + 1
                rid = f"{rtype.lower()}-{counters[rtype]}"
        rid = str(rid)
        if (rtype, rid) in seen:
            raise DataError(f"{where}: {rtype}/{rid} appears twice (also in {seen[(rtype, rid)]}); "
                            "ids must be unique per resource type")
        seen[(rtype, rid)] = where
        if full_url:
            aliases[full_url] = f"{rtype}/{rid}"
        resources.append((resource, rid, where))
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for resource, rid, where in resources:
        rtype = resource["resourceType"]
        ctx = f"{where}: {rtype}/{rid}"
        parse = _PARSERS[rtype]
        rows[TABLE_OF_RESOURCE[rtype]].append(parse(resource, rid, aliases, ctx))
    return {name: _frame(rows[name], columns) for name, columns in TABLES.items()}


def _load_file(file: Path) -> Iterator[dict[str, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise DataError(f"{file}: cannot read: {err.strerror or err}") from err
    if file.suffix.lower() == ".ndjson":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _parse_json(line, f"{file}:{lineno}")
        return
    yield _parse_json(text, str(file))


def _parse_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict) or "resourceType" not in data:
        raise DataError(f"{where}: not a FHIR resource (a JSON object with 'resourceType' expected)")
    return data


def _flatten(resource: dict[str, Any], full_url: str | None,
             where: str) -> Iterator[tuple[dict[str, Any], str | None, str]]:
    """Yield every resource, expanding (nested) Bundles."""
    if resource.get("resourceType") != "Bundle":
        yield resource, full_url, where
        return
    bundle_where = f"{where} (Bundle {resource.get('id', '')})".replace(" )", ")")
    for i, entry in enumerate(resource.get("entry") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue  # e.g. a transaction-response entry without a resource
        yield from _flatten(entry["resource"], entry.get("fullUrl"), f"{bundle_where} entry {i}")


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    for col in columns:  # empty strings would hide missing values
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    if "deceased" in df:
        df["deceased"] = df["deceased"].astype("boolean")
    if "value" in df:
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    return df


# -- element helpers ----------------------------------------------------------------------------
def _first(items: Any) -> dict[str, Any]:
    if isinstance(items, list):
        return next((x for x in items if isinstance(x, dict)), {})
    return items if isinstance(items, dict) else {}


def _coding(concept: Any) -> dict[str, Any]:
    return _first(_first(concept).get("coding"))


def _resolve(ref: Any, rtype: str, aliases: Mapping[str, str], ctx: str, field: str) -> str | None:
    """Return the id a Reference points to when it points to a ``rtype``, else None."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    text = aliases.get(ref["reference"], ref["reference"])
    parts = text.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == rtype:
        return parts[-1]
    if len(parts) >= 2 and parts[-2] in TABLE_OF_RESOURCE:
        return None  # points to another type (e.g. a Group subject)
    if text.startswith("#"):
        return None  # contained resource
    raise DataError(f"{ctx}: {field}.reference {ref['reference']!r} cannot be resolved "
                    "(expected 'Type/id', a full URL or a fullUrl of the bundle)")


def _check_code(value: Any, allowed: frozenset[str], ctx: str, field: str) -> Any:
    if value is not None and value not in allowed:
        raise DataError(f"{ctx}: {field} is {value!r}; FHIR R4 allows {sorted(allowed)}")
    return value


def _check_date(value: Any, ctx: str, field: str, *, with_time: bool = True) -> Any:
    if value is None:
        return None
    pattern = _DATETIME_RE if with_time else _DATE_RE
    if not isinstance(value, str) or not pattern.match(value):
        kind = "dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)" if with_time \
            else "date (YYYY, YYYY-MM or YYYY-MM-DD)"
        raise DataError(f"{ctx}: {field} is {value!r}, not a FHIR {kind}")
    return value


def _name_parts(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") in ("official", "usual")), names[0] if names else {})
    given = " ".join(str(g) for g in name.get("given") or []) or None
    return name.get("family"), given


def _telecom(resource: dict[str, Any], system: str) -> str | None:
    return next((t.get("value") for t in resource.get("telecom") or []
                 if isinstance(t, dict) and t.get("system") == system and t.get("value")), None)


# -- per resource ---------------------------------------------------------------------------------
def _parse_patient(r: dict[str, Any], rid: str, aliases: Mapping[str, str], ctx: str) -> dict[str, Any]:
    ident = next((i for i in r.get("identifier") or [] if isinstance(i, dict) and i.get("value")), {})
    family, given = _name_parts(r)
    addr = _first(r.get("address"))
    deceased = r.get("deceasedBoolean")
    deceased_date = _check_date(r.get("deceasedDateTime"), ctx, "deceasedDateTime")
    if deceased_date is not None:
        deceased = True
    return {
        "patient_id": rid, "identifier_system": ident.get("system"), "identifier": ident.get("value"),
        "family_name": family, "given_name": given,
        "gender": _check_code(r.get("gender"), GENDERS, ctx, "gender"),
        "birth_date": _check_date(r.get("birthDate"), ctx, "birthDate", with_time=False),
        "deceased": deceased, "deceased_date": deceased_date,
        "address_line": ", ".join(str(x) for x in addr.get("line") or []) or None,
        "city": addr.get("city"), "district": addr.get("district"), "state": addr.get("state"),
        "postal_code": addr.get("postalCode"), "country": addr.get("country"),
        "phone": _telecom(r, "phone"), "email": _telecom(r, "email"),
    }


def _parse_encounter(r: dict[str, Any], rid: str, aliases: Mapping[str, str], ctx: str) -> dict[str, Any]:
    cls = r.get("class") if isinstance(r.get("class"), dict) else {}
    typ = _coding(r.get("type"))
    period = r.get("period") or {}
    return {
        "encounter_id": rid, "patient_id": _resolve(r.get("subject"), "Patient", aliases, ctx, "subject"),
        "status": _check_code(r.get("status"), ENCOUNTER_STATUSES, ctx, "status"),
        "class_system": cls.get("system"), "class_code": cls.get("code"),
        "class_display": cls.get("display"), "type_system": typ.get("system"),
        "type_code": typ.get("code"), "type_display": typ.get("display"),
        "period_start": _check_date(period.get("start"), ctx, "period.start"),
        "period_end": _check_date(period.get("end"), ctx, "period.end"),
    }


def _parse_observation(r: dict[str, Any], rid: str, aliases: Mapping[str, str], ctx: str) -> dict[str, Any]:
    cat, code = _coding(r.get("category")), _coding(r.get("code"))
    period = r.get("effectivePeriod") or {}
    effective = r.get("effectiveDateTime") or r.get("effectiveInstant") or period.get("start")
    qty = r.get("valueQuantity") or {}
    vcode = _coding(r.get("valueCodeableConcept"))
    value = qty.get("value")
    if value is None and isinstance(r.get("valueInteger"), int):
        value = r["valueInteger"]
    value_string = r.get("valueString")
    if value_string is None and isinstance(r.get("valueBoolean"), bool):
        value_string = "true" if r["valueBoolean"] else "false"
    return {
        "observation_id": rid,
        "patient_id": _resolve(r.get("subject"), "Patient", aliases, ctx, "subject"),
        "encounter_id": _resolve(r.get("encounter"), "Encounter", aliases, ctx, "encounter"),
        "status": _check_code(r.get("status"), OBSERVATION_STATUSES, ctx, "status"),
        "category_system": cat.get("system"), "category": cat.get("code"),
        "code_system": code.get("system"), "code": code.get("code"),
        "code_display": code.get("display"), "code_text": _first(r.get("code")).get("text"),
        "effective": _check_date(effective, ctx, "effective"),
        "effective_end": _check_date(period.get("end"), ctx, "effectivePeriod.end"),
        "value": value, "value_unit": qty.get("unit"), "value_system": qty.get("system"),
        "value_unit_code": qty.get("code"), "value_string": value_string,
        "value_code_system": vcode.get("system"), "value_code": vcode.get("code"),
        "value_code_display": vcode.get("display"),
    }


def _parse_condition(r: dict[str, Any], rid: str, aliases: Mapping[str, str], ctx: str) -> dict[str, Any]:
    cat, code = _coding(r.get("category")), _coding(r.get("code"))
    onset_period = r.get("onsetPeriod") or {}
    abatement_period = r.get("abatementPeriod") or {}
    return {
        "condition_id": rid,
        "patient_id": _resolve(r.get("subject"), "Patient", aliases, ctx, "subject"),
        "encounter_id": _resolve(r.get("encounter"), "Encounter", aliases, ctx, "encounter"),
        "clinical_status": _check_code(_coding(r.get("clinicalStatus")).get("code"),
                                       CONDITION_CLINICAL, ctx, "clinicalStatus"),
        "verification_status": _check_code(_coding(r.get("verificationStatus")).get("code"),
                                           CONDITION_VERIFICATION, ctx, "verificationStatus"),
        "category_system": cat.get("system"), "category": cat.get("code"),
        "code_system": code.get("system"), "code": code.get("code"),
        "code_display": code.get("display"), "code_text": _first(r.get("code")).get("text"),
        "onset": _check_date(r.get("onsetDateTime") or onset_period.get("start"), ctx, "onset"),
        "onset_text": r.get("onsetString"),
        "abatement": _check_date(r.get("abatementDateTime") or abatement_period.get("start"),
                                 ctx, "abatement"),
        "recorded_date": _check_date(r.get("recordedDate"), ctx, "recordedDate"),
    }


_PARSERS = {"Patient": _parse_patient, "Encounter": _parse_encounter,
            "Observation": _parse_observation, "Condition": _parse_condition}


# =============================================================================================
# writing
# =============================================================================================
def write_fhir_bundle(tables: Mapping[str, pd.DataFrame], path: str | Path, *,
                      bundle_type: str = "collection", bundle_id: str | None = None,
                      base_url: str | None = None) -> Path:
    """Write tables as one FHIR R4 Bundle (JSON), validated with the ``fhir.resources`` R4B models.

    Parameters
    ----------
    tables
        Any of ``patients``, ``encounters``, ``observations``, ``conditions`` with the columns
        ``read_fhir`` produces (a subset is fine; only the key columns are required).
        Missing values are left out of the resources. Dates may be ISO strings, ``datetime``
        or ``Timestamp`` values (naive timestamps with a time of day are written as UTC).
    path
        The output file, written atomically.
    bundle_type
        ``"collection"`` or ``"transaction"`` (entries get ``PUT Type/id`` requests, so the
        client-assigned ids and the references between resources survive on a server).
    base_url
        When given, each entry's ``fullUrl`` is ``{base_url}/{Type}/{id}``.

    Raises
    ------
    DataError
        Unknown tables or columns, missing or duplicate ids, references to absent patients or
        encounters, codes outside a required value set, values the R4B models reject; the
        message names the resource (``Patient/p1``) and the field.
    ConfigError
        A bad ``bundle_type`` or a missing ``fhir.resources`` package.
    """
    if bundle_type not in BUNDLE_TYPES:
        raise ConfigError(f"bundle_type is {bundle_type!r}; choose one of {list(BUNDLE_TYPES)}")
    bundle = build_bundle(tables, bundle_type=bundle_type, bundle_id=bundle_id, base_url=base_url)
    validate_bundle(bundle)
    return atomic_write_text(Path(path), json.dumps(bundle, indent=1, ensure_ascii=False) + "\n")


def build_bundle(tables: Mapping[str, pd.DataFrame], *, bundle_type: str = "collection",
                 bundle_id: str | None = None, base_url: str | None = None) -> dict[str, Any]:
    """Return the Bundle as a JSON-ready dict (codes checked, not yet model-validated)."""
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise DataError(f"unknown FHIR table(s) {unknown}; write_fhir_bundle takes {list(TABLES)}")
    ids: dict[str, set[str]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        if name not in tables:
            continue
        df = tables[name]
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"table {name!r} must be a DataFrame, got {type(df).__name__}")
        extra = sorted(set(map(str, df.columns)) - set(TABLES[name]))
        if extra:
            raise DataError(f"table {name!r} has column(s) {extra} that have no place in a FHIR "
                            f"{RESOURCE_OF_TABLE[name]}; drop them (known columns: {list(TABLES[name])})")
        key = KEY_OF_TABLE[name]
        if key not in df.columns:
            raise DataError(f"table {name!r} needs the id column {key!r}")
        recs = [{k: _native(v) for k, v in row.items()} for row in df.to_dict(orient="records")]
        table_ids: set[str] = set()
        for i, rec in enumerate(recs):
            rid = rec.get(key)
            if rid is None:
                raise DataError(f"table {name!r} row {i}: {key} is missing; every resource needs an id")
            rid = _id_text(rid)
            if not _ID_RE.match(rid):
                raise DataError(f"table {name!r} row {i}: {key} {rid!r} is not a FHIR id "
                                "(1-64 characters from A-Z, a-z, 0-9, '-' and '.')")
            if rid in table_ids:
                raise DataError(f"table {name!r}: {RESOURCE_OF_TABLE[name]}/{rid} appears twice")
            table_ids.add(rid)
            rec[key] = rid
        ids[name], records[name] = table_ids, recs
    entries = []
    for name in TABLES:
        for rec in records.get(name, []):
            rtype = RESOURCE_OF_TABLE[name]
            ctx = f"{rtype}/{rec[KEY_OF_TABLE[name]]}"
            resource = _BUILDERS[rtype](rec, ids, ctx)
            entry: dict[str, Any] = {}
            if base_url:
                entry["fullUrl"] = f"{base_url.rstrip('/')}/{rtype}/{resource['id']}"
            entry["resource"] = resource
            if bundle_type == "transaction":
                entry["request"] = {"method": "PUT", "url": f"{rtype}/{resource['id']}"}
            entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if bundle_id is not None:
        bundle["id"] = bundle_id
    bundle["type"] = bundle_type
    bundle["entry"] = entries
    return bundle


def validate_bundle(bundle: Mapping[str, Any]) -> None:
    """Validate a Bundle dict with the ``fhir.resources`` R4B models; ``DataError`` names the field."""
    try:
        from fhir.resources.R4B.bundle import Bundle
        from pydantic import ValidationError
    except ImportError as err:
        raise ConfigError("writing FHIR bundles needs the optional dependency 'fhir.resources'; "
                          "install it with: pip install 'synthdata[fhir]'") from err
    if bundle.get("type") not in {"document", "message", "transaction", "transaction-response",
                                  "batch", "batch-response", "history", "searchset", "collection"}:
        raise DataError(f"Bundle.type {bundle.get('type')!r} is not a FHIR bundle type")
    try:
        Bundle.model_validate(dict(bundle))
    except ValidationError as err:
        problems = []
        for e in err.errors()[:5]:
            loc = list(e["loc"])
            where = "Bundle"
            if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int) and loc[2] == "resource":
                res = bundle["entry"][loc[1]]["resource"]
                where = f"{res.get('resourceType')}/{res.get('id')}"
                loc = loc[3:]
            problems.append(f"{where}: {'.'.join(map(str, loc)) or '(resource)'}: {e['msg']}")
        more = f" (and {len(err.errors()) - 5} more)" if len(err.errors()) > 5 else ""
        raise DataError("the bundle does not validate as FHIR R4B: " + "; ".join(problems) + more) from err


# -- value conversion -----------------------------------------------------------------------------
def _native(value: Any) -> Any:
    """Plain Python value, None for every kind of missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value == "":
        return None
    return value


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _date_text(value: Any, ctx: str, field: str, *, with_time: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        ts = pd.Timestamp(value)
        if not with_time or (ts.tz is None and ts == ts.normalize()):
            return ts.strftime("%Y-%m-%d")
        if ts.tz is None:
            ts = ts.tz_localize("UTC")
        return ts.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int) and 1000 <= value <= 9999:  # a year (e.g. after de-identification)
        return str(value)
    return _check_date(str(value), ctx, field, with_time=with_time)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _concept(system: Any, code: Any, display: Any = None, text: Any = None) -> dict[str, Any] | None:
    coding = {k: v for k, v in (("system", _text(system)), ("code", _text(code)),
                                ("display", _text(display))) if v is not None}
    out: dict[str, Any] = {}
    if coding:
        out["coding"] = [coding]
    if text is not None:
        out["text"] = _text(text)
    return out or None


def _ref(rtype: str, value: Any, known: set[str] | None, ctx: str, field: str,
         table: str) -> dict[str, str] | None:
    if value is None:
        return None
    rid = _id_text(value)
    if known is not None and rid not in known:
        raise DataError(f"{ctx}: {field} points to {rtype}/{rid}, which is not in table {table!r}; "
                        "every reference must point to a resource in the bundle")
    return {"reference": f"{rtype}/{rid}"}


def _compact(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v is not None and v != [] and v != {}}


def _build_patient(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    name = _compact({"family": _text(rec.get("family_name")),
                     "given": (_text(rec.get("given_name")) or "").split() or None})
    telecom = [t for t in ({"system": "phone", "value": _text(rec.get("phone"))},
                           {"system": "email", "value": _text(rec.get("email"))}) if t["value"]]
    addr = _compact({"line": [_text(rec["address_line"])] if rec.get("address_line") else None,
                     "city": _text(rec.get("city")), "district": _text(rec.get("district")),
                     "state": _text(rec.get("state")), "postalCode": _text(rec.get("postal_code")),
                     "country": _text(rec.get("country"))})
    ident = _compact({"system": _text(rec.get("identifier_system")),
                      "value": _text(rec.get("identifier"))})
    deceased_date = _date_text(rec.get("deceased_date"), ctx, "deceasedDateTime", with_time=True)
    deceased = rec.get("deceased")
    if deceased is not None and not isinstance(deceased, bool):
        if deceased in (0, 1):
            deceased = bool(deceased)
        else:
            raise DataError(f"{ctx}: deceased is {deceased!r}; expected true/false")
    gender = _text(rec.get("gender"))
    return _compact({
        "resourceType": "Patient", "id": rec["patient_id"],
        "identifier": [ident] if ident.get("value") else None,
        "name": [name] if name else None, "telecom": telecom,
        "gender": _check_code(gender, GENDERS, ctx, "gender"),
        "birthDate": _date_text(rec.get("birth_date"), ctx, "birthDate", with_time=False),
        # deceasedDateTime wins: FHIR allows one deceased[x]
        "deceasedDateTime": deceased_date,
        "deceasedBoolean": deceased if deceased_date is None else None,
        "address": [addr] if addr else None,
    })


def _build_encounter(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    status = _check_code(_text(rec.get("status")), ENCOUNTER_STATUSES, ctx, "status")
    if status is None:
        raise DataError(f"{ctx}: status is required; use one of {sorted(ENCOUNTER_STATUSES)}")
    if rec.get("class_code") is None:
        raise DataError(f"{ctx}: class_code is required (Encounter.class), e.g. 'AMB' "
                        f"(ambulatory) or 'IMP' (inpatient) from {SYSTEM_ACT_CODE}")
    typ = _concept(rec.get("type_system"), rec.get("type_code"), rec.get("type_display"))
    period = _compact({"start": _date_text(rec.get("period_start"), ctx, "period.start", with_time=True),
                       "end": _date_text(rec.get("period_end"), ctx, "period.end", with_time=True)})
    _check_order(period.get("start"), period.get("end"), ctx, "period")
    return _compact({
        "resourceType": "Encounter", "id": rec["encounter_id"], "status": status,
        "class": _compact({"system": _text(rec.get("class_system")), "code": _text(rec["class_code"]),
                           "display": _text(rec.get("class_display"))}),
        "type": [typ] if typ else None,
        "subject": _ref("Patient", rec.get("patient_id"), ids.get("patients"), ctx, "subject",
                        "patients"),
        "period": period or None,
    })


def _build_observation(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    status = _check_code(_text(rec.get("status")), OBSERVATION_STATUSES, ctx, "status")
    if status is None:
        raise DataError(f"{ctx}: status is required; use one of {sorted(OBSERVATION_STATUSES)}")
    code = _concept(rec.get("code_system"), rec.get("code"), rec.get("code_display"), rec.get("code_text"))
    if code is None:
        raise DataError(f"{ctx}: code is required (Observation.code); fill code or code_text")
    category = _concept(rec.get("category_system") or
                        (SYSTEM_OBSERVATION_CATEGORY if rec.get("category") is not None else None),
                        rec.get("category"))
    effective = _date_text(rec.get("effective"), ctx, "effective", with_time=True)
    effective_end = _date_text(rec.get("effective_end"), ctx, "effectivePeriod.end", with_time=True)
    values = {}
    if rec.get("value") is not None:
        value = rec["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{ctx}: value is {value!r}; valueQuantity.value must be a finite number")
        values["valueQuantity"] = _compact({"value": value, "unit": _text(rec.get("value_unit")),
                                            "system": _text(rec.get("value_system")),
                                            "code": _text(rec.get("value_unit_code"))})
    if rec.get("value_string") is not None:
        values["valueString"] = _text(rec["value_string"])
    vcode = _concept(rec.get("value_code_system"), rec.get("value_code"), rec.get("value_code_display"))
    if vcode is not None:
        values["valueCodeableConcept"] = vcode
    if len(values) > 1:
        raise DataError(f"{ctx}: more than one value[x] is filled ({sorted(values)}); an "
                        "Observation holds one value")
    out = {
        "resourceType": "Observation", "id": rec["observation_id"], "status": status,
        "category": [category] if category else None, "code": code,
        "subject": _ref("Patient", rec.get("patient_id"), ids.get("patients"), ctx, "subject",
                        "patients"),
        "encounter": _ref("Encounter", rec.get("encounter_id"), ids.get("encounters"), ctx,
                          "encounter", "encounters"),
    }
    if effective_end is not None:
        _check_order(effective, effective_end, ctx, "effectivePeriod")
        out["effectivePeriod"] = _compact({"start": effective, "end": effective_end})
    else:
        out["effectiveDateTime"] = effective
    out.update(values)
    return _compact(out)


def _build_condition(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    clinical = _check_code(_text(rec.get("clinical_status")), CONDITION_CLINICAL, ctx, "clinicalStatus")
    verification = _check_code(_text(rec.get("verification_status")), CONDITION_VERIFICATION, ctx,
                               "verificationStatus")
    abatement = _date_text(rec.get("abatement"), ctx, "abatement", with_time=True)
    if verification == "entered-in-error" and clinical is not None:  # invariant con-5
        raise DataError(f"{ctx}: clinicalStatus must be empty when verificationStatus is "
                        "entered-in-error (FHIR invariant con-5)")
    if abatement is not None and clinical not in (None, "inactive", "resolved", "remission"):  # con-4
        raise DataError(f"{ctx}: clinicalStatus is {clinical!r} but the condition has abated; use "
                        "inactive, resolved or remission (FHIR invariant con-4)")
    if rec.get("patient_id") is None:
        raise DataError(f"{ctx}: patient_id is required (Condition.subject)")
    category = _concept(rec.get("category_system") or
                        (SYSTEM_CONDITION_CATEGORY if rec.get("category") is not None else None),
                        rec.get("category"))
    onset = _date_text(rec.get("onset"), ctx, "onset", with_time=True)
    if onset is not None and rec.get("onset_text") is not None:
        raise DataError(f"{ctx}: both onset and onset_text are filled; a Condition has one onset[x]")
    return _compact({
        "resourceType": "Condition", "id": rec["condition_id"],
        "clinicalStatus": _concept(SYSTEM_CONDITION_CLINICAL, clinical) if clinical else None,
        "verificationStatus": _concept(SYSTEM_CONDITION_VERIFICATION, verification)
        if verification else None,
        "category": [category] if category else None,
        "code": _concept(rec.get("code_system"), rec.get("code"), rec.get("code_display"),
                         rec.get("code_text")),
        "subject": _ref("Patient", rec.get("patient_id"), ids.get("patients"), ctx, "subject",
                        "patients"),
        "encounter": _ref("Encounter", rec.get("encounter_id"), ids.get("encounters"), ctx,
                          "encounter", "encounters"),
        "onsetDateTime": onset, "onsetString": _text(rec.get("onset_text")),
        "abatementDateTime": abatement,
        "recordedDate": _date_text(rec.get("recorded_date"), ctx, "recordedDate", with_time=True),
    })


def _check_order(start: str | None, end: str | None, ctx: str, field: str) -> None:
    """Reject a period whose end is before its start (compared when both are full dates)."""
    if start is None or end is None:
        return
    try:
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        if (s.tz is None) != (e.tz is None):
            return
    except (ValueError, TypeError):
        return
    if e < s:
        raise DataError(f"{ctx}: {field}.end {end!r} is before {field}.start {start!r}")


_BUILDERS = {"Patient": _build_patient, "Encounter": _build_encounter,
             "Observation": _build_observation, "Condition": _build_condition}


def iter_resources(bundle: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Yield the resources of a Bundle dict (convenience for tests and callers)."""
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            yield entry["resource"]
