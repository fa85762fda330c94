"""Find columns that hold identifiers, by their names and by a sample of their values.

:func:`scan_identifiers` looks at every column of a table and returns one :class:`Finding` per
column that looks like a direct identifier or a Safe Harbor quasi-identifier, with the kind (an
:class:`~synthdata.medical.safe_harbor.IdentifierType` value), the evidence (counts, never values) and a
confidence in [0, 1]. The pipeline (:mod:`synthdata.pipeline.deid`) runs it before every fit: a
finding on a column the schema does not mark is an error unless ``deid.unmarked: transform``.

Recognisers (a sample of at most ``sample_size`` non-missing values per column, seeded):

- e-mail, URL: a regular expression; IP addresses: :mod:`ipaddress`;
- phone numbers: :mod:`phonenumbers` (valid for their region, or a possible number written
  with phone punctuation; region ``US`` unless the value starts with ``+``);
- national ids: :mod:`stdnum` checksums -- US SSN (``stdnum.us.ssn``), NHS number
  (``stdnum.gb.nhs``), IBAN (``stdnum.iban``), payment cards (``stdnum.luhn``, 13-19 digits);
- personal names: a lexicon of US Census 1990 first names and the 20,000 most frequent surnames
  (public domain; ``lexicon/README.md``), on columns with many distinct values;
- ZIP codes: five-digit (or ZIP+4) text, or a ZIP-like column name;
- dates finer than a year (day or month precision), as parsed strings or datetime columns;
  ``birth``/``dob`` in the name makes them birth dates;
- ages over 89: a numeric column with ``age`` in its name holding any value above 89 (the
  whole column is counted, not a sample: the rule is about rare values);
- record and account numbers: an id-like name (``id``, ``mrn``, ``record``, ``account`` ...)
  on a column of mostly distinct values, or digit-bearing codes without spaces that are almost
  all distinct;
- free text: long strings with spaces, mostly distinct;
- names alone: a column named like an e-mail, phone, SSN, address ... column is a finding even
  when its values do not confirm it (lower confidence).

Why not ``presidio-analyzer``: it is built around spaCy NLP models (``en_core_web_lg``, about
500 MB) that its ``AnalyzerEngine`` loads by default and that cannot be downloaded on the
machines this project runs on; without them its name recogniser (the part we need most) does
not work, and its pattern recognisers for e-mail, phone (it uses ``phonenumbers`` too), credit
cards and SSN are what this module does with the same libraries. It scans free text entity by
entity, while a table is judged per column, where counts over a sample are stronger evidence
than one match. So we use ``phonenumbers`` and ``python-stdnum`` directly and ship a small
public-domain name lexicon instead of a 500 MB model.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from synthdata.medical.safe_harbor import IdentifierType, guess_identifier_type
from synthdata.schema.model import ColumnKind, PiiRole, Schema

SAMPLE_SIZE = 500
MIN_SHARE = 0.5          # share of sampled values a value recogniser must match
AGE_LIMIT = 89

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_URL = re.compile(r"^(https?://|www\.)[^\s]+$", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+(\s*(x|ext\.?)\s*\d{1,6})?$", re.IGNORECASE)
_PHONE_PUNCT = re.compile(r"[\s().\-/+]")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
_DATE_DAY = re.compile(r"^(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
                       r"([ T]\d{1,2}:\d{2}.*)?$")
_CODE = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9\-_/.:]{3,}$")
_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z'\-.]*$")
_PERSON_NAME_COLUMN = re.compile(
    r"^(patient|person|client|member|subject|first|last|given|family|full|middle|maiden|"
    r"sur|fore|pt)?[_ .-]?(name|surname|forename)s?$", re.IGNORECASE)
_ID_COLUMN = re.compile(
    r"(^|[_.\s-])(id|ids|key|uuid|guid|pid|mrn|number|no|num|nr|code|account|acct|record|"
    r"accession|member|policy|plan|licen[cs]e|serial)$|^(id|mrn|record|account)([_.\s-]|$)",
    re.IGNORECASE)
# Name-only findings: a column named like these is an identifier whatever its values show.
_NAME_ONLY = {IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.FAX, IdentifierType.SSN,
              IdentifierType.MRN, IdentifierType.URL, IdentifierType.IP, IdentifierType.ZIP,
              IdentifierType.GEO, IdentifierType.DEVICE, IdentifierType.BIRTH_DATE}


@dataclass(frozen=True)
class Finding:
    """One column that looks like an identifier."""

    column: str
    kind: str            # an IdentifierType value
    evidence: str        # counts and name rules; never a value from the data
    confidence: float
    table: str | None = None

    @property
    def qualified(self) -> str:
        return self.column if self.table is None else f"{self.table}.{self.column}"

    def describe(self) -> str:
        return f"{self.qualified!r} looks like {self.kind} ({self.evidence}; " \
               f"confidence {self.confidence:.2f})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_identifiers(df: pd.DataFrame, schema: Schema | None = None, *,
                     sample_size: int = SAMPLE_SIZE, seed: int = 0,
                     table: str | None = None) -> list[Finding]:
    """One :class:`Finding` per column of ``df`` that looks like an identifier.

    ``schema`` (optional) only tells which columns are free text by kind. The evidence counts
    matches among a seeded sample of at most ``sample_size`` non-missing values; values are
    never copied into a finding.

    Examples
    --------
    >>> findings = scan_identifiers(df)                            # doctest: +SKIP
    >>> [(f.column, f.kind) for f in findings]                     # doctest: +SKIP
    [('email', 'email'), ('zip', 'zip')]
    """
    findings = []
    for i, column in enumerate(df.columns):
        kind = schema[column].kind if schema is not None and column in schema else None
        found = scan_column(df[column], kind=kind, sample_size=sample_size, seed=seed + i)
        if found is not None:
            findings.append(Finding(str(column), found[0].value, found[1], found[2], table))
    return findings


def unresolved(findings: Iterable[Finding], schema: Schema,
               handled: Iterable[str] = ()) -> list[Finding]:
    """The findings the schema leaves open: not ``pii: none`` and not handled by de-identification.

    ``handled`` lists the columns de-identification already transforms (marked ``direct`` or
    ``quasi`` with a known type, ``text`` columns, ``deid.types`` entries).
    """
    done = set(handled)
    out = []
    for f in findings:
        col = schema[f.column] if f.column in schema else None
        if f.column in done or (col is not None and col.pii == PiiRole.NONE):
            continue
        out.append(f)
    return out


def unmarked_message(findings: list[Finding], where: str) -> str:
    """The one-line error for findings the schema does not mark, with the ways out."""
    items = "; ".join(f.describe() for f in findings)
    return (f"{where}: {len(findings)} column(s) look like identifiers that the schema does not "
            f"mark, so they would be learned and could be copied into synthetic data: {items}. "
            "Mark each in the schema with `pii: direct` (dropped) or `pii: quasi` (generalised "
            "by the Safe Harbor rules), or with `pii: none` if you reviewed it and it is not an "
            "identifier; or set `deid.unmarked: transform` to apply the Safe Harbor rule to them "
            "automatically")


def scan_column(series: pd.Series, *, kind: ColumnKind | None = None,
                sample_size: int = SAMPLE_SIZE, seed: int = 0
                ) -> tuple[IdentifierType, str, float] | None:
    """``(type, evidence, confidence)`` for one column, or None when nothing looks identifying."""
    name = str(series.name)
    by_name = guess_identifier_type(name)
    nonnull = series.dropna()
    if len(nonnull) == 0:
        return None
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if by_name == IdentifierType.AGE and numeric:
        over = int((pd.to_numeric(nonnull, errors="coerce") > AGE_LIMIT).sum())
        if over:
            return (IdentifierType.AGE, f"name suggests an age and {over} of {len(nonnull)} "
                    f"values are over {AGE_LIMIT}", 0.9)
        return None
    kind_: IdentifierType | None
    if pd.api.types.is_datetime64_any_dtype(series):
        kind_ = IdentifierType.BIRTH_DATE if by_name == IdentifierType.BIRTH_DATE \
            else IdentifierType.DATE
        return kind_, f"a datetime column ({len(nonnull)} values with day precision)", 0.9
    if pd.api.types.is_bool_dtype(series):
        return None
    n_distinct = int(nonnull.nunique())
    distinct_share = n_distinct / len(nonnull)
    sample = _sample(nonnull, sample_size, seed)
    if numeric:
        whole = np.all(np.isfinite(sample.to_numpy(dtype=float))) and \
            np.all(sample.to_numpy(dtype=float) == np.round(sample.to_numpy(dtype=float)))
        if not whole:
            return None
        texts = [str(int(v)) for v in sample.to_numpy(dtype=float)]
    else:
        texts = [str(v).strip() for v in sample.tolist()]
    m = len(texts)
    hits = _value_hits(texts, numeric=numeric)
    best = max(hits, key=lambda k: hits[k][0]) if hits else None
    if best is not None and hits[best][0] >= MIN_SHARE * m:
        count, what = hits[best]
        kind_ = best
        if best == IdentifierType.DATE and by_name == IdentifierType.BIRTH_DATE:
            kind_ = IdentifierType.BIRTH_DATE
        if best == IdentifierType.ZIP and numeric and by_name != IdentifierType.ZIP:
            kind_ = None  # five-digit numbers are ZIPs only when the name says so
        if kind_ is not None:
            conf = 0.6 + 0.35 * count / m
            if by_name == kind_:
                conf = min(0.99, conf + 0.05)
            return kind_, f"{count}/{m} sampled values {what}" + _name_note(by_name, kind_), \
                round(conf, 2)
    if not numeric and n_distinct >= 10:
        count = _name_hits(texts)
        if count >= MIN_SHARE * m and (n_distinct >= 20 or distinct_share >= 0.5):
            return (IdentifierType.NAME, f"{count}/{m} sampled values are made of personal "
                    f"names (US Census first/last name lists); {n_distinct} distinct values",
                    round(0.55 + 0.4 * count / m, 2))
    if _PERSON_NAME_COLUMN.search(name) and not numeric:
        return IdentifierType.NAME, "the column name says personal name", 0.6
    if kind == ColumnKind.TEXT or (not numeric and _free_text(texts, distinct_share)):
        return (IdentifierType.FREE_TEXT, f"free text: mean length "
                f"{np.mean([len(t) for t in texts]):.0f} characters, "
                f"{distinct_share:.0%} distinct values", 0.8)
    id_name = _ID_COLUMN.search(name) is not None or by_name in (IdentifierType.MRN,
                                                                  IdentifierType.DEVICE)
    if id_name and distinct_share >= 0.5 and len(nonnull) >= 10:
        kind_ = by_name if by_name in _NAME_ONLY - {IdentifierType.ZIP} else IdentifierType.OTHER_ID
        if kind_ in (IdentifierType.GEO, IdentifierType.BIRTH_DATE):
            kind_ = IdentifierType.OTHER_ID
        return (kind_, f"an id-like column name and {distinct_share:.0%} distinct values "
                "(record or account number)", 0.75)
    if not numeric and len(nonnull) >= 20 and distinct_share >= 0.9:
        codes = sum(bool(_CODE.match(t)) for t in texts)
        if codes >= 0.9 * m:
            found = (f"{codes}/{m} sampled values are codes with digits and "
                     f"{distinct_share:.0%} of values are distinct")
            if by_name in _NAME_ONLY - {IdentifierType.ZIP, IdentifierType.GEO,
                                        IdentifierType.BIRTH_DATE} and by_name is not None:
                return by_name, found + "; the column name says " + by_name.value, 0.75
            return IdentifierType.OTHER_ID, found + " (record or account number)", 0.7
    return _name_only(by_name, n_distinct)


def _name_only(by_name: IdentifierType | None, n_distinct: int
               ) -> tuple[IdentifierType, str, float] | None:
    """A finding from the column name alone; a few distinct values (``phone_service``: yes/no)
    are a category about the thing, not an identifier."""
    if by_name in _NAME_ONLY and n_distinct >= 10:
        return (by_name, f"the column name suggests {by_name.value} and it has {n_distinct} "
                "distinct values", 0.5)
    return None


def _name_note(by_name: IdentifierType | None, kind: IdentifierType) -> str:
    return "; the column name agrees" if by_name == kind else ""


def _sample(values: pd.Series, size: int, seed: int) -> pd.Series:
    if len(values) <= size:
        return values
    return values.sample(n=size, random_state=np.random.default_rng(seed))


def _value_hits(texts: list[str], *, numeric: bool) -> dict[IdentifierType, tuple[int, str]]:
    """For each value recogniser: how many of ``texts`` it accepts, and what that means."""
    out: dict[IdentifierType, tuple[int, str]] = {}
    if not numeric:
        out[IdentifierType.EMAIL] = (sum(bool(_EMAIL.match(t)) for t in texts),
                                     "are e-mail addresses")
        out[IdentifierType.URL] = (sum(bool(_URL.match(t)) for t in texts), "are URLs")
        out[IdentifierType.IP] = (sum(_is_ip(t) for t in texts), "are IP addresses")
        dates = sum(bool(_DATE_DAY.match(t)) for t in texts)
        if dates:
            parsed = pd.to_datetime(pd.Series(texts), errors="coerce", format="mixed")
            dates = int((parsed.notna() & pd.Series([bool(_DATE_DAY.match(t)) for t in texts]))
                        .sum())
        out[IdentifierType.DATE] = (dates, "are dates finer than a year (day or month)")
    out[IdentifierType.ZIP] = (sum(bool(_ZIP.match(t)) for t in texts),
                               "are five-digit ZIP codes" if not numeric
                               else "are five-digit numbers")
    ids = _checksum_hits(texts)
    out.update(ids)
    out[IdentifierType.PHONE] = (_phone_hits(texts), "are phone numbers (phonenumbers: valid, "
                                 "or possible and written as a phone number)")
    return out


def _is_ip(text: str) -> bool:
    if not re.fullmatch(r"[0-9a-fA-F:.]{7,45}", text) or ("." not in text and ":" not in text):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _checksum_hits(texts: list[str]) -> dict[IdentifierType, tuple[int, str]]:
    from stdnum import iban, luhn
    from stdnum.gb import nhs
    from stdnum.us import ssn

    digits = [re.sub(r"[\s\-]", "", t) for t in texts]
    n_ssn = sum(bool(re.fullmatch(r"\d{3}-?\d{2}-?\d{4}", t)) and ssn.is_valid(t) for t in texts)
    n_nhs = sum(len(d) == 10 and d.isdigit() and bool(re.fullmatch(r"\d{3}[\s-]?\d{3}[\s-]?\d{4}", t))
                and nhs.is_valid(d) for t, d in zip(texts, digits, strict=True))
    n_iban = sum(bool(re.fullmatch(r"[A-Za-z]{2}\d{2}[A-Za-z0-9 ]{10,32}", t)) and iban.is_valid(t)
                 for t in texts)
    n_card = sum(d.isdigit() and 13 <= len(d) <= 19 and luhn.is_valid(d) for d in digits)
    return {IdentifierType.SSN: (n_ssn, "are valid US social security numbers (stdnum.us.ssn)"),
            IdentifierType.OTHER_ID: (max(n_nhs, n_iban, n_card),
                                      "pass a national-id or account checksum (NHS number, "
                                      "IBAN or Luhn payment card; python-stdnum)")}


def _phone_hits(texts: list[str]) -> int:
    import phonenumbers

    count = 0
    for t in texts:
        if not _PHONE_CHARS.match(t):
            continue
        n_digits = sum(ch.isdigit() for ch in t.split("x")[0])
        if not 7 <= n_digits <= 15:
            continue
        try:
            number = phonenumbers.parse(t, None if t.startswith("+") else "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            count += 1
        elif phonenumbers.is_possible_number(number) and _PHONE_PUNCT.search(t) \
                and not _DATE_DAY.match(t):
            count += 1
    return count


@cache
def _lexicon() -> tuple[frozenset[str], frozenset[str]]:
    folder = resources.files("synthdata.medical") / "lexicon"
    first = frozenset((folder / "first_names.txt").read_text(encoding="utf-8").split())
    last = frozenset((folder / "last_names.txt").read_text(encoding="utf-8").split())
    return first, last


def _name_hits(texts: list[str]) -> int:
    """Values that are one to four name-like words, each a known first or last name.

    Single words count when they are a known name; two or more words need a known first name
    and a known last name (``"Mary Smith"``, ``"Smith, Mary"``, ``"Dr. Mary A. Smith"``).
    """
    first, last = _lexicon()
    titles = {"mr", "mrs", "ms", "miss", "dr", "prof", "jr", "sr", "ii", "iii", "iv", "md",
              "phd", "dds", "dvm"}
    count = 0
    for text in texts:
        words = [w.strip(".,").lower() for w in re.split(r"[\s,]+", text) if w.strip(".,")]
        words = [w for w in words if w not in titles and len(w) > 1]
        if not 1 <= len(words) <= 4 or not all(_NAME_TOKEN.match(w) for w in words):
            continue
        if len(words) == 1:
            count += words[0] in first or words[0] in last
        else:
            count += any(w in first for w in words) and any(w in last for w in words)
    return count


def _free_text(texts: list[str], distinct_share: float) -> bool:
    if not texts or distinct_share < 0.5:
        return False
    mean_len = float(np.mean([len(t) for t in texts]))
    spaced = sum(t.count(" ") >= 3 for t in texts) / len(texts)
    return mean_len > 30 and spaced > 0.5
