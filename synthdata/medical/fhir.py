"""Synthetic FHIR records that hang together: the FHIR tables mapped onto relational generation.

:func:`synthdata.io.fhir.read_fhir` gives flat tables (ISO date strings, one row per resource).
Fitted on those as they are, a relational generator treats an observation's value, its code and
its date as unrelated columns, so values bleed across codes (a BMI of 221), observations fall
outside their encounter and events after death. :class:`FhirSynthesizer` re-expresses the tables
so that the coherence is structural, then maps the synthetic rows back to FHIR tables:

- **Links.** ``patients -> encounters -> every event table`` (observations, conditions,
  medication requests, procedures, immunizations, allergies, diagnostic reports). An event's
  patient is its encounter's patient, so no reference can dangle or cross patients. Event rows
  without an encounter, and patients without a birth date, are not learned (counted in
  ``not_learned_``).
- **Times.** A patient keeps a birth date and a death as days after their last encounter
  (and an age at death for patients without encounters); an encounter its start as days after
  birth and its length in hours (order within the patient by start); an event its place
  inside its encounter as a fraction of the encounter's length (clipped to [0, 1]), so it is
  dated inside its encounter by construction, and the death follows the last encounter. A
  death date that still falls before an event (a patient whose death was learned as an age
  only) moves to that event (counted in ``fixes_``): nothing happens after death.
- **Codes.** Codes are categorical columns, so only codes of the input appear; a code's
  system, display, text, category, unit and reference range are attributes of the code (its
  most frequent value in the input), not learned separately, so they cannot disagree with it.
- **Values per code.** A numeric observation value is learned as a z-score within its code
  (mean and standard deviation of that code) and mapped back with the synthetic row's code,
  then clipped to the code's observed range; a coded value that the code never takes is
  redrawn from that code's values. Values therefore stay conditional on the code (see
  :func:`coherence_checks`).
- **Codes that never repeat.** An encounter type that no real patient has twice (e.g. a
  first-visit code) is kept once per synthetic patient; later ones get a repeatable type
  drawn from the synthetic types (counted in ``fixes_``).

Patient names, identifiers, addresses and contacts are not learned or written (direct and quasi
identifiers); synthetic patients carry gender, birth date and death date only. Per-code
statistics and the reassignments read the real data, so this synthesizer runs without
differential privacy only (``privacy=`` is refused).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pandas as pd

from synthdata._rng import child_seed, make_rng
from synthdata.errors import ConfigError, DataError, NotFittedError
from synthdata.schema.model import Column, ColumnKind, Schema

log = logging.getLogger(__name__)

EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
DAY_NS = 86_400 * 10**9
MIN_EVENT_ROWS = 10   # an event table with fewer rows linked to an encounter is not synthesised

# per event table: (code column, time column, end-time column or None, learned categoricals,
# code attributes copied from the code's most frequent value)
EVENT_SPECS: dict[str, tuple[str, str, str | None, tuple[str, ...], tuple[str, ...]]] = {
    "observations": ("code", "effective", None, ("status", "interpretation"),
                     ("code_system", "code_display", "code_text", "category_system", "category",
                      "value_unit", "value_system", "value_unit_code", "reference_low",
                      "reference_high", "reference_unit", "reference_text")),
    "conditions": ("code", "onset", None, ("clinical_status", "verification_status", "severity"),
                   ("code_system", "code_display", "code_text", "category_system", "category",
                    "severity_system", "severity_display")),
    "medication_requests": ("medication_code", "authored_on", None, ("status", "intent"),
                            ("medication_system", "medication_display", "medication_text",
                             "dosage_text")),
    "procedures": ("code", "performed", "performed_end", ("status",),
                   ("code_system", "code_display", "code_text")),
    "immunizations": ("vaccine_code", "occurrence", None, ("status", "primary_source"),
                      ("vaccine_system", "vaccine_display")),
    "allergies": ("code", "recorded_date", None,
                  ("clinical_status", "verification_status", "criticality", "reaction_severity"),
                  ("code_system", "code_display", "code_text", "type", "category",
                   "reaction_system", "reaction", "reaction_display")),
    "diagnostic_reports": ("code", "effective", None, ("status",),
                           ("code_system", "code_display", "code_text", "category_system",
                            "category")),
}
ENCOUNTER_ATTRS = {"type_code": ("type_system", "type_display"),
                   "class_code": ("class_system", "class_display")}
FRAC, VALUE_Z, VALUE_CODE = "__frac", "__value_z", "value_code"
ABATE_DAYS, END_HOURS = "__abate_days", "__end_hours"


def _times(series: pd.Series) -> pd.Series:
    """ISO 8601 strings (full or partial dates) as UTC timestamps; NaT when missing."""
    return pd.to_datetime(series.astype(object).where(series.notna(), None), utc=True,
                          format="ISO8601", errors="coerce")


def _days(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as float days since 1970 (NaN for NaT)."""
    ns = ts.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
    ns[ts.isna().to_numpy()] = np.nan
    return ns / DAY_NS


