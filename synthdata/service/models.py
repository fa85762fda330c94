"""Request and response models of the service API, and the rows-to-model converters.

Responses carry only metadata, aggregates (schemas, reports, gate verdicts) and synthetic
data; the uploaded rows are never sent back.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Literal, overload

from fastapi import HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import RowMapping

from synthdata.service.store import STATUSES, SUCCEEDED

Status = Literal["queued", "running", "succeeded", "failed", "rejected", "cancelled"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]


# ---- response and request models -------------------------------------------------------------
class Error(BaseModel):
    detail: str


class DatasetOut(BaseModel):
    id: str
    name: str = Field(description="the uploaded file's name (display only)")
    format: Literal["csv", "parquet"]
    size_bytes: int
    n_rows: int = Field(description="exact row count of your upload: internal metadata for "
                                    "the data custodian, not differentially private; never "
                                    "publish it beside a DP release")
    n_columns: int
    columns: list[str]
    schema_source: Literal["inferred", "user"] | None
    created_at: str


class DatasetList(BaseModel):
    items: list[DatasetOut]
    limit: int
    offset: int


class SchemaOut(BaseModel):
    dataset: str
    source: Literal["inferred", "user"]
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(description="id of one of your datasets")
    pipeline: dict[str, Any] = Field(
        default_factory=dict,
        description="the pipeline model without its 'data' block, e.g. "
                    '{"generator": {"kind": "gmm"}, "sample": {"rows": 1000}}')
    webhook: str | None = Field(
        None, max_length=2048,
        description="https URL called (POST, JSON) when the job ends, signed: header "
                    "X-Synthdata-Signature: sha256=<HMAC-SHA256 of the body with your "
                    "tenant's webhook secret> (POST /v1/webhook-secret)")


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total_epsilon: float = Field(gt=0, allow_inf_nan=False)
    total_delta: float = Field(gt=0, lt=1)


class BudgetRun(BaseModel):
    job: str
    status: Literal["reserved", "committed"] = Field(
        description="reserved: queued, running, or stopped without a result (counted at "
                    "what it reserved); committed: counted at what its ledger spent")
    generator: str
    epsilon: float | None = Field(description="counted against the total (null: unbounded)")
    delta: float
    reserved_epsilon: float
    reserved_delta: float
    created_at: str
    finished_at: str | None


class BudgetOut(BaseModel):
    dataset: str
    composition: Literal["basic"] = Field(
        default="basic", description="runs add up: the sum of their ε and the sum of their δ")
    total_epsilon: float
    total_delta: float
    spent_epsilon: float | None = Field(description="null: unbounded (a run released "
                                                    "without privacy)")
    spent_delta: float
    remaining_epsilon: float
    remaining_delta: float
    runs: list[BudgetRun]


class JobPrivacy(BaseModel):
    epsilon: float = Field(description="the ε the job declared (privacy.epsilon)")
    delta: float | None = Field(description="the δ it declared (null: derived from the noisy "
                                            "row count)")
    note: str = Field(
        default="covered by ε: the synthetic data and its public schema. Not private (internal QA "
        "for the data custodian, do not publish): the gate rules' metric values here and the "
        "report's sections that read the real data")


class GateOut(BaseModel):
    passed: bool | None
    rules: list[dict[str, Any]]


class JobOut(BaseModel):
    id: str
    dataset: str
    status: Status
    progress: float = Field(ge=0.0, le=1.0)
    step: str | None
    error: str | None
    gate: GateOut | None
    report_available: bool
    synthetic_available: bool
    privacy: JobPrivacy | None = Field(None, description="set for a DP job")
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobList(BaseModel):
    items: list[JobOut]
    limit: int
    offset: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str


@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: None) -> None: ...
def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(
        timespec="milliseconds")


def dataset_out(row: RowMapping) -> DatasetOut:
    return DatasetOut(id=row["id"], name=row["name"], format=row["format"],
                      size_bytes=row["size_bytes"], n_rows=row["n_rows"],
                      n_columns=row["n_columns"], columns=list(row["columns"]),
                      schema_source=row["schema_source"], created_at=iso(row["created_at"]))


def job_privacy(row: RowMapping) -> JobPrivacy | None:
    privacy = (row["pipeline"] or {}).get("privacy")
    if not isinstance(privacy, dict) or privacy.get("epsilon") is None:
        return None
    return JobPrivacy(epsilon=privacy["epsilon"], delta=privacy.get("delta"))


def budget_out(status_: Any) -> BudgetOut:
    def fin(x: float) -> float | None:
        return x if math.isfinite(x) else None

    runs = [BudgetRun(job=r["job"], status=r["status"], generator=r["generator"],
                      epsilon=fin(r["epsilon"]), delta=r["delta"],
                      reserved_epsilon=r["reserved_epsilon"], reserved_delta=r["reserved_delta"],
                      created_at=iso(r["created_at"]), finished_at=iso(r["finished_at"]))
            for r in status_.runs]
    return BudgetOut(dataset=status_.dataset_key, total_epsilon=status_.total_epsilon,
                     total_delta=status_.total_delta, spent_epsilon=fin(status_.spent_epsilon),
                     spent_delta=status_.spent_delta,
                     remaining_epsilon=status_.remaining_epsilon,
                     remaining_delta=status_.remaining_delta, runs=runs)


def job_out(row: RowMapping) -> JobOut:
    gate = None
    if row["gate_passed"] is not None or row["gate"] is not None:
        gate = GateOut(passed=row["gate_passed"], rules=list(row["gate"] or []))
    return JobOut(id=row["id"], dataset=row["dataset_id"], status=row["status"],
                  progress=float(row["progress"] or 0.0), step=row["step"], error=row["error"],
                  gate=gate, report_available=row["run_dir"] is not None,
                  synthetic_available=bool(row["status"] == SUCCEEDED and row["synthetic_file"]),
                  privacy=job_privacy(row), created_at=iso(row["created_at"]),
                  started_at=iso(row["started_at"]),
                  finished_at=iso(row["finished_at"]))


# FastAPI's ``responses=`` type (status code -> OpenAPI response fields)
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": Error, "description": "no such id for this tenant"}}
AUTH: Responses = {401: {"model": Error, "description": "missing or invalid bearer token"},
        403: {"model": Error, "description": "the token lacks the route's scope"},
        429: {"model": Error, "description": "request rate or quota exceeded; see the "
                                            "Retry-After header and GET /v1/limits"}}
# routes with a JSON body: the guards answer these before the route runs
JSON_BODY: Responses = {400: {"model": Error, "description": "malformed JSON"},
             413: {"model": Error, "description": "body larger than max_body_bytes"},
             422: {"model": Error, "description": "invalid body (or nested deeper than "
                                                  "max_json_depth)"}}


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


class LimitsOut(BaseModel):
    limits: dict[str, float | int | bool | None] = Field(
        description="per request and per job; over one: 413/422 at submit or upload")
    quotas: dict[str, float | int] = Field(description="per tenant; over one: 429 + Retry-After")
    usage: dict[str, int] = Field(description="this tenant's current use of its quotas")


class TokenOut(BaseModel):
    id: str = Field(description="the public part of the token (sdt_<id>_...)")
    scopes: list[str]
    label: str | None
    created_at: str
    expires_at: str | None
    last_used_at: str | None = Field(description="to within a minute")
    revoked_at: str | None


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[Literal["read", "submit", "download", "admin"]] = Field(
        min_length=1, max_length=4, description="at most the calling token's own scopes")
    expires_in_days: float | None = Field(None, gt=0, le=3650, allow_inf_nan=False)
    label: str | None = Field(None, max_length=100)


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its hash is stored")


class AuditEntry(BaseModel):
    id: int
    at: str
    actor: str = Field(description="token id, or 'cli' for the server's command line")
    action: str
    target: str | None
    detail: dict[str, Any] | None


class AuditList(BaseModel):
    items: list[AuditEntry]
    limit: int
    offset: int


class WebhookSecret(BaseModel):
    secret: str = Field(description="shown once: the HMAC key of your jobs' webhooks")


def token_out(row: Any) -> TokenOut:
    return TokenOut(id=row["id"], scopes=list(row["scopes"]), label=row["label"],
                    created_at=iso(row["created_at"]), expires_at=iso(row["expires_at"]),
                    last_used_at=iso(row["last_used_at"]), revoked_at=iso(row["revoked_at"]))
