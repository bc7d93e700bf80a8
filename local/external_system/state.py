"""The external system's memory: clients, records, acks, faults and statistics, behind one lock.

Credentials live in their own keyring (own lock), owned and reset here with the rest.

Handler threads only get copies (response models) out, never the mutable internals.
"""

import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice

from external_system.credentials import Keyring
from external_system.faults import Decision, Endpoint, FaultPlan
from external_system.models import (
    EXTERNAL_ROUTES,
    MAX_RECORDS,
    AckReport,
    AckResponse,
    AddRecordsRequest,
    AddRecordsResponse,
    ClientAcks,
    FaultConfig,
    FieldValue,
    InjectedCounts,
    RateReport,
    Record,
    RecordsPage,
    SeedClientRequest,
    SeedClientResponse,
    Stats,
    record_id,
)

_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
_SECONDS_PER_DAY = 86_400
_ATTRIBUTES = {"amount": 12.5}
# Enough for a rate-limit test's bursts, bounded so a long demo cannot grow memory without end.
MAX_ARRIVALS = 100_000


class NotFoundError(LookupError):
    """Something named in the request does not exist; the message says what."""


class TooManyRecordsError(ValueError):
    """Adding records would take a client past what five-digit ids can number."""


@dataclass
class _Record:
    id: str
    version: int
    # Kept as a time, not its text, so filtering compares instead of parsing; always UTC.
    completed_at: datetime
    pending_items: list[str]
    poison: bool
    fields: dict[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordFilter:
    """Which records a page serves; the default serves every unacknowledged completed one."""

    completed_after: datetime | None = None  # inclusive
    year: int | None = None  # a UTC year
    pending_only: bool = False
    # A window (either bound set) serves acknowledged records too.
    completed_from: datetime | None = None  # inclusive
    completed_to: datetime | None = None  # exclusive

    @property
    def is_window(self) -> bool:
        return self.completed_from is not None or self.completed_to is not None

    def admits(self, record: _Record) -> bool:
        # The stored time decides, even for a poison record that shows "garbage" instead.
        if self.completed_after is not None and record.completed_at < self.completed_after:
            return False
        if self.year is not None and record.completed_at.year != self.year:
            return False
        if not self._in_window(record.completed_at):
            return False
        return bool(record.pending_items) or not self.pending_only

    def _in_window(self, completed_at: datetime) -> bool:
        if self.completed_from is not None and completed_at < self.completed_from:
            return False
        return self.completed_to is None or completed_at < self.completed_to


EVERY_RECORD = RecordFilter()


@dataclass
class _Client:
    client_id: str
    group_id: str
    # What records added later are given, so they look like the seeded ones.
    pending_items_per_record: int
    # The seeding's own fields, which its records, and those added later, take in turn.
    fields: list[dict[str, FieldValue]] = field(default_factory=list)
    records: dict[str, _Record] = field(default_factory=dict)
    # Sorted ids of every record, which window pages bisect instead of sorting per request.
    ids: list[str] = field(default_factory=list)
    # Sorted ids of the records not acknowledged at their current version: paging bisects it,
    # so a page costs the same however many records are already acknowledged.
    unacked: list[str] = field(default_factory=list)
    acked: set[tuple[str, int]] = field(default_factory=set)
    duplicate_acks: int = 0

    def add(self, records: list[_Record]) -> None:
        """Records numbered on from the last, so appending keeps both id lists sorted."""
        for record in records:
            self.records[record.id] = record
        new_ids = [record.id for record in records]
        self.ids += new_ids
        self.unacked += new_ids

    def acknowledge(self, rid: str, version: int) -> None:
        if (rid, version) in self.acked:
            self.duplicate_acks += 1
            return
        self.acked.add((rid, version))
        if version == self.records[rid].version:
            index = bisect_left(self.unacked, rid)
            if index < len(self.unacked) and self.unacked[index] == rid:
                del self.unacked[index]

    def served_after(self, cursor: str, wanted: RecordFilter) -> Iterator[_Record]:
        """Records after the cursor, by id, that pass the filter: unacked ones only, unless
        the filter is a window."""
        ids = self.ids if wanted.is_window else self.unacked
        # Lazy, so a page stops scanning as soon as it has what it needs.
        for index in range(bisect_right(ids, cursor), len(ids)):
            record = self.records[ids[index]]
            if wanted.admits(record):
                yield record

    def bump(self, record: _Record) -> None:
        record.version += 1
        if (record.id, record.version) in self.acked:
            return
        index = bisect_left(self.unacked, record.id)
        if index == len(self.unacked) or self.unacked[index] != record.id:
            self.unacked.insert(index, record.id)

    def to_model(self, record: _Record) -> Record:
        # Poison records are malformed on purpose, but keep a valid id so they can be reported.
        version: int | str = "not-a-number" if record.poison else record.version
        return Record(
            id=record.id,
            client_id=self.client_id,
            group_id=self.group_id,
            version=version,
            completed_at="garbage" if record.poison else record.completed_at.strftime(_TIMESTAMP),
            pending_items=list(record.pending_items),
            attributes=dict(_ATTRIBUTES),
            **record.fields,
        )


def _build_client(body: SeedClientRequest, seeded_at: datetime) -> _Client:
    client = _Client(
        body.client_id, body.group_id, body.pending_items_per_record, list(body.fields)
    )
    client.add(
        _new_records(
            client, body.records, body.completed_days_ago, seeded_at, frozenset(body.poison)
        )
    )
    return client


def _new_records(
    client: _Client,
    count: int,
    completed_days_ago: float,
    now: datetime,
    poison: frozenset[str] = frozenset(),
) -> list[_Record]:
    """The client's next ``count`` records, numbered on from its last: the n-th of them
    completes count - n + 1 seconds before ``now``, moved back by ``completed_days_ago``, so
    the newest is just in the past and 99,999 span under 28 hours."""
    # Whole seconds, as served: a filter at a served time must agree with the stored one.
    shift = timedelta(seconds=round(completed_days_ago * _SECONDS_PER_DAY))
    newest = now - shift - timedelta(seconds=1)
    held = len(client.records)
    records: list[_Record] = []
    for n in range(1, count + 1):
        rid = record_id(client.client_id, held + n)
        fields = client.fields[(held + n - 1) % len(client.fields)] if client.fields else {}
        records.append(
            _Record(
                id=rid,
                version=1,
                completed_at=newest - timedelta(seconds=count - n),
                pending_items=[
                    f"{rid}-p{k}" for k in range(1, client.pending_items_per_record + 1)
                ],
                poison=rid in poison,
                fields=dict(fields),
            )
        )
    return records


class State:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._faults = FaultPlan()
        self._requests: dict[str, Counter[str]] = {}
        self._injected: Counter[str] = Counter()
        self._arrivals: deque[float] = deque(maxlen=MAX_ARRIVALS)
        self._arrived = 0
        self.keyring = Keyring()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._clients = {}
            self._faults = FaultPlan()
            self._requests = {route: Counter() for route in EXTERNAL_ROUTES}
            self._injected = Counter()
            self._arrivals.clear()
            self._arrived = 0
        self.keyring.reset()

    def seed(self, body: SeedClientRequest) -> SeedClientResponse:
        seeded_at = datetime.now(UTC).replace(microsecond=0)
        # Built outside the lock: large seeds must not stall requests.
        client = _build_client(body, seeded_at)
        with self._lock:
            self._clients[body.client_id] = client
        # Seeding without a credential leaves any configured ones alone: re-seeding is not a reset.
        if body.credential is not None:
            self.keyring.replace(body.client_id, [body.credential])
        return SeedClientResponse(client_id=body.client_id, records=len(client.records))

    def add_records(self, client_id: str, body: AddRecordsRequest) -> AddRecordsResponse:
        added_at = datetime.now(UTC).replace(microsecond=0)
        # Built under the lock, unlike a seeding: the numbering continues from the client's
        # count, which a concurrent add would change.
        with self._lock:
            client = self._client(client_id)
            held = len(client.records)
            if held + body.count > MAX_RECORDS:
                raise TooManyRecordsError(
                    f"count: {client_id} holds {held} records; {body.count} more would pass "
                    f"the {MAX_RECORDS} a client can hold"
                )
            client.add(_new_records(client, body.count, body.completed_days_ago, added_at))
            return AddRecordsResponse(
                client_id=client_id, added=body.count, records=len(client.records)
            )

    def check_client(self, client_id: str, group_id: str | None = None) -> None:
        with self._lock:
            self._client(client_id, group_id)

    def page(
        self,
        client_id: str,
        group_id: str | None,
        cursor: str,
        limit: int,
        wanted: RecordFilter = EVERY_RECORD,
    ) -> RecordsPage:
        """Records after the cursor that pass the filter, by id (unacknowledged ones unless
        the filter is a window); keyset paging survives acks, and the cursor is the last
        served id, so it always moves forward."""
        with self._lock:
            client = self._client(client_id, group_id)
            # One past the page says whether another exists. A filter that passes few records
            # scans far for it, but only over ids in memory.
            found = list(islice(client.served_after(cursor, wanted), limit + 1))
            records = [client.to_model(record) for record in found[:limit]]
            more = len(found) > limit
            return RecordsPage(records=records, next_cursor=records[-1].id if more else None)

    def ack(self, client_id: str, acks: list[tuple[str, int]]) -> AckResponse:
        acknowledged: list[str] = []
        unknown: list[str] = []
        with self._lock:
            client = self._client(client_id)
            for rid, version in acks:
                if rid not in client.records:
                    unknown.append(rid)
                    continue
                client.acknowledge(rid, version)
                acknowledged.append(rid)
        return AckResponse(acknowledged=acknowledged, unknown=unknown)

    def bump(self, client_id: str, rid: str) -> Record:
        with self._lock:
            client = self._client(client_id)
            record = client.records.get(rid)
            if record is None:
                raise NotFoundError(f"unknown record {rid}")
            client.bump(record)
            return client.to_model(record)

    def ack_report(self, client_id: str | None) -> AckReport:
        with self._lock:
            return AckReport(
                clients={
                    cid: _client_acks(client)
                    for cid, client in self._clients.items()
                    if client_id in (None, cid)
                }
            )

    def faults(self) -> FaultConfig:
        with self._lock:
            return self._faults.config

    def configure_faults(self, config: FaultConfig) -> None:
        with self._lock:
            self._faults = FaultPlan(config)

    def decide_fault(self, client_id: str, endpoint: Endpoint) -> Decision:
        with self._lock:
            decision = self._faults.decide(client_id, endpoint)
            if decision.fault is not None:
                self._injected[decision.fault] += 1
            return decision

    def count_request(self, route: str, status: int) -> None:
        with self._lock:
            self._requests.setdefault(route, Counter())[str(status)] += 1

    def record_arrival(self) -> None:
        # The clock is read under the lock, so the log stays sorted without sorting it.
        with self._lock:
            self._arrivals.append(time.monotonic())
            self._arrived += 1

    def rate(self, window_ms: int) -> RateReport:
        with self._lock:
            arrivals, total = list(self._arrivals), self._arrived
        return RateReport(
            window_ms=window_ms,
            requests=total,
            max_in_window=_max_in_window(arrivals, window_ms / 1000),
        )

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                requests={route: dict(counts) for route, counts in self._requests.items()},
                injected=InjectedCounts(**self._injected),
            )

    def _client(self, client_id: str, group_id: str | None = None) -> _Client:
        client = self._clients.get(client_id)
        if client is None:
            raise NotFoundError(f"unknown client {client_id}")
        if group_id is not None and group_id != client.group_id:
            raise NotFoundError(f"unknown group {group_id}")
        return client


def _client_acks(client: _Client) -> ClientAcks:
    # Acked means acknowledged at the current version: a bumped record counts again once re-acked.
    unacked = set(client.unacked)
    record_ids = sorted(rid for rid in client.records if rid not in unacked)
    return ClientAcks(
        acked=len(record_ids), duplicate_acks=client.duplicate_acks, record_ids=record_ids
    )


def _max_in_window(arrivals: list[float], window_seconds: float) -> int:
    """The most sorted arrivals within any half-open window [t, t + window_seconds)."""
    best, start = 0, 0
    for end, arrived in enumerate(arrivals):
        while arrived - arrivals[start] >= window_seconds:
            start += 1
        best = max(best, end - start + 1)
    return best
