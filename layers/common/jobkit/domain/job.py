"""The job definition API: what a job type declares, and nothing else.

A job type is one module in ``functions/jobs/`` that builds a ``Job``: how to fetch a page of
records for one client, how to process one record (return a workflow ``Transition`` or a
``Skip``), and how to acknowledge a set of records. Scheduling, fan-out, retries, idempotency,
dead letters and run accounting are the platform's.
"""

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.config import QUERY_FIELDS, ClientConfig, ClientSettings
from jobkit.adapters.external import ExternalSystem
from jobkit.domain.errors import JobModuleError, UnknownJobTypeError
from jobkit.domain.replay import TimeWindow


class ExternalRecord(BaseModel):
    """What every external record carries; a job's record model extends it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    client_id: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=0)


class AckRef(BaseModel):
    """The little a record's acknowledgement needs, kept in the idempotency record."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    version: int


@dataclass(frozen=True)
class Page:
    """One page of raw records (validated later, one by one) and where the next page starts.

    ``resume_at``, for change feeds: where the client's next run resumes once this page's
    records are safely enqueued (kept as the client's cursor on its config row).
    """

    records: list[dict[str, Any]]
    next_cursor: str | None
    resume_at: str | None = None


NEW = "NEW"  # in ``allowed_from``: the transition may create the record


@dataclass(frozen=True)
class Transition:
    """Move a platform record to ``to_status``, guarded by the statuses it may come from."""

    to_status: str
    allowed_from: frozenset[str]
    reason: str
    triggers: tuple[str, ...] = ()
    clear_pending: bool = False
    # Data written on the record with the transition; with ``content_hash`` set, a record
    # whose stored hash is the same is left alone (skipped as unchanged, no write at all).
    fields: dict[str, str] | None = None
    content_hash: str | None = None


@dataclass(frozen=True)
class Skip:
    """Nothing to do for this record; it is counted as skipped with this reason."""

    reason: str


@dataclass(frozen=True)
class AckResult:
    acknowledged: frozenset[str]
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PageRequest:
    """Which page to fetch: from ``cursor`` (None: the first), for the run whose reference
    time is ``as_of`` (the scheduled time of the fire, or when a manual run was asked for),
    so every page of a run, and every retry of it, asks for the same window.

    ``window``: set on a backfill's pages, the records completed in it, whether or not the
    external system was told of them already; the fetch asks for that window instead."""

    cursor: str | None
    as_of: datetime
    window: TimeWindow | None = None


FakeValue = str | int | float | bool | None


@dataclass(frozen=True)
class FakeRecords:
    """How the local stack's fake external system serves this job's records, for `jobkit seed`
    (it never runs on AWS).

    ``feed``: which of its feeds the job's fetch reads: ``records`` (completed records with
    id, client_id, group_id, version, status COMPLETED, completed_at, pending_items and
    attributes) or ``contacts`` (a change feed). ``fields(n)``: what the n-th record (from 1)
    carries beside those, for a record model that asks for more.
    """

    feed: Literal["records", "contacts"] = "records"
    fields: Callable[[int], Mapping[str, FakeValue]] | None = None


FetchPage = Callable[[ExternalSystem, ClientConfig, PageRequest], Page]
AcknowledgeFn = Callable[[ExternalSystem, ClientConfig, Sequence[AckRef]], AckResult]


@dataclass(frozen=True)
class Job[RecordT: ExternalRecord]:
    """A job type: its name, its record model and its three rules."""

    name: str
    description: str
    record_model: type[RecordT]
    fetch_page: FetchPage
    process: Callable[[RecordT, ClientConfig], Transition | Skip]
    acknowledge: AcknowledgeFn
    # The query fields (``QUERY_FIELDS``: script, days, year) its fetch uses; a client row of
    # this job that sets any other is refused.
    config_fields: frozenset[str] = frozenset()
    # Its fetch_page honours ``PageRequest.window``: only then can its clients be backfilled.
    windowed: bool = False
    # What `jobkit seed` gives a client of this job on the local stack.
    fake_records: FakeRecords = FakeRecords()

    def __post_init__(self) -> None:
        unknown = self.config_fields - set(QUERY_FIELDS)
        if unknown:
            raise JobModuleError(
                f"job {self.name} declares unknown config fields {sorted(unknown)};"
                f" the query fields are {list(QUERY_FIELDS)}"
            )

    def parse_record(self, raw: dict[str, Any]) -> RecordT:
        return self.record_model.model_validate(raw)


def unused_fields_error(
    job_type: str, uses: frozenset[str], settings: ClientSettings
) -> str | None:
    """The refusal naming each query field ``settings`` sets that a job using only ``uses``
    would ignore, or None when it sets none."""
    used = ", ".join(sorted(uses)) or "none of them"
    unused = [name for name in settings.query_fields_set() if name not in uses]
    return (
        "; ".join(
            f"{name}: not used by job type {job_type} (of script, days, year it uses {used}):"
            " leave it unset"
            for name in unused
        )
        or None
    )


def raw_record_id(raw: dict[str, Any]) -> str | None:
    """The id of a raw record before validation, so even a malformed one can be reported."""
    value = raw.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


class JobRegistry(Mapping[str, Job[Any]]):
    """Job types by name, each imported from its module on first use.

    The processor is shared by every job type: importing every job module at cold start
    would make each cold start grow with the number of job types. A container imports the
    modules of the job types whose items it meets, once.
    """

    def __init__(self, modules: Mapping[str, str]) -> None:
        self._modules = dict(modules)
        self._loaded: dict[str, Job[Any]] = {}

    def __getitem__(self, name: str) -> Job[Any]:
        job = self._loaded.get(name)
        if job is None:
            if name not in self._modules:
                raise KeyError(name)
            try:
                job = importlib.import_module(self._modules[name]).JOB
            except Exception as exc:
                # Not a KeyError, whatever the module raised: Mapping.get would take one for
                # "no such job type", and dead-letter the items as unknown at once.
                raise JobModuleError(
                    f"job module {self._modules[name]} failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            if job.name != name:
                raise UnknownJobTypeError(
                    f"{self._modules[name]} declares job type {job.name!r}, registered as {name!r}"
                )
            self._loaded[name] = job
        return job

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)
