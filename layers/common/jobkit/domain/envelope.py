"""The work envelope: what travels on the work queue, and the keys that make it idempotent.

Two identities per item:
- ``item_key`` names the *work* (job, client, record, version): Powertools idempotency is keyed
  on it, so the same work sent twice, in one run or in two, never repeats its effects.
- ``envelope_id`` names *this item of this run*: outcomes are counted once per envelope, so a
  redelivered message is counted once and run totals close.
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from jobkit.domain.errors import InvalidEnvelopeError
from jobkit.domain.replay import Replay, generation_suffix

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
JobType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9\-]{0,47}$")]
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def content_hash(payload: Any) -> str:
    """A stable hash of a JSON-like payload, independent of key order."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def record_item_key(
    job_type: str,
    client_id: str,
    record_id: str,
    raw: dict[str, Any],
    replay: Replay | None = None,
) -> str:
    """Key of the work on one record: its version when it has a valid one, else its content;
    in a backfill of mode ``all``, also its generation (so the work is done again, once)."""
    version = raw.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        revision = f"v{version}"
    else:
        revision = f"h{content_hash(raw)}"
    return f"{job_type}#{client_id}#{record_id}#{revision}{generation_suffix(replay)}"


def page_item_key(job_type: str, client_id: str, run_id: str, cursor: str | None) -> str:
    """Key of the work on one page of one client in one run."""
    return f"{job_type}#{client_id}#{run_id}#page#{cursor or '-'}"


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    envelope_id: Annotated[str, StringConstraints(min_length=8, max_length=64)]
    item_key: Annotated[str, StringConstraints(min_length=3, max_length=512)]
    job_type: JobType
    run_id: RunId
    client_id: Identifier
    group_id: Identifier
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    enqueued_at: datetime
    # Set on a backfill run's items: they travel on the backfill lane (``jobkit.domain.replay``).
    replay: Replay | None = None

    @property
    def message_group_id(self) -> str:
        """Fair-queue group: one per job and client, so a busy client cannot starve the others."""
        return f"{self.job_type}#{self.client_id}"


class PageItem(_Envelope):
    """Fetch one page of one client's records; enqueue a record item per record."""

    kind: Literal["page"] = "page"
    cursor: str | None = None
    page_number: int = Field(1, ge=1)
    attempt: int = Field(0, ge=0, le=100)  # the client-level retry this page belongs to
    # The run's reference time, which a query window (``days``) is counted back from; items
    # enqueued before it was carried count from when they were enqueued.
    as_of: datetime | None = None

    @property
    def query_time(self) -> datetime:
        return self.as_of or self.enqueued_at


class RecordItem(_Envelope):
    """Apply the job's rules to one external record."""

    kind: Literal["record"] = "record"
    record_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    record: dict[str, Any]
    deferrals: int = Field(0, ge=0, le=1000)  # times put back while its circuit was open


WorkItem = Annotated[PageItem | RecordItem, Field(discriminator="kind")]
_work_item = TypeAdapter(WorkItem)


def parse_work_item(body: str) -> PageItem | RecordItem:
    """Parse a queue message body, naming the first offending field when it is invalid."""
    try:
        return _work_item.validate_json(body)
    except ValidationError as exc:
        raise InvalidEnvelopeError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """A short, precise message: each failing field with its reason, never the input values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        location = ".".join(str(part) for part in error["loc"]) or "(root)"
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def new_page_item(
    *,
    job_type: str,
    run_id: str,
    client_id: str,
    group_id: str,
    correlation_id: str,
    cursor: str | None = None,
    page_number: int = 1,
    now: datetime | None = None,
    attempt: int = 0,
    as_of: datetime | None = None,
    replay: Replay | None = None,
) -> PageItem:
    key = page_item_key(job_type, client_id, run_id, cursor)
    # A retried client's page is a new item of the run (counted on its own); the work it
    # does is the same (same item_key).
    envelope_id = _digest(run_id, key) if attempt == 0 else _digest(run_id, key, f"a{attempt}")
    return PageItem(
        envelope_id=envelope_id,
        item_key=key,
        job_type=job_type,
        run_id=run_id,
        client_id=client_id,
        group_id=group_id,
        correlation_id=correlation_id,
        enqueued_at=now or datetime.now(UTC),
        cursor=cursor,
        page_number=page_number,
        attempt=attempt,
        as_of=as_of,
        replay=replay,
    )


def new_record_item(page: PageItem, record_id: str, raw: dict[str, Any]) -> RecordItem:
    """The record item for one record found on a page; the same page yields the same ids."""
    return RecordItem(
        envelope_id=_digest(page.envelope_id, record_id),
        item_key=record_item_key(page.job_type, page.client_id, record_id, raw, page.replay),
        job_type=page.job_type,
        run_id=page.run_id,
        client_id=page.client_id,
        group_id=page.group_id,
        correlation_id=page.correlation_id,
        enqueued_at=datetime.now(UTC),
        record_id=record_id,
        record=raw,
        replay=page.replay,
    )
