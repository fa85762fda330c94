"""FHIR R4 in and out: nine clinical resource types as linked tables.

``read_fhir`` turns a folder of FHIR JSON files (single resources, Bundles of any type, or
NDJSON bulk-export files with one resource per line) or one such file into tables linked by
``patient_id`` (and ``encounter_id``)::

    patients             patient_id (key), identifier, names, gender, birth_date, deceased, address
    encounters           encounter_id (key), patient_id, status, class, type, period
    observations         observation_id (key), patient_id, encounter_id, status, category, code,
                         effective, value (quantity, string or code), interpretation,
                         reference range, note
    conditions           condition_id (key), patient_id, encounter_id, statuses, category, code,
                         severity, body site, onset, abatement, recorded date
    medication_requests  medication_request_id (key), patient_id, encounter_id, status, intent,
                         medication code, authored_on, dosage text
    procedures           procedure_id (key), patient_id, encounter_id, status, code, performed
    immunizations        immunization_id (key), patient_id, encounter_id, status, vaccine code,
                         occurrence, primary_source
    allergies            allergy_id (key), patient_id, encounter_id, statuses, type, category,
                         criticality, code, onset, recorded date, reaction
    diagnostic_reports   diagnostic_report_id (key), patient_id, encounter_id, status, category,
                         code, effective, issued, conclusion

Identity. A resource is identified by its entry's ``fullUrl`` when it has one, otherwise by
``Type/id`` (within the server its ``fullUrl`` names, if any). The same resource read twice (in
two files, or twice in a bundle) with the same content is one resource (``meta`` is ignored
when comparing); the same identity with different content is a ``DataError`` naming both
places. Resources with the same ``Type/id`` from two servers are two rows: the later one's id
gets a suffix (``14-2``) and references resolve within each server. ``read_fhir_summary``
returns the tables and a :class:`FhirReadSummary` that accounts for every resource read
(read into a table, duplicate, or skipped with the reason) and counts dangling references
(kept as written, with a warning).

Dates stay ISO 8601 strings exactly as written (FHIR dates may be partial, e.g. ``"2012"``, and
carry time zones, so parsing them would lose information). Only the first coding, name, identifier,
address, phone and e-mail of a resource are kept; effective/onset periods keep their start (and the
observation's end). Reading then writing then reading gives back the same tables.

``write_fhir_bundle`` writes such tables (for example synthetic ones) as a ``collection`` or
``transaction`` Bundle and ``write_fhir_ndjson`` one NDJSON file per resource type; both validate
every resource with the ``fhir.resources`` R4B models (the optional extra ``fhir``). Codes with
required bindings (gender, statuses, bundle type) are checked here, since the models accept any
string; every problem is a ``DataError`` naming the resource and the field.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthdata.errors import ConfigError, DataError
from synthdata.io.files import atomic_write_text

log = logging.getLogger(__name__)

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
    "value_code", "value_code_display", "interpretation_system", "interpretation",
    "reference_low", "reference_high", "reference_unit", "reference_text", "note",
)
CONDITION_COLUMNS = (
    "condition_id", "patient_id", "encounter_id", "clinical_status", "verification_status",
    "category_system", "category", "code_system", "code", "code_display", "code_text",
    "severity_system", "severity", "severity_display", "body_site_system", "body_site",
    "body_site_display", "onset", "onset_text", "abatement", "abatement_text", "recorded_date",
)
MEDICATION_REQUEST_COLUMNS = (
    "medication_request_id", "patient_id", "encounter_id", "status", "intent",
    "medication_system", "medication_code", "medication_display", "medication_text",
    "authored_on", "dosage_text",
)
PROCEDURE_COLUMNS = (
    "procedure_id", "patient_id", "encounter_id", "status", "code_system", "code",
    "code_display", "code_text", "performed", "performed_end",
)
IMMUNIZATION_COLUMNS = (
    "immunization_id", "patient_id", "encounter_id", "status", "vaccine_system", "vaccine_code",
    "vaccine_display", "occurrence", "primary_source",
)
ALLERGY_COLUMNS = (
    "allergy_id", "patient_id", "encounter_id", "clinical_status", "verification_status",
    "type", "category", "criticality", "code_system", "code", "code_display", "code_text",
    "onset", "recorded_date", "reaction_system", "reaction", "reaction_display",
    "reaction_severity",
)
DIAGNOSTIC_REPORT_COLUMNS = (
    "diagnostic_report_id", "patient_id", "encounter_id", "status", "category_system",
    "category", "code_system", "code", "code_display", "code_text", "effective", "issued",
    "conclusion",
)
TABLES: dict[str, tuple[str, ...]] = {
    "patients": PATIENT_COLUMNS, "encounters": ENCOUNTER_COLUMNS,
    "observations": OBSERVATION_COLUMNS, "conditions": CONDITION_COLUMNS,
    "medication_requests": MEDICATION_REQUEST_COLUMNS, "procedures": PROCEDURE_COLUMNS,
    "immunizations": IMMUNIZATION_COLUMNS, "allergies": ALLERGY_COLUMNS,
    "diagnostic_reports": DIAGNOSTIC_REPORT_COLUMNS,
}
RESOURCE_OF_TABLE = {"patients": "Patient", "encounters": "Encounter",
                     "observations": "Observation", "conditions": "Condition",
                     "medication_requests": "MedicationRequest", "procedures": "Procedure",
                     "immunizations": "Immunization", "allergies": "AllergyIntolerance",
                     "diagnostic_reports": "DiagnosticReport"}
TABLE_OF_RESOURCE = {v: k for k, v in RESOURCE_OF_TABLE.items()}
KEY_OF_TABLE = {t: cols[0] for t, cols in TABLES.items()}
EVENT_TABLES = tuple(t for t in TABLES if t not in ("patients", "encounters"))
# (child table, column, parent table, parent key): the links read_fhir produces.
FOREIGN_KEYS = (
    ("encounters", "patient_id", "patients", "patient_id"),
    *((t, "patient_id", "patients", "patient_id") for t in EVENT_TABLES),
    *((t, "encounter_id", "encounters", "encounter_id") for t in EVENT_TABLES),
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
MEDICATION_REQUEST_STATUSES = frozenset({"active", "on-hold", "cancelled", "completed",
                                         "entered-in-error", "stopped", "draft", "unknown"})
MEDICATION_REQUEST_INTENTS = frozenset({"proposal", "plan", "order", "original-order",
                                        "reflex-order", "filler-order", "instance-order", "option"})
PROCEDURE_STATUSES = frozenset({"preparation", "in-progress", "not-done", "on-hold", "stopped",
                                "completed", "entered-in-error", "unknown"})
IMMUNIZATION_STATUSES = frozenset({"completed", "entered-in-error", "not-done"})
ALLERGY_CLINICAL = frozenset({"active", "inactive", "resolved"})
ALLERGY_VERIFICATION = frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"})
ALLERGY_TYPES = frozenset({"allergy", "intolerance"})
ALLERGY_CATEGORIES = frozenset({"food", "medication", "environment", "biologic"})
ALLERGY_CRITICALITY = frozenset({"low", "high", "unable-to-assess"})
REACTION_SEVERITY = frozenset({"mild", "moderate", "severe"})
DIAGNOSTIC_REPORT_STATUSES = frozenset({"registered", "partial", "preliminary", "final", "amended",
                                        "corrected", "appended", "cancelled", "entered-in-error",
                                        "unknown"})
BUNDLE_TYPES = ("collection", "transaction")

SYSTEM_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SYSTEM_CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SYSTEM_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
SYSTEM_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SYSTEM_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
SYSTEM_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
SYSTEM_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DATE_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
_DATETIME_RE = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$")
# [base/]Type/id[/_history/version]: the parts of a literal reference or a RESTful fullUrl
_REF_RE = re.compile(r"^(?:(?P<base>.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
                     r"(?:/_history/[^/]+)?$")


# =============================================================================================
# reading
# =============================================================================================
SKIP_NOT_MAPPED = "resource type not read into tables"
# top-level elements each parser reads; the others are counted per type as "fields_not_kept"
KEPT_FIELDS = {
    "Patient": {"identifier", "name", "gender", "birthDate", "deceasedBoolean",
                "deceasedDateTime", "address", "telecom"},
    "Encounter": {"status", "class", "type", "subject", "period"},
    "Observation": {"status", "category", "code", "subject", "encounter", "effectiveDateTime",
                    "effectiveInstant", "effectivePeriod", "valueQuantity", "valueCodeableConcept",
                    "valueInteger", "valueString", "valueBoolean", "interpretation",
                    "referenceRange", "note"},
    "Condition": {"clinicalStatus", "verificationStatus", "category", "code", "subject",
                  "encounter", "severity", "bodySite", "onsetDateTime", "onsetPeriod",
                  "onsetString", "abatementDateTime", "abatementPeriod", "abatementString",
                  "recordedDate"},
    "MedicationRequest": {"status", "intent", "medicationCodeableConcept", "medicationReference",
                          "subject", "encounter", "authoredOn", "dosageInstruction"},
    "Procedure": {"status", "code", "subject", "encounter", "performedDateTime",
                  "performedPeriod"},
    "Immunization": {"status", "vaccineCode", "patient", "encounter", "occurrenceDateTime",
                     "primarySource"},
    "AllergyIntolerance": {"clinicalStatus", "verificationStatus", "type", "category",
                           "criticality", "code", "patient", "encounter", "onsetDateTime",
                           "recordedDate", "reaction"},
    "DiagnosticReport": {"status", "category", "code", "subject", "encounter",
                         "effectiveDateTime", "effectivePeriod", "issued", "conclusion"},
}
NOT_DATA_FIELDS = {"resourceType", "id", "meta", "text", "implicitRules", "language"}
SKIP_NO_TYPE = "bundle entry resource without a resourceType"


@dataclass(frozen=True)
class FhirReadSummary:
    """What :func:`read_fhir_summary` read: every resource found is read into a table, dropped as
    a duplicate of an identical resource, or skipped with a reason; nothing else happens to it.

    ``resources`` maps each resource type to ``{"found", "read", "duplicates", "skipped",
    "skip_reason"}`` (and, for the types read, ``fields_not_kept``: how many resources carry
    each top-level element that no table column holds, e.g. an Observation ``component``); ``dangling`` maps ``table.column`` to the number of references that point
    to no resource read (kept as written); ``renamed`` counts rows whose id got a suffix because
    another server had the same ``Type/id``.
    """

    n_files: int
    n_bundles: int
    resources: dict[str, dict[str, Any]]
    dangling: dict[str, int] = field(default_factory=dict)
    dangling_examples: dict[str, list[str]] = field(default_factory=dict)
    n_entries_without_resource: int = 0
    renamed: int = 0

    @property
    def n_found(self) -> int:
        return sum(r["found"] for r in self.resources.values())

    @property
    def n_read(self) -> int:
        return sum(r["read"] for r in self.resources.values())

    @property
    def n_accounted(self) -> int:
        """Resources read + duplicates + skipped: equals ``n_found`` (tested)."""
        return sum(r["read"] + r["duplicates"] + r["skipped"] for r in self.resources.values())

    def to_dict(self) -> dict[str, Any]:
        return {"n_files": self.n_files, "n_bundles": self.n_bundles,
                "n_resources_found": self.n_found, "n_resources_read": self.n_read,
                "n_duplicates": sum(r["duplicates"] for r in self.resources.values()),
                "n_skipped": sum(r["skipped"] for r in self.resources.values()),
                "n_accounted": self.n_accounted,
                "resources": {t: {**r, "fields_not_kept": dict(r.get("fields_not_kept", {}))}
                              if "fields_not_kept" in r else dict(r)
                              for t, r in sorted(self.resources.items())},
                "dangling_references": dict(self.dangling),
                "dangling_examples": {k: list(v) for k, v in self.dangling_examples.items()},
                "n_entries_without_resource": self.n_entries_without_resource,
                "n_ids_renamed": self.renamed}

    def lines(self) -> list[str]:
        """The summary as short lines for the CLI and logs (counts only, no values)."""
        n_dup = sum(r["duplicates"] for r in self.resources.values())
        n_skip = sum(r["skipped"] for r in self.resources.values())
        out = [(f"{self.n_found} resource(s) in {self.n_files} file(s) ({self.n_bundles} "
                f"bundle(s)): {self.n_read} read, {n_dup} duplicate(s), {n_skip} skipped")]
        for rtype, r in sorted(self.resources.items()):
            parts = [f"{r['read']} read"]
            if r["duplicates"]:
                parts.append(f"{r['duplicates']} duplicate(s)")
            if r["skipped"]:
                parts.append(f"{r['skipped']} skipped ({r['skip_reason']})")
            if r.get("fields_not_kept"):
                parts.append("elements not kept: " + ", ".join(
                    f"{k} ({n})" for k, n in sorted(r["fields_not_kept"].items())))
            out.append(f"  {rtype}: " + ", ".join(parts))
        if self.n_entries_without_resource:
            out.append(f"  bundle entries without a resource (e.g. responses): "
                       f"{self.n_entries_without_resource}")
        if self.renamed:
            out.append(f"  {self.renamed} id(s) given a suffix: the same Type/id came from "
                       "another server")
        for col, n in self.dangling.items():
            out.append(f"  WARNING {n} dangling reference(s) in {col} (point to no resource "
                       f"read; kept as written), e.g. {self.dangling_examples.get(col, [])[:3]}")
        return out


def read_fhir(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read FHIR R4 JSON into the tables of :data:`TABLES` (``patients``, ``encounters``, ...).

    Parameters
    ----------
    path
        A ``.json`` file holding one resource or a Bundle (any type: transaction, collection,
        batch-response, searchset, ...), an ``.ndjson`` file (a bulk ``$export`` output, one
        resource per line), or a folder searched recursively for such files. Resources of
        other types are skipped and counted (see :func:`read_fhir_summary`). A resource without
        an ``id`` gets one from its bundle entry's ``fullUrl`` or, failing that,
        ``"<type>-<n>"`` in reading order.

    Returns
    -------
    dict[str, DataFrame]
        Every table of :data:`TABLES` (possibly empty), keyed by table name. References
        (``Patient/x``, ``urn:uuid:...``, absolute URLs) are resolved to the plain ids.

    Raises
    ------
    DataError
        Unreadable JSON, one identity with two different contents, a code outside a required
        value set (e.g. gender) or a malformed date; the message names the file, the resource
        and the field.

    Examples
    --------
    >>> tables = read_fhir("fhir_r4_examples/")          # doctest: +SKIP
    >>> tables["observations"][["patient_id", "code", "value"]]   # doctest: +SKIP
    """
    return read_fhir_summary(path)[0]