def _iso(days: np.ndarray, *, with_time: bool = True) -> list[str | None]:
    out: list[str | None] = []
    for d in days:
        if not np.isfinite(d):
            out.append(None)
            continue
        ts = EPOCH + pd.Timedelta(round(d * DAY_NS), unit="ns")
        out.append(ts.strftime("%Y-%m-%dT%H:%M:%SZ") if with_time else ts.strftime("%Y-%m-%d"))
    return out


def _cat(name: str, nullable: bool = True) -> Column:
    return Column(name, ColumnKind.CATEGORICAL, dtype="object", nullable=nullable)


def _num(name: str, low: float | None = None) -> Column:
    return Column(name, ColumnKind.CONTINUOUS, dtype="float64", nullable=True, min=low)


def _key(name: str) -> Column:
    return Column(name, ColumnKind.ID, dtype="object", nullable=False)


def _decimals(values: pd.Series) -> int:
    """The most decimals the values are written with (at most 6)."""
    best = 0
    for v in values.to_numpy(dtype=float)[:5000]:
        text = f"{v:.6f}".rstrip("0")
        best = max(best, len(text.split(".")[1]) if "." in text else 0)
    return min(best, 6)


def _mode_map(df: pd.DataFrame, code: str, attrs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{code: {attribute: its most frequent value}}`` (missing when never filled)."""
    out: dict[str, dict[str, Any]] = {}
    present = [a for a in attrs if a in df.columns]
    for value, group in df.dropna(subset=[code]).groupby(code, sort=False):
        row = {}
        for a in present:
            filled = group[a].dropna()
            row[a] = filled.mode().iloc[0] if len(filled) else None
        out[str(value)] = row
    return out


class FhirSynthesizer:
    """Fit the FHIR tables of :func:`~synthdata.io.fhir.read_fhir` and sample coherent ones.

    Parameters
    ----------
    generator
        Per-table generator (``"gmm"``, ``"vae"``, ``"ctgan"``), as in
        :class:`~synthdata.relational.synthesizer.RelationalSynthesizer`.
    generator_params
        Keyword parameters for every table's generator.
    seed
        One seed for everything.
    privacy
        Must be ``None``: see the module docstring.

    Examples
    --------
    >>> tables = read_fhir("bundle.json")                                # doctest: +SKIP
    >>> synth = FhirSynthesizer(seed=0).fit(tables).sample(500)           # doctest: +SKIP
    >>> write_fhir_bundle(synth, "synthetic.json")                        # doctest: +SKIP
    """

    def __init__(self, *, generator: str = "gmm", generator_params: Mapping[str, Any] | None = None,
                 seed: int | None = 0, privacy: Any = None) -> None:
        self.generator, self.generator_params = generator, generator_params
        self.seed, self.privacy = seed, privacy

    # -- fit ------------------------------------------------------------------------------
    def fit(self, tables: Mapping[str, pd.DataFrame], *, ledger: Any = None) -> Self:
        """Learn the tables (``patients`` and ``encounters`` are required); returns self."""
        from synthdata.relational.schema import ForeignKey, MultiTableSchema
        from synthdata.relational.synthesizer import RelationalSynthesizer

        if self.privacy is not None:
            raise ConfigError("FhirSynthesizer runs without differential privacy only (per-code "
                              "value statistics and code attributes read the real data); remove "
                              "privacy, or synthesise the FHIR tables with a declared schema")
        for name in ("patients", "encounters"):
            if name not in tables or not len(tables[name]):
                raise DataError(f"FHIR synthesis needs {name!r} rows (a Patient and an Encounter "
                                f"resource at least); the input has none")
        rng = make_rng(self.seed)
        self.not_learned_: dict[str, int] = {}
        model_tables, schemas = self._encode(tables)
        fks = [ForeignKey("encounters", "patient_id", "patients", "patient_id", order_by="__start")]
        fks += [ForeignKey(t, "encounter_id", "encounters", "encounter_id") for t in self.events_]
        pks = {t: pk for t in schemas if (pk := schemas[t].primary_key) is not None}
        ms = MultiTableSchema(tables=schemas, primary_keys=pks, foreign_keys=fks, name="fhir")
        self.relational_ = RelationalSynthesizer(ms, generator=self.generator,
                                                 generator_params=self.generator_params,
                                                 seed=child_seed(rng))
        self.relational_.fit(model_tables, ledger=ledger)
        self._sample_rng = np.random.default_rng(child_seed(rng))
        return self

    def _encode(self, tables: Mapping[str, pd.DataFrame]
                ) -> tuple[dict[str, pd.DataFrame], dict[str, Schema]]:
        pats = tables["patients"]
        birth = _days(_times(pats["birth_date"]))
        death = _days(_times(pats["deceased_date"])) if "deceased_date" in pats else \
            np.full(len(pats), np.nan)
        has_birth = np.isfinite(birth)
        if not has_birth.any():
            raise DataError("FHIR synthesis needs patients with a birthDate; none of "
                            f"{len(pats)} patient(s) has one")
        if (~has_birth).any():
            self.not_learned_["patients without a birth date"] = int((~has_birth).sum())
        p = pd.DataFrame({"patient_id": pats["patient_id"].astype(str).to_numpy(),
                          "gender": pats["gender"].astype(object).to_numpy(),
                          "__birth": birth, "__death_age": death - birth})[has_birth]
        p = p.reset_index(drop=True)
        birth_of = dict(zip(p["patient_id"], p["__birth"]))

        enc = tables["encounters"]
        start = _days(_times(enc["period_start"]))
        end = _days(_times(enc["period_end"]))
        pid = enc["patient_id"].astype(object).where(enc["patient_id"].notna(), None)
        b = np.array([birth_of.get(x, np.nan) if x is not None else np.nan for x in pid])
        ok = np.isfinite(b) & np.isfinite(start)
        if (~ok).any():
            self.not_learned_["encounters without a start date or a known patient"] = int((~ok).sum())
        e = pd.DataFrame({"encounter_id": enc["encounter_id"].astype(str).to_numpy(),
                          "patient_id": pid.astype(object).to_numpy(),
                          "status": enc["status"].astype(object).to_numpy(),
                          "class_code": enc["class_code"].astype(object).to_numpy(),
                          "type_code": enc["type_code"].astype(object).to_numpy(),
                          "__start": start - b,
                          "__hours": np.clip((end - start) * 24.0, 0.0, None)})[ok]
        e = e.reset_index(drop=True)
        self.enc_attrs_ = {c: _mode_map(enc, c, attrs) for c, attrs in ENCOUNTER_ATTRS.items()}
        # codes that no patient has twice are kept once per synthetic patient
        typed = e.dropna(subset=["type_code"])
        repeats = typed.groupby(["patient_id", "type_code"]).size().groupby("type_code").max()
        self.single_use_codes_ = sorted(str(c) for c, n in repeats.items() if n <= 1)
        enc_span = e.set_index("encounter_id")[["__start", "__hours"]]
        enc_start_abs = dict(zip(e["encounter_id"], e["__start"] + np.array(
            [birth_of[x] for x in e["patient_id"]])))

        # death as days after the patient's last encounter (so it follows their records) and,
        # for patients without encounters, as an age
        ends = e["__start"] + np.nan_to_num(e["__hours"]) / 24.0 + \
            e["patient_id"].map(birth_of).to_numpy(dtype=float)
        last = ends.groupby(e["patient_id"].to_numpy()).max()
        gap = p["__birth"] + p["__death_age"] - p["patient_id"].map(last).to_numpy(dtype=float)
        p["__death_gap"] = np.clip(gap.to_numpy(dtype=float), 0.0, None)
        out = {"patients": p, "encounters": e}
        schemas = {
            "patients": Schema((_key("patient_id"), _cat("gender"), _num("__birth"),
                                _num("__death_age", 0.0), _num("__death_gap", 0.0)),
                               name="patients", primary_key="patient_id"),
            "encounters": Schema((_key("encounter_id"), _key("patient_id"), _cat("status"),
                                  _cat("class_code"), _cat("type_code"), _num("__start", 0.0),
                                  _num("__hours", 0.0)), name="encounters",
                                 primary_key="encounter_id"),
        }
        self.events_: list[str] = []
        self.required_: dict[tuple[str, str], str] = {}
        self.time_required_: dict[str, bool] = {}
        self.code_attrs_: dict[str, dict[str, dict[str, Any]]] = {}
        self.value_stats_: dict[str, tuple[float, float, float, float]] = {}
        self.value_codes_: dict[str, tuple[list[str], np.ndarray]] = {}
        for tname, (code, tcol, endcol, cats, attrs) in EVENT_SPECS.items():
            df = tables.get(tname)
            if df is None or not len(df):
                continue
            linked = df["encounter_id"].astype(object).isin(set(e["encounter_id"])).to_numpy()
            if (~linked).any():
                self.not_learned_[f"{tname} rows without a known encounter"] = int((~linked).sum())
            df = df.loc[linked].reset_index(drop=True)
            if len(df) < MIN_EVENT_ROWS:
                if len(df):
                    self.not_learned_[f"{tname} rows (fewer than {MIN_EVENT_ROWS}: table not "
                                      "synthesised)"] = len(df)
                continue
            eid = df["encounter_id"].astype(str)
            t = _days(_times(df[tcol]))
            s = eid.map(enc_start_abs).to_numpy(dtype=float)
            hours = enc_span["__hours"].reindex(eid).to_numpy(dtype=float)
            frac = np.where(hours > 0, (t - s) * 24.0 / np.where(hours > 0, hours, 1.0), 0.0)
            frac = np.where(np.isfinite(t), np.clip(frac, 0.0, 1.0), np.nan)
            key = df.columns[0]
            m = pd.DataFrame({key: df[key].astype(str).to_numpy(), "encounter_id": eid.to_numpy(),
                              code: df[code].astype(object).to_numpy(), FRAC: frac})
            code_missing = bool(m[code].isna().any())
            time_missing = bool(np.isnan(frac).any())
            self.time_required_[tname] = not time_missing
            cols = [_key(key), _key("encounter_id"), _cat(code, nullable=code_missing),
                    Column(FRAC, ColumnKind.CONTINUOUS, dtype="float64", nullable=time_missing)]
            if not code_missing:  # a code every input row has stays filled
                self.required_[(tname, code)] = str(m[code].mode().iloc[0])
            for c in cats:
                if c in df.columns and df[c].notna().any():
                    m[c] = df[c].astype(object).map(lambda v: None if pd.isna(v) else str(v))
                    cols.append(_cat(c, nullable=bool(m[c].isna().any())))
                    if not m[c].isna().any():  # a required code (status, intent) stays filled
                        self.required_[(tname, c)] = str(m[c].mode().iloc[0])
            if endcol is not None and df[endcol].notna().any():
                m[END_HOURS] = np.clip((_days(_times(df[endcol])) - t) * 24.0, 0.0, None)
                cols.append(_num(END_HOURS, 0.0))
            if tname == "conditions" and df["abatement"].notna().any():
                m[ABATE_DAYS] = np.clip(_days(_times(df["abatement"])) - t, 0.0, None)
                cols.append(_num(ABATE_DAYS, 0.0))
            if tname == "observations":
                m, cols = self._encode_values(df, m, cols)
            self.code_attrs_[tname] = _mode_map(df, code, attrs)
            out[tname] = m
            schemas[tname] = Schema(tuple(cols), name=tname, primary_key=key)
            self.events_.append(tname)
        return out, schemas

    def _encode_values(self, df: pd.DataFrame, m: pd.DataFrame,
                       cols: list[Column]) -> tuple[pd.DataFrame, list[Column]]:
        """Numeric values as z-scores within their code; coded values as a categorical."""
        code = df["code"].astype(object)
        value = pd.to_numeric(df["value"], errors="coerce")
        self.value_decimals_: dict[str, int] = {}
        if value.notna().any():
            z = np.full(len(df), np.nan)
            for c, idx in code.groupby(code, sort=False).groups.items():
                v = value.loc[idx].dropna()
                if not len(v):
                    continue
                mean, sd = float(v.mean()), float(v.std(ddof=0))
                self.value_stats_[str(c)] = (mean, sd if sd > 0 else 0.0, float(v.min()),
                                             float(v.max()))
                self.value_decimals_[str(c)] = _decimals(v)
                z[v.index.to_numpy()] = (v.to_numpy() - mean) / sd if sd > 0 else 0.0
            m[VALUE_Z] = z
            cols.append(_num(VALUE_Z))
        if df[VALUE_CODE].notna().any():
            m[VALUE_CODE] = df[VALUE_CODE].astype(object).to_numpy()
            cols.append(_cat(VALUE_CODE))
            for c, group in df.dropna(subset=[VALUE_CODE]).groupby("code", sort=False):
                freq = group[VALUE_CODE].value_counts(normalize=True)
                self.value_codes_[str(c)] = ([str(x) for x in freq.index], freq.to_numpy())
            self.value_code_attrs_ = _mode_map(df, VALUE_CODE, ("value_code_system",
                                                                "value_code_display"))
        return m, cols

    # -- sample ---------------------------------------------------------------------------
    def check_is_fitted(self) -> None:
        if not hasattr(self, "relational_"):
            raise NotFittedError("this FhirSynthesizer is not fitted; call fit() first")

    def sample(self, n: int | None = None, *, seed: int | None = None) -> dict[str, pd.DataFrame]:
        """Sample ``n`` patients (default: as many as learned) with all their linked resources,
        as tables :func:`~synthdata.io.fhir.write_fhir_bundle` writes. ``fixes_`` counts the
        repairs of this call (death dates moved, repeated single-use codes replaced, ...)."""
        self.check_is_fitted()
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        raw = self.relational_.sample(n, seed=child_seed(rng))
        self.fixes_: dict[str, int] = {f"relational: {k}": v
                                       for k, v in self.relational_.fixes_.items()}
        pats = raw["patients"].reset_index(drop=True)
        birth = pd.to_numeric(pats["__birth"], errors="coerce").to_numpy(dtype=float)
        birth_of = dict(zip(pats["patient_id"], birth))
        enc = raw["encounters"].reset_index(drop=True)
        enc = self._single_use_codes(enc, rng)
        e_birth = enc["patient_id"].map(birth_of).to_numpy(dtype=float)
        e_start = e_birth + np.clip(pd.to_numeric(enc["__start"], errors="coerce")
                                    .to_numpy(dtype=float), 0.0, None)
        e_hours = np.clip(pd.to_numeric(enc["__hours"], errors="coerce").to_numpy(dtype=float),
                          0.0, None)
        e_end = e_start + np.nan_to_num(e_hours) / 24.0
        start_of = dict(zip(enc["encounter_id"], e_start))
        hours_of = dict(zip(enc["encounter_id"], np.nan_to_num(e_hours)))
        patient_of = dict(zip(enc["encounter_id"], enc["patient_id"]))
        last_event = pd.Series(np.where(np.isfinite(e_hours), e_end, e_start)).groupby(
            enc["patient_id"].to_numpy()).max()
        out: dict[str, pd.DataFrame] = {}
        out["encounters"] = pd.DataFrame({
            "encounter_id": enc["encounter_id"].astype(str), "patient_id": enc["patient_id"].astype(str),
            "status": enc["status"], "class_code": enc["class_code"],
            "class_system": self._attr(self.enc_attrs_["class_code"], enc["class_code"], "class_system"),
            "class_display": self._attr(self.enc_attrs_["class_code"], enc["class_code"],
                                        "class_display"),
            "type_code": enc["type_code"],
            "type_system": self._attr(self.enc_attrs_["type_code"], enc["type_code"], "type_system"),
            "type_display": self._attr(self.enc_attrs_["type_code"], enc["type_code"], "type_display"),
            "period_start": _iso(e_start),
            "period_end": _iso(np.where(np.isfinite(e_hours), e_end, np.nan))})
        for tname in self.events_:
            code, _, endcol, _, attrs = EVENT_SPECS[tname]
            df = raw[tname].reset_index(drop=True)
            for (table, c), mode in self.required_.items():
                if table == tname and c in df and df[c].isna().any():
                    self.fixes_[f"{tname}.{c}: missing required code set to its mode"] = \
                        int(df[c].isna().sum())
                    df[c] = df[c].astype(object).where(df[c].notna(), mode)
            eid = df["encounter_id"]
            s = eid.map(start_of).to_numpy(dtype=float)
            h = eid.map(hours_of).to_numpy(dtype=float)
            frac = np.clip(pd.to_numeric(df[FRAC], errors="coerce").to_numpy(dtype=float), 0.0, 1.0)
            if self.time_required_[tname] and np.isnan(frac).any():  # every input row had one
                self.fixes_[f"{tname}: missing time set to its encounter's start"] = \
                    int(np.isnan(frac).sum())
                frac = np.nan_to_num(frac, nan=0.0)
            t = np.where(np.isfinite(frac), s + frac * h / 24.0, np.nan)
            last_event = last_event.combine(pd.Series(t).groupby(eid.map(patient_of).to_numpy())
                                            .max(), max, fill_value=-np.inf)
            key = next(c for c in df.columns if c.endswith("_id") and c != "encounter_id")
            frame = pd.DataFrame({key: df[key].astype(str), "patient_id": eid.map(patient_of),
                                  "encounter_id": eid.astype(str), code: df[code]})
            for c in df.columns:
                if c not in frame and not c.startswith("__") and c != VALUE_CODE:
                    frame[c] = df[c]
            time_col = EVENT_SPECS[tname][1]
            frame[time_col] = _iso(t)
            if endcol is not None and END_HOURS in df:
                end_h = pd.to_numeric(df[END_HOURS], errors="coerce").to_numpy(dtype=float)
                frame[endcol] = _iso(t + np.clip(end_h, 0.0, None) / 24.0)
            if ABATE_DAYS in df:
                ab = pd.to_numeric(df[ABATE_DAYS], errors="coerce").to_numpy(dtype=float)
                frame["abatement"] = _iso(t + np.clip(ab, 0.0, None))
            for a in attrs:
                frame[a] = self._attr(self.code_attrs_[tname], df[code], a)
            if tname == "observations":
                self._decode_values(df, frame, rng)
            if tname == "primary_source" or "primary_source" in frame:
                frame["primary_source"] = frame["primary_source"].map(
                    lambda v: None if v is None or pd.isna(v) else str(v) == "True").astype("boolean")
            if tname == "conditions":
                self._condition_status(frame)
            out[tname] = frame
        out["patients"] = self._patients(pats, birth, last_event)
        self._after_death(out)
        return {"patients": out.pop("patients"), **out}

    @staticmethod
    def _attr(mapping: Mapping[str, Mapping[str, Any]], codes: pd.Series, attr: str) -> list[Any]:
        return [None if c is None or (isinstance(c, float) and np.isnan(c))
                else mapping.get(str(c), {}).get(attr) for c in codes]

    def _single_use_codes(self, enc: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Keep a never-repeating encounter type once per patient (the first, by start)."""
        if not self.single_use_codes_:
            return enc
        enc = enc.copy()
        codes = enc["type_code"].astype(object)
        single = codes.isin(self.single_use_codes_).to_numpy()
        order = np.argsort(pd.to_numeric(enc["__start"], errors="coerce").to_numpy(dtype=float),
                           kind="stable")
        ranked = enc.iloc[order]
        repeated = ranked.duplicated(["patient_id", "type_code"]).to_numpy() & single[order]
        bad = order[repeated]
        if len(bad):
            pool = codes[~single & codes.notna().to_numpy()]
            if len(pool):
                enc.loc[enc.index[bad], "type_code"] = rng.choice(pool.to_numpy(), size=len(bad))
            else:
                enc.loc[enc.index[bad], "type_code"] = None
            self.fixes_["encounters: single-use type repeated, replaced"] = len(bad)
        return enc

    def _decode_values(self, df: pd.DataFrame, frame: pd.DataFrame,
                       rng: np.random.Generator) -> None:
        codes = df["code"].astype(object).map(lambda c: None if pd.isna(c) else str(c))
        values = np.full(len(df), np.nan)
        if VALUE_Z in df:
            z = pd.to_numeric(df[VALUE_Z], errors="coerce").to_numpy(dtype=float)
            n_clipped = 0
            for i, (c, zi) in enumerate(zip(codes, z)):
                stats = self.value_stats_.get(c) if c is not None else None
                if stats is None or not np.isfinite(zi):
                    continue  # a code without numeric values in the input gets none
                mean, sd, low, high = stats
                v = mean + zi * sd
                clipped = min(max(v, low), high)
                n_clipped += int(clipped != v)
                values[i] = round(clipped, self.value_decimals_[c])  # as precise as recorded
            if n_clipped:
                self.fixes_["observations: values clipped to their code's range"] = n_clipped
        frame["value"] = values
        vcodes: list[Any] = [None] * len(df)
        if VALUE_CODE in df:
            n_redrawn = 0
            for i, (c, vc) in enumerate(zip(codes, df[VALUE_CODE])):
                allowed = self.value_codes_.get(c) if c is not None else None
                if allowed is None or vc is None or (isinstance(vc, float) and np.isnan(vc)):
                    continue  # a code without coded values in the input gets none
                if str(vc) not in allowed[0]:
                    vc = rng.choice(allowed[0], p=allowed[1])
                    n_redrawn += 1
                vcodes[i] = str(vc)
            if n_redrawn:
                self.fixes_["observations: coded values redrawn within their code"] = n_redrawn
            frame["value_code_system"] = self._attr(self.value_code_attrs_, pd.Series(vcodes),
                                                    "value_code_system")
            frame["value_code_display"] = self._attr(self.value_code_attrs_, pd.Series(vcodes),
                                                     "value_code_display")
        frame[VALUE_CODE] = vcodes
        has_value = frame[VALUE_CODE].notna().to_numpy()
        for col in ("value_unit", "value_system", "value_unit_code"):  # units go with numbers
            if col in frame:
                frame.loc[~np.isfinite(values) | has_value, col] = None

    @staticmethod
    def _condition_status(frame: pd.DataFrame) -> None:
        """FHIR con-4: an abated condition is inactive, resolved or in remission."""
        if "abatement" not in frame or "clinical_status" not in frame:
            return
        bad = frame["abatement"].notna() & ~frame["clinical_status"].isin(
            ["inactive", "resolved", "remission"]) & frame["clinical_status"].notna()
        frame.loc[bad, "abatement"] = None

    def _patients(self, pats: pd.DataFrame, birth: np.ndarray, last_event: pd.Series) -> pd.DataFrame:
        death = birth + pd.to_numeric(pats["__death_age"], errors="coerce").to_numpy(dtype=float)
        gap = np.clip(pd.to_numeric(pats["__death_gap"], errors="coerce").to_numpy(dtype=float),
                      0.0, None)
        last = pats["patient_id"].map(last_event).to_numpy(dtype=float)
        after_last = np.isfinite(death) & np.isfinite(last) & np.isfinite(gap)
        death = np.where(after_last, last + gap, death)
        late = np.isfinite(death) & np.isfinite(last) & (last > death)
        if late.any():
            self.fixes_["patients: death date moved to the last event"] = int(late.sum())
        death = np.where(late, last, death)
        return pd.DataFrame({"patient_id": pats["patient_id"].astype(str),
                             "gender": pats["gender"],
                             "birth_date": _iso(birth, with_time=False),
                             "deceased_date": _iso(death)})

    def _after_death(self, out: dict[str, pd.DataFrame]) -> None:
        """Abatement dates past death are cut (the patient's last state is what was recorded)."""
        if "conditions" not in out or "abatement" not in out["conditions"]:
            return
        death = dict(zip(out["patients"]["patient_id"], _days(_times(out["patients"]["deceased_date"]))))
        cond = out["conditions"]
        d = cond["patient_id"].map(death).to_numpy(dtype=float)
        ab = _days(_times(cond["abatement"]))
        late = np.isfinite(d) & np.isfinite(ab) & (ab > d)
        if late.any():
            cond.loc[late, "abatement"] = _iso(d[late])
            self.fixes_["conditions: abatement after death set to the death date"] = int(late.sum())


# =============================================================================================
# checks
# =============================================================================================
EVENT_TIME = {t: spec[1] for t, spec in EVENT_SPECS.items()}


def coherence_checks(real: Mapping[str, pd.DataFrame],
                     synth: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """Count what makes a synthetic FHIR record set incoherent (0 is the target for each).

    - ``values_outside_code_range``: numeric observations outside the real [min, max] of
      their code (``value_range_by_code`` lists real and synthetic ranges of the worst codes);
    - ``single_use_code_repeats``: synthetic (patient, encounter type) repeats of types that
      no real patient has twice;
    - ``observations_outside_encounter``: observations dated before their encounter's start or
      after its end (or whose encounter belongs to another patient);
    - ``events_after_death``: encounters and events dated after their patient's death;
    - ``dangling_references``: patient/encounter ids pointing to no row;
    - ``invented_codes``: codes (per table) that the real tables do not have.
    """
    out: dict[str, Any] = {}
    out.update(_value_ranges(real.get("observations"), synth.get("observations")))
    enc_r, enc_s = real.get("encounters"), synth.get("encounters")
    out["single_use_code_repeats"] = 0
    if enc_r is not None and enc_s is not None and len(enc_r):
        rep = enc_r.dropna(subset=["type_code"]).groupby(["patient_id", "type_code"]).size()
        single = set(rep.groupby("type_code").max().loc[lambda s: s <= 1].index.astype(str))
        syn = enc_s.dropna(subset=["type_code"])
        syn = syn[syn["type_code"].astype(str).isin(single)]
        out["single_use_code_repeats"] = int(syn.duplicated(["patient_id", "type_code"]).sum())
        out["n_single_use_codes"] = len(single)
    out["observations_outside_encounter"] = _outside_encounter(synth)
    out["events_after_death"] = _after_death_count(synth)
    out["dangling_references"] = _dangling(synth)
    invented = {}
    for tname, (code, *_rest) in EVENT_SPECS.items():
        if tname in synth and len(synth[tname]) and code in synth[tname]:
            known = set(real[tname][code].dropna().astype(str)) if tname in real else set()
            invented[tname] = int((~synth[tname][code].dropna().astype(str).isin(known)).sum())
    if enc_s is not None and enc_r is not None:
        invented["encounters"] = int((~enc_s["type_code"].dropna().astype(str).isin(
            set(enc_r["type_code"].dropna().astype(str)))).sum())
    out["invented_codes"] = sum(invented.values())
    out["invented_codes_by_table"] = invented
    return out


def _value_ranges(real: pd.DataFrame | None, synth: pd.DataFrame | None) -> dict[str, Any]:
    if real is None or synth is None or not len(synth):
        return {"values_outside_code_range": 0, "value_range_by_code": {}}
    r = real.assign(value=pd.to_numeric(real["value"], errors="coerce")).dropna(subset=["value", "code"])
    s = synth.assign(value=pd.to_numeric(synth["value"], errors="coerce")).dropna(subset=["value", "code"])
    rr = r.groupby(r["code"].astype(str))["value"].agg(["min", "max"])
    sr = s.groupby(s["code"].astype(str))["value"].agg(["min", "max"])
    low = s["code"].astype(str).map(rr["min"])
    high = s["code"].astype(str).map(rr["max"])
    outside = (s["value"] < low - 1e-9) | (s["value"] > high + 1e-9) | low.isna()
    ranges = {}
    for code in sr.index:
        real_range = [float(rr.loc[code, "min"]), float(rr.loc[code, "max"])] if code in rr.index else None
        ranges[code] = {"real": real_range,
                        "synthetic": [float(sr.loc[code, "min"]), float(sr.loc[code, "max"])]}
    return {"values_outside_code_range": int(outside.sum()),
            "values_outside_code_range_share": float(outside.mean()) if len(s) else 0.0,
            "value_range_by_code": ranges}


def _outside_encounter(synth: Mapping[str, pd.DataFrame]) -> int:
    obs, enc = synth.get("observations"), synth.get("encounters")
    if obs is None or enc is None or not len(obs):
        return 0
    e = enc.set_index("encounter_id")
    has = obs["encounter_id"].notna() & obs["effective"].notna()
    o = obs[has]
    start = _times(e["period_start"]).reindex(o["encounter_id"]).to_numpy()
    end = _times(e["period_end"].fillna(e["period_start"])).reindex(o["encounter_id"]).to_numpy()
    t = _times(o["effective"]).to_numpy()
    other = e["patient_id"].reindex(o["encounter_id"]).to_numpy() != o["patient_id"].to_numpy()
    bad = (t < start) | (t > end) | pd.isna(start) | other
    return int(bad.sum())


def _after_death_count(synth: Mapping[str, pd.DataFrame]) -> int:
    pats = synth.get("patients")
    if pats is None or "deceased_date" not in pats:
        return 0
    death = pd.Series(_times(pats["deceased_date"]).to_numpy(), index=pats["patient_id"].astype(str))
    n = 0
    for tname, col in (("encounters", "period_start"), *EVENT_TIME.items()):
        df = synth.get(tname)
        if df is None or not len(df) or col not in df:
            continue
        d = death.reindex(df["patient_id"].astype(str)).to_numpy()
        t = _times(df[col]).to_numpy()
        n += int((~pd.isna(d) & ~pd.isna(t) & (t > d)).sum())
    return n


def _dangling(synth: Mapping[str, pd.DataFrame]) -> int:
    from synthdata.io.fhir import FOREIGN_KEYS

    n = 0
    for child, col, parent, pk in FOREIGN_KEYS:
        if child in synth and parent in synth and col in synth[child]:
            v = synth[child][col].dropna().astype(str)
            n += int((~v.isin(set(synth[parent][pk].astype(str)))).sum())
    return n
