"""Every request and response body of the fake external system's HTTP API."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

RECORDS_ROUTE = "GET /v1/records"
ACKS_ROUTE = "POST /v1/acks"
CONTACTS_ROUTE = "GET /v1/contacts"
HEALTH_ROUTE = "GET /v1/health"
CREDENTIALS_ROUTE = "POST /v1/credentials"
EXTERNAL_ROUTES = (RECORDS_ROUTE, ACKS_ROUTE, CONTACTS_ROUTE, HEALTH_ROUTE, CREDENTIALS_ROUTE)

# Visible ASCII only, so any token can travel in an Authorization header as it is.
Token = Annotated[str, Field(min_length=16, max_length=256, pattern=r"^[\x21-\x7e]+$")]

# What a records query runs: every completed record, or only those with items still pending.
Script = Literal["GET_COMPLETED", "GET_COMPLETED_PENDING"]

# What every served record has; a seeding's own fields may add to them, not replace them.
RECORD_FIELDS = frozenset(
    {
        "id",
        "client_id",
        "group_id",
        "version",
        "status",
        "completed_at",
        "pending_items",
        "attributes",
    }
)
FieldValue = str | int | float | bool | None

# Five digits keep lexicographic id order equal to numeric order, which keyset paging relies on.
MAX_RECORDS = 99_999


def record_id(client_id: str, number: int) -> str:
    return f"{client_id}-r{number:05d}"


class _Request(BaseModel):
    # Unknown fields are rejected so a typo in a demo or test fails loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorBody(_Response):
    error: str


class Health(_Response):
    status: Literal["ok"] = "ok"


class ResetDone(_Response):
    status: Literal["reset"] = "reset"


class ClientHealth(_Response):
    status: Literal["ok"] = "ok"
    client_id: str


class SeedClientRequest(_Request):
    client_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    group_id: str = Field(min_length=1, max_length=64)
    records: int = Field(ge=0, le=MAX_RECORDS)
    poison: list[str] = []
    pending_items_per_record: int = Field(2, ge=0, le=100)
    # Moves the whole seeding into the past, e.g. to feed a sync that only asks for recent days.
    completed_days_ago: float = Field(0, ge=0, le=3650)
    # Becomes the client's one active token; never echoed back.
    credential: Token | None = None
    # What the n-th record carries beside RECORD_FIELDS (a job's own record model asks for
    # them); records past the list, and those added later, take them in turn.
    fields: list[dict[str, FieldValue]] = Field([], max_length=MAX_RECORDS)

    @field_validator("fields")
    @classmethod
    def _fields_add_to_a_record(
        cls, fields: list[dict[str, FieldValue]]
    ) -> list[dict[str, FieldValue]]:
        for index, extra in enumerate(fields):
            clash = sorted(RECORD_FIELDS & extra.keys())
            if clash:
                raise ValueError(f"fields[{index}]: every record has {', '.join(clash)} already")
        return fields

    @field_validator("poison")
    @classmethod
    def _poison_names_seeded_records(cls, poison: list[str], info: ValidationInfo) -> list[str]:
        client_id, records = info.data.get("client_id"), info.data.get("records")
        if client_id is None or records is None:
            return poison  # already reported on those fields
        seeded = {record_id(client_id, n) for n in range(1, records + 1)}
        strangers = [rid for rid in poison if rid not in seeded]
        if strangers:
            raise ValueError(f"not records of this client: {', '.join(strangers)}")
        return poison


class SeedClientResponse(_Response):
    client_id: str
    records: int


class AddRecordsRequest(_Request):
    # No more than a client can hold at all; what it already holds is checked against it too.
    count: int = Field(ge=1, le=MAX_RECORDS)
    completed_days_ago: float = Field(0, ge=0, le=3650)


class AddRecordsResponse(_Response):
    client_id: str
    added: int
    records: int  # the client's total afterwards


class RecordsQuery(_Request):
    model_config = ConfigDict(extra="ignore")

    status: Literal["completed"] = "completed"
    group: str | None = None
    cursor: str = ""
    limit: int = Field(50, ge=1, le=500)
    # Filters; a page's cursor and limit count only the records that pass them.
    completed_after: AwareDatetime | None = None
    year: int | None = Field(None, ge=2000, le=2100)
    script: Script = "GET_COMPLETED"
    # Either bound makes a window query, which serves acknowledged records too: a backfill
    # re-runs what was already done. From inclusive, to exclusive, so windows tile.
    completed_from: AwareDatetime | None = None
    completed_to: AwareDatetime | None = None

    @field_validator("completed_to")
    @classmethod
    def _window_is_not_empty(
        cls, completed_to: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        # Absent when completed_from itself was refused: that error already names it.
        completed_from = info.data.get("completed_from")
        if (
            completed_from is not None
            and completed_to is not None
            and completed_from >= completed_to
        ):
            raise ValueError("completed_from must be before completed_to")
        return completed_to


class Record(_Response):
    # A seeding's own fields are served beside these.
    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    client_id: str
    group_id: str
    # A string only for poison records, which are malformed on purpose.
    version: int | str
    status: Literal["COMPLETED"] = "COMPLETED"
    completed_at: str
    pending_items: list[str]
    attributes: dict[str, float]


class RecordsPage(_Response):
    records: list[Record]
    next_cursor: str | None


class Ack(_Request):
    record_id: str = Field(min_length=1)
    version: int = Field(ge=0)


class AckRequest(_Request):
    acks: list[Ack] = Field(min_length=1, max_length=500)


class AckResponse(_Response):
    acknowledged: list[str]
    unknown: list[str]


class AcksQuery(_Request):
    model_config = ConfigDict(extra="ignore")

    client_id: str | None = None


class ClientAcks(_Response):
    acked: int
    duplicate_acks: int
    record_ids: list[str]


class AckReport(_Response):
    clients: dict[str, ClientAcks]


class FaultConfig(_Request):
    seed: int = 0
    latency_ms: int = Field(0, ge=0, le=60_000)
    error_rate: float = Field(0.0, ge=0, le=1)
    timeout_rate: float = Field(0.0, ge=0, le=1)
    timeout_seconds: float = Field(5.0, ge=0, le=300)
    throttle_rate: float = Field(0.0, ge=0, le=1)
    retry_after_seconds: int = Field(1, ge=0, le=3600)
    ack_error_rate: float = Field(0.0, ge=0, le=1)
    clients: list[str] | None = None


class InjectedCounts(_Response):
    error: int = 0
    timeout: int = 0
    throttle: int = 0
    ack_error: int = 0


class Stats(_Response):
    requests: dict[str, dict[str, int]]
    injected: InjectedCounts


class CredentialsRequest(_Request):
    tokens: list[Token] = Field(min_length=1, max_length=2)


class NewCredentialRequest(_Request):
    token: Token


class Credentials(_Response):
    """A client's active tokens, shown only by fingerprint: a response never carries a token."""

    client_id: str
    active: int
    fingerprints: list[str]


class CredentialFaultsRequest(_Request):
    refuse_new: bool


class CredentialFaults(_Response):
    client_id: str
    refuse_new: bool


class RateQuery(_Request):
    model_config = ConfigDict(extra="ignore")

    window_ms: int = Field(1000, ge=10, le=60_000)


class RateReport(_Response):
    window_ms: int
    requests: int
    max_in_window: int