def read_fhir_summary(path: str | Path) -> tuple[dict[str, pd.DataFrame], FhirReadSummary]:
    """:func:`read_fhir` plus the :class:`FhirReadSummary` of what was read, skipped and why.

    Dangling references are logged as one warning per column (counts and ids, no values).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"FHIR path not found: {p}")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (".json", ".ndjson")) \
        if p.is_dir() else [p]
    if not files:
        raise DataError(f"no .json or .ndjson files under {p}")
    found: list[_Found] = []
    counts = {"bundles": 0, "empty_entries": 0}
    for file in files:
        for resource, where in _load_file(file):
            found.extend(_flatten(resource, None, where, counts))
    kept, stats = _deduplicate(found)
    renamed = _assign_ids(kept)
    refs = _References(kept)
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for item in kept:
        ctx = f"{item.where}: {item.rtype}/{item.rid}"
        resolve = refs.bound(item, ctx)
        rows[TABLE_OF_RESOURCE[item.rtype]].append(_PARSERS[item.rtype](item.resource, item.row_id,
                                                                         resolve, ctx))
    summary = FhirReadSummary(n_files=len(files), n_bundles=counts["bundles"], resources=stats,
                              dangling=dict(refs.dangling),
                              dangling_examples={k: v[:5] for k, v in refs.examples.items()},
                              n_entries_without_resource=counts["empty_entries"], renamed=renamed)
    for col, n in summary.dangling.items():
        log.warning("FHIR %s: %d dangling reference(s) in %s point to no resource read "
                    "(kept as written)", p, n, col)
    return {name: _frame(rows[name], columns) for name, columns in TABLES.items()}, summary


@dataclass
class _Found:
    """One resource as found: where, its entry's fullUrl, and (after de-duplication) its ids."""

    resource: dict[str, Any]
    full_url: str | None
    where: str
    rtype: str = ""
    rid: str = ""          # the resource's own id (or one made from its fullUrl)
    base: str | None = None  # the server its fullUrl names ("http://a/fhir"), if any
    row_id: str = ""       # the id in the table (rid, or rid-2 when another server had rid)


def _load_file(file: Path) -> Iterator[tuple[dict[str, Any], str]]:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise DataError(f"{file}: cannot read: {err.strerror or err}") from err
    if file.suffix.lower() == ".ndjson":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _parse_json(line, f"{file}:{lineno}"), f"{file}:{lineno}"
        return
    yield _parse_json(text, str(file)), str(file)


def _parse_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict) or "resourceType" not in data:
        raise DataError(f"{where}: not a FHIR resource (a JSON object with 'resourceType' expected)")
    return data


def _flatten(resource: dict[str, Any], full_url: str | None, where: str,
             counts: dict[str, int]) -> Iterator[_Found]:
    """Yield every resource, expanding (nested) Bundles; count entries without a resource."""
    if resource.get("resourceType") != "Bundle":
        yield _Found(resource, full_url, where)
        return
    counts["bundles"] += 1
    bundle_where = f"{where} (Bundle {resource.get('id', '')})".replace(" )", ")")
    for i, entry in enumerate(resource.get("entry") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            counts["empty_entries"] += 1  # e.g. a transaction-response entry without a resource
            continue
        url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        yield from _flatten(entry["resource"], url, f"{bundle_where} entry {i}", counts)


def _canonical(resource: Mapping[str, Any]) -> str:
    """The content compared for de-duplication: everything but ``meta`` (versionId, lastUpdated
    change when the same resource is exported again)."""
    return json.dumps({k: v for k, v in resource.items() if k != "meta"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


def _deduplicate(found: list[_Found]) -> tuple[list[_Found], dict[str, dict[str, Any]]]:
    """Keep one copy of each resource; count per type what was read, duplicated, skipped."""
    stats: dict[str, dict[str, Any]] = {}
    generated: dict[str, int] = {}
    by_identity: dict[Any, tuple[str, _Found]] = {}
    by_content: set[tuple[str, str, str]] = set()
    kept: list[_Found] = []
    for item in found:
        rtype = item.resource.get("resourceType")
        rtype = rtype if isinstance(rtype, str) and rtype else "(no resourceType)"
        st = stats.setdefault(rtype, {"found": 0, "read": 0, "duplicates": 0, "skipped": 0,
                                      "skip_reason": None})
        st["found"] += 1
        if rtype not in TABLE_OF_RESOURCE:
            st["skipped"] += 1
            st["skip_reason"] = SKIP_NO_TYPE if rtype == "(no resourceType)" else SKIP_NOT_MAPPED
            continue
        rid = item.resource.get("id")
        match = _REF_RE.match(item.full_url) if item.full_url else None
        if match and match["type"] == rtype and (rid is None or str(rid) == match["id"]):
            item.base = match["base"]
        if rid is None:
            if item.full_url and item.full_url.startswith("urn:uuid:"):
                rid = item.full_url.removeprefix("urn:uuid:")
            elif match and match["type"] == rtype:
                rid = match["id"]
            else:
                generated[rtype] = generated.get(rtype, 0) + 1
                rid = f"{rtype.lower()}-{generated[rtype]}"
        item.rtype, item.rid = rtype, str(rid)
        content = _canonical(item.resource)
        identity = item.full_url or ("local", rtype, item.rid)
        if identity in by_identity:
            before, first = by_identity[identity]
            if before != content:
                named = item.full_url or f"{rtype}/{item.rid}"
                raise DataError(f"{item.where}: {named} is also in {first.where} with different "
                                "content; one resource cannot have two versions in one read (keep "
                                "the right one, or give them different ids or fullUrls)")
            st["duplicates"] += 1
            continue
        if (rtype, item.rid, content) in by_content:  # the same resource under another fullUrl
            st["duplicates"] += 1
            continue
        by_identity[identity] = (content, item)
        by_content.add((rtype, item.rid, content))
        st["read"] += 1
        dropped = st.setdefault("fields_not_kept", {})
        for name in set(item.resource) - KEPT_FIELDS[rtype] - NOT_DATA_FIELDS:
            dropped[name] = dropped.get(name, 0) + 1
        kept.append(item)
    return kept, stats


def _assign_ids(kept: list[_Found]) -> int:
    """Row ids: the resource id, or ``id-2``, ``id-3`` ... for the same Type/id from another
    server (or another fullUrl); returns how many got a suffix."""
    taken: dict[str, set[str]] = {}
    renamed = 0
    for item in kept:
        ids = taken.setdefault(item.rtype, set())
        row_id, n = item.rid, 1
        while row_id in ids:
            n += 1
            suffix = f"-{n}"
            row_id = item.rid[: 64 - len(suffix)] + suffix
        renamed += row_id != item.rid
        ids.add(row_id)
        item.row_id = row_id
    return renamed


class _References:
    """Resolve references to row ids: by fullUrl, then ``Type/id`` on the referring resource's
    server, then ``Type/id`` without a server, then a ``Type/id`` that exists only once."""

    def __init__(self, kept: list[_Found]) -> None:
        self.by_url: dict[str, _Found] = {}
        self.by_base: dict[tuple[str | None, str, str], _Found] = {}
        self.by_type_id: dict[tuple[str, str], list[_Found]] = {}
        for item in kept:
            if item.full_url:
                self.by_url[item.full_url] = item
            self.by_base.setdefault((item.base, item.rtype, item.rid), item)
            self.by_type_id.setdefault((item.rtype, item.rid), []).append(item)
        self.dangling: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def bound(self, item: _Found, ctx: str) -> Callable[[Any, str, str], str | None]:
        table = TABLE_OF_RESOURCE[item.rtype]

        def resolve(ref: Any, rtype: str, column: str) -> str | None:
            return self.resolve(ref, rtype, item.base, f"{table}.{column}")
        return resolve

    def resolve(self, ref: Any, rtype: str, base: str | None, column: str) -> str | None:
        """The row id a Reference points to when it points to a ``rtype``, else None; a
        reference to nothing read is counted as dangling and its id kept as written."""
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        text = ref["reference"].strip()
        if text.startswith("#"):
            return None  # a contained resource
        target = self.by_url.get(text)
        match = _REF_RE.match(text)
        if target is None and match is not None:
            if match["type"] != rtype:
                return None  # points to another type (e.g. a Group subject)
            rbase = match["base"] if match["base"] else base
            target = (self.by_base.get((rbase, rtype, match["id"]))
                      or self.by_base.get((None, rtype, match["id"])))
            if target is None and (match["base"] is None or match["base"] == base):
                same = self.by_type_id.get((rtype, match["id"]), [])
                target = same[0] if len(same) == 1 else None
        if target is not None:
            return target.row_id if target.rtype == rtype else None
        self.dangling[column] = self.dangling.get(column, 0) + 1
        examples = self.examples.setdefault(column, [])
        if len(examples) < 5:
            examples.append(text)
        if match is not None:
            return match["id"]
        return text.removeprefix("urn:uuid:") if _ID_RE.match(text.removeprefix("urn:uuid:")) \
            else None


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    for col in columns:  # empty strings would hide missing values
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    for col in ("deceased", "primary_source"):
        if col in df:
            df[col] = df[col].astype("boolean")
    for col in ("value", "reference_low", "reference_high"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


# -- element helpers ----------------------------------------------------------------------------
def _first(items: Any) -> dict[str, Any]:
    if isinstance(items, list):
        return next((x for x in items if isinstance(x, dict)), {})
    return items if isinstance(items, dict) else {}


def _coding(concept: Any) -> dict[str, Any]:
    return _first(_first(concept).get("coding"))


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


def _code_parts(concept: Any, prefix: str) -> dict[str, Any]:
    """``{prefix}_system``, ``{prefix}`` (code), ``{prefix}_display`` of the first coding."""
    c = _coding(concept)
    return {f"{prefix}_system": c.get("system"), prefix: c.get("code"),
            f"{prefix}_display": c.get("display")}


def _code_columns(r: Mapping[str, Any], element: str = "code") -> dict[str, Any]:
    code = _coding(r.get(element))
    return {"code_system": code.get("system"), "code": code.get("code"),
            "code_display": code.get("display"), "code_text": _first(r.get(element)).get("text")}


_Resolve = Callable[[Any, str, str], "str | None"]


# -- per resource ---------------------------------------------------------------------------------
def _parse_patient(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
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


def _links(r: Mapping[str, Any], ref: _Resolve, patient_field: str = "subject") -> dict[str, Any]:
    return {"patient_id": ref(r.get(patient_field), "Patient", "patient_id"),
            "encounter_id": ref(r.get("encounter"), "Encounter", "encounter_id")}


def _parse_encounter(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
    cls = _first(r.get("class"))
    typ = _coding(r.get("type"))
    period = r.get("period") or {}
    return {
        "encounter_id": rid, "patient_id": ref(r.get("subject"), "Patient", "patient_id"),
        "status": _check_code(r.get("status"), ENCOUNTER_STATUSES, ctx, "status"),
        "class_system": cls.get("system"), "class_code": cls.get("code"),
        "class_display": cls.get("display"), "type_system": typ.get("system"),
        "type_code": typ.get("code"), "type_display": typ.get("display"),
        "period_start": _check_date(period.get("start"), ctx, "period.start"),
        "period_end": _check_date(period.get("end"), ctx, "period.end"),
    }


def _parse_observation(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
    cat = _coding(r.get("category"))
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
    interp = _coding(r.get("interpretation"))
    rng = _first(r.get("referenceRange"))
    low, high = rng.get("low") or {}, rng.get("high") or {}
    notes = [str(n["text"]) for n in r.get("note") or [] if isinstance(n, dict) and n.get("text")]
    return {
        "observation_id": rid, **_links(r, ref),
        "status": _check_code(r.get("status"), OBSERVATION_STATUSES, ctx, "status"),
        "category_system": cat.get("system"), "category": cat.get("code"),
        **_code_columns(r),
        "effective": _check_date(effective, ctx, "effective"),
        "effective_end": _check_date(period.get("end"), ctx, "effectivePeriod.end"),
        "value": value, "value_unit": qty.get("unit"), "value_system": qty.get("system"),
        "value_unit_code": qty.get("code"), "value_string": value_string,
        "value_code_system": vcode.get("system"), "value_code": vcode.get("code"),
        "value_code_display": vcode.get("display"),
        "interpretation_system": interp.get("system"), "interpretation": interp.get("code"),
        "reference_low": low.get("value"), "reference_high": high.get("value"),
        "reference_unit": low.get("unit") or high.get("unit"), "reference_text": rng.get("text"),
        "note": "\n".join(notes) or None,
    }


def _parse_condition(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
    cat = _coding(r.get("category"))
    onset_period = r.get("onsetPeriod") or {}
    abatement_period = r.get("abatementPeriod") or {}
    severity, site = _coding(r.get("severity")), _coding(r.get("bodySite"))
    return {
        "condition_id": rid, **_links(r, ref),
        "clinical_status": _check_code(_coding(r.get("clinicalStatus")).get("code"),
                                       CONDITION_CLINICAL, ctx, "clinicalStatus"),
        "verification_status": _check_code(_coding(r.get("verificationStatus")).get("code"),
                                           CONDITION_VERIFICATION, ctx, "verificationStatus"),
        "category_system": cat.get("system"), "category": cat.get("code"),
        **_code_columns(r),
        "severity_system": severity.get("system"), "severity": severity.get("code"),
        "severity_display": severity.get("display"),
        "body_site_system": site.get("system"), "body_site": site.get("code"),
        "body_site_display": site.get("display"),
        "onset": _check_date(r.get("onsetDateTime") or onset_period.get("start"), ctx, "onset"),
        "onset_text": r.get("onsetString"),
        "abatement": _check_date(r.get("abatementDateTime") or abatement_period.get("start"),
                                 ctx, "abatement"),
        "abatement_text": r.get("abatementString"),
        "recorded_date": _check_date(r.get("recordedDate"), ctx, "recordedDate"),
    }


def _parse_medication_request(r: dict[str, Any], rid: str, ref: _Resolve,
                              ctx: str) -> dict[str, Any]:
    med = _coding(r.get("medicationCodeableConcept"))
    text = _first(r.get("medicationCodeableConcept")).get("text")
    if text is None and isinstance(r.get("medicationReference"), dict):
        text = r["medicationReference"].get("display")  # the Medication resource is not read
    dosage = _first(r.get("dosageInstruction"))
    return {
        "medication_request_id": rid, **_links(r, ref),
        "status": _check_code(r.get("status"), MEDICATION_REQUEST_STATUSES, ctx, "status"),
        "intent": _check_code(r.get("intent"), MEDICATION_REQUEST_INTENTS, ctx, "intent"),
        "medication_system": med.get("system"), "medication_code": med.get("code"),
        "medication_display": med.get("display"), "medication_text": text,
        "authored_on": _check_date(r.get("authoredOn"), ctx, "authoredOn"),
        "dosage_text": dosage.get("text"),
    }


def _parse_procedure(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
    period = r.get("performedPeriod") or {}
    return {
        "procedure_id": rid, **_links(r, ref),
        "status": _check_code(r.get("status"), PROCEDURE_STATUSES, ctx, "status"),
        **_code_columns(r),
        "performed": _check_date(r.get("performedDateTime") or period.get("start"), ctx,
                                 "performed"),
        "performed_end": _check_date(period.get("end"), ctx, "performedPeriod.end"),
    }


def _parse_immunization(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
    vaccine = _coding(r.get("vaccineCode"))
    primary = r.get("primarySource")
    return {
        "immunization_id": rid, **_links(r, ref, "patient"),
        "status": _check_code(r.get("status"), IMMUNIZATION_STATUSES, ctx, "status"),
        "vaccine_system": vaccine.get("system"), "vaccine_code": vaccine.get("code"),
        "vaccine_display": vaccine.get("display"),
        "occurrence": _check_date(r.get("occurrenceDateTime"), ctx, "occurrenceDateTime"),
        "primary_source": primary if isinstance(primary, bool) else None,
    }


def _parse_allergy(r: dict[str, Any], rid: str, ref: _Resolve, ctx: str) -> dict[str, Any]:
    reaction = _first(r.get("reaction"))
    manifestation = _coding(reaction.get("manifestation"))
    categories = [c for c in r.get("category") or [] if isinstance(c, str)]
    return {
        "allergy_id": rid, **_links(r, ref, "patient"),
        "clinical_status": _check_code(_coding(r.get("clinicalStatus")).get("code"),
                                       ALLERGY_CLINICAL, ctx, "clinicalStatus"),
        "verification_status": _check_code(_coding(r.get("verificationStatus")).get("code"),
                                           ALLERGY_VERIFICATION, ctx, "verificationStatus"),
        "type": _check_code(r.get("type"), ALLERGY_TYPES, ctx, "type"),
        "category": _check_code(categories[0] if categories else None, ALLERGY_CATEGORIES, ctx,
                                "category"),
        "criticality": _check_code(r.get("criticality"), ALLERGY_CRITICALITY, ctx, "criticality"),
        **_code_columns(r),
        "onset": _check_date(r.get("onsetDateTime"), ctx, "onsetDateTime"),
        "recorded_date": _check_date(r.get("recordedDate"), ctx, "recordedDate"),
        "reaction_system": manifestation.get("system"), "reaction": manifestation.get("code"),
        "reaction_display": manifestation.get("display"),
        "reaction_severity": _check_code(reaction.get("severity"), REACTION_SEVERITY, ctx,
                                         "reaction.severity"),
    }


def _parse_diagnostic_report(r: dict[str, Any], rid: str, ref: _Resolve,
                             ctx: str) -> dict[str, Any]:
    cat = _coding(r.get("category"))
    period = r.get("effectivePeriod") or {}
    return {
        "diagnostic_report_id": rid, **_links(r, ref),
        "status": _check_code(r.get("status"), DIAGNOSTIC_REPORT_STATUSES, ctx, "status"),
        "category_system": cat.get("system"), "category": cat.get("code"),
        **_code_columns(r),
        "effective": _check_date(r.get("effectiveDateTime") or period.get("start"), ctx,
                                 "effective"),
        "issued": _check_date(r.get("issued"), ctx, "issued"),
        "conclusion": r.get("conclusion"),
    }


_PARSERS = {"Patient": _parse_patient, "Encounter": _parse_encounter,
            "Observation": _parse_observation, "Condition": _parse_condition,
            "MedicationRequest": _parse_medication_request, "Procedure": _parse_procedure,
            "Immunization": _parse_immunization, "AllergyIntolerance": _parse_allergy,
            "DiagnosticReport": _parse_diagnostic_report}
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
    values: dict[str, Any] = {}
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
        **_subject_links(rec, ids, ctx),
    }
    if effective_end is not None:
        _check_order(effective, effective_end, ctx, "effectivePeriod")
        out["effectivePeriod"] = _compact({"start": effective, "end": effective_end})
    else:
        out["effectiveDateTime"] = effective
    out.update(values)
    interp = _concept(rec.get("interpretation_system"), rec.get("interpretation"))
    out["interpretation"] = [interp] if interp else None
    unit = _text(rec.get("reference_unit"))
    bounds = {}
    for end in ("low", "high"):
        v = rec.get(f"reference_{end}")
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DataError(f"{ctx}: reference_{end} is {v!r}; referenceRange.{end}.value "
                                "must be a finite number")
            bounds[end] = _compact({"value": v, "unit": unit})
    rng = _compact({**bounds, "text": _text(rec.get("reference_text"))})
    out["referenceRange"] = [rng] if rng else None
    note = _text(rec.get("note"))
    out["note"] = [{"text": note}] if note else None
    return _compact(out)


def _build_condition(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    clinical = _check_code(_text(rec.get("clinical_status")), CONDITION_CLINICAL, ctx, "clinicalStatus")
    verification = _check_code(_text(rec.get("verification_status")), CONDITION_VERIFICATION, ctx,
                               "verificationStatus")
    abatement = _date_text(rec.get("abatement"), ctx, "abatement", with_time=True)
    if verification == "entered-in-error" and clinical is not None:  # invariant con-5
        raise DataError(f"{ctx}: clinicalStatus must be empty when verificationStatus is "
                        "entered-in-error (FHIR invariant con-5)")
    if (abatement is not None or rec.get("abatement_text") is not None) and \
            clinical not in (None, "inactive", "resolved", "remission"):  # con-4
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
    abatement_text = _text(rec.get("abatement_text"))
    if abatement is not None and abatement_text is not None:
        raise DataError(f"{ctx}: both abatement and abatement_text are filled; a Condition has "
                        "one abatement[x]")
    site = _concept(rec.get("body_site_system"), rec.get("body_site"), rec.get("body_site_display"))
    return _compact({
        "resourceType": "Condition", "id": rec["condition_id"],
        "clinicalStatus": _concept(SYSTEM_CONDITION_CLINICAL, clinical) if clinical else None,
        "verificationStatus": _concept(SYSTEM_CONDITION_VERIFICATION, verification)
        if verification else None,
        "category": [category] if category else None,
        "severity": _concept(rec.get("severity_system"), rec.get("severity"),
                             rec.get("severity_display")),
        "code": _concept(rec.get("code_system"), rec.get("code"), rec.get("code_display"),
                         rec.get("code_text")),
        "bodySite": [site] if site else None,
        **_subject_links(rec, ids, ctx),
        "onsetDateTime": onset, "onsetString": _text(rec.get("onset_text")),
        "abatementDateTime": abatement, "abatementString": abatement_text,
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


def _subject_links(rec: Mapping[str, Any], ids: Mapping[str, set[str]], ctx: str,
                   patient_field: str = "subject") -> dict[str, Any]:
    return {patient_field: _ref("Patient", rec.get("patient_id"), ids.get("patients"), ctx,
                                patient_field, "patients"),
            "encounter": _ref("Encounter", rec.get("encounter_id"), ids.get("encounters"), ctx,
                              "encounter", "encounters")}


def _required(rec: Mapping[str, Any], column: str, allowed: frozenset[str], ctx: str,
              field: str) -> str:
    value = _check_code(_text(rec.get(column)), allowed, ctx, field)
    if value is None:
        raise DataError(f"{ctx}: {field} is required ({column}); use one of {sorted(allowed)}")
    return value


def _build_medication_request(rec: dict[str, Any], ids: Mapping[str, set[str]],
                              ctx: str) -> dict[str, Any]:
    med = _concept(rec.get("medication_system"), rec.get("medication_code"),
                   rec.get("medication_display"), rec.get("medication_text"))
    if med is None:
        raise DataError(f"{ctx}: medication is required (medication_code or medication_text)")
    if rec.get("patient_id") is None:
        raise DataError(f"{ctx}: patient_id is required (MedicationRequest.subject)")
    dosage = _text(rec.get("dosage_text"))
    return _compact({
        "resourceType": "MedicationRequest", "id": rec["medication_request_id"],
        "status": _required(rec, "status", MEDICATION_REQUEST_STATUSES, ctx, "status"),
        "intent": _required(rec, "intent", MEDICATION_REQUEST_INTENTS, ctx, "intent"),
        "medicationCodeableConcept": med, **_subject_links(rec, ids, ctx),
        "authoredOn": _date_text(rec.get("authored_on"), ctx, "authoredOn", with_time=True),
        "dosageInstruction": [{"text": dosage}] if dosage else None,
    })


def _build_procedure(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    if rec.get("patient_id") is None:
        raise DataError(f"{ctx}: patient_id is required (Procedure.subject)")
    start = _date_text(rec.get("performed"), ctx, "performed", with_time=True)
    end = _date_text(rec.get("performed_end"), ctx, "performedPeriod.end", with_time=True)
    out = {"resourceType": "Procedure", "id": rec["procedure_id"],
           "status": _required(rec, "status", PROCEDURE_STATUSES, ctx, "status"),
           "code": _concept(rec.get("code_system"), rec.get("code"), rec.get("code_display"),
                            rec.get("code_text")),
           **_subject_links(rec, ids, ctx)}
    if end is not None:
        _check_order(start, end, ctx, "performedPeriod")
        out["performedPeriod"] = _compact({"start": start, "end": end})
    else:
        out["performedDateTime"] = start
    return _compact(out)


def _build_immunization(rec: dict[str, Any], ids: Mapping[str, set[str]],
                        ctx: str) -> dict[str, Any]:
    vaccine = _concept(rec.get("vaccine_system"), rec.get("vaccine_code"), rec.get("vaccine_display"))
    if vaccine is None:
        raise DataError(f"{ctx}: vaccine_code is required (Immunization.vaccineCode)")
    if rec.get("patient_id") is None:
        raise DataError(f"{ctx}: patient_id is required (Immunization.patient)")
    occurrence = _date_text(rec.get("occurrence"), ctx, "occurrenceDateTime", with_time=True)
    if occurrence is None:
        raise DataError(f"{ctx}: occurrence is required (Immunization.occurrenceDateTime)")
    primary = rec.get("primary_source")
    return _compact({
        "resourceType": "Immunization", "id": rec["immunization_id"],
        "status": _required(rec, "status", IMMUNIZATION_STATUSES, ctx, "status"),
        "vaccineCode": vaccine, **_subject_links(rec, ids, ctx, "patient"),
        "occurrenceDateTime": occurrence,
        "primarySource": None if primary is None else bool(primary),
    })


def _build_allergy(rec: dict[str, Any], ids: Mapping[str, set[str]], ctx: str) -> dict[str, Any]:
    if rec.get("patient_id") is None:
        raise DataError(f"{ctx}: patient_id is required (AllergyIntolerance.patient)")
    clinical = _check_code(_text(rec.get("clinical_status")), ALLERGY_CLINICAL, ctx, "clinicalStatus")
    verification = _check_code(_text(rec.get("verification_status")), ALLERGY_VERIFICATION, ctx,
                               "verificationStatus")
    category = _check_code(_text(rec.get("category")), ALLERGY_CATEGORIES, ctx, "category")
    manifestation = _concept(rec.get("reaction_system"), rec.get("reaction"),
                             rec.get("reaction_display"))
    severity = _check_code(_text(rec.get("reaction_severity")), REACTION_SEVERITY, ctx,
                           "reaction.severity")
    if severity is not None and manifestation is None:
        raise DataError(f"{ctx}: reaction_severity needs a reaction (reaction.manifestation is "
                        "required in FHIR)")
    return _compact({
        "resourceType": "AllergyIntolerance", "id": rec["allergy_id"],
        "clinicalStatus": _concept(SYSTEM_ALLERGY_CLINICAL, clinical) if clinical else None,
        "verificationStatus": _concept(SYSTEM_ALLERGY_VERIFICATION, verification)
        if verification else None,
        "type": _check_code(_text(rec.get("type")), ALLERGY_TYPES, ctx, "type"),
        "category": [category] if category else None,
        "criticality": _check_code(_text(rec.get("criticality")), ALLERGY_CRITICALITY, ctx,
                                   "criticality"),
        "code": _concept(rec.get("code_system"), rec.get("code"), rec.get("code_display"),
                         rec.get("code_text")),
        **_subject_links(rec, ids, ctx, "patient"),
        "onsetDateTime": _date_text(rec.get("onset"), ctx, "onsetDateTime", with_time=True),
        "recordedDate": _date_text(rec.get("recorded_date"), ctx, "recordedDate", with_time=True),
        "reaction": [_compact({"manifestation": [manifestation], "severity": severity})]
        if manifestation else None,
    })


def _build_diagnostic_report(rec: dict[str, Any], ids: Mapping[str, set[str]],
                             ctx: str) -> dict[str, Any]:
    code = _concept(rec.get("code_system"), rec.get("code"), rec.get("code_display"),
                    rec.get("code_text"))
    if code is None:
        raise DataError(f"{ctx}: code is required (DiagnosticReport.code); fill code or code_text")
    category = _concept(rec.get("category_system"), rec.get("category"))
    issued = _date_text(rec.get("issued"), ctx, "issued", with_time=True)
    if issued is not None and "T" not in issued:  # issued is an instant: a full date and time
        raise DataError(f"{ctx}: issued is {issued!r}; an instant needs a date, a time and a "
                        "time zone (e.g. 2020-01-02T10:00:00Z)")
    return _compact({
        "resourceType": "DiagnosticReport", "id": rec["diagnostic_report_id"],
        "status": _required(rec, "status", DIAGNOSTIC_REPORT_STATUSES, ctx, "status"),
        "category": [category] if category else None, "code": code,
        **_subject_links(rec, ids, ctx),
        "effectiveDateTime": _date_text(rec.get("effective"), ctx, "effective", with_time=True),
        "issued": issued, "conclusion": _text(rec.get("conclusion")),
    })


_BUILDERS = {"Patient": _build_patient, "Encounter": _build_encounter,
             "Observation": _build_observation, "Condition": _build_condition,
             "MedicationRequest": _build_medication_request, "Procedure": _build_procedure,
             "Immunization": _build_immunization, "AllergyIntolerance": _build_allergy,
             "DiagnosticReport": _build_diagnostic_report}


def iter_resources(bundle: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Yield the resources of a Bundle dict (convenience for tests and callers)."""
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            yield entry["resource"]


def write_fhir_ndjson(tables: Mapping[str, pd.DataFrame], folder: str | Path) -> dict[str, Path]:
    """Write tables as NDJSON for bulk loading (one ``<ResourceType>.ndjson`` per type, one
    resource per line, as a ``$export`` produces), validated like :func:`write_fhir_bundle`.

    Every resource is validated before any file is written; each file is written atomically.
    Returns ``{resource type: path}``.
    """
    bundle = build_bundle(tables, bundle_type="collection")
    validate_bundle(bundle)
    by_type: dict[str, list[str]] = {}
    for resource in iter_resources(bundle):
        by_type.setdefault(resource["resourceType"], []).append(
            json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
    out_dir = Path(folder)
    from synthdata.io.files import private_dir

    private_dir(out_dir)
    return {rtype: atomic_write_text(out_dir / f"{rtype}.ndjson", "\n".join(lines) + "\n")
            for rtype, lines in by_type.items()}
