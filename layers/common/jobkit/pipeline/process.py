"""The processor: page items fan out into record items; record items get the job's rules once.

Per message (inside Powertools' BatchProcessor):
- a page item fetches one page from the external system, enqueues one record item per record
  and the next page item; it is idempotent on its ``item_key``;
- a record item validates the external record, asks the job what to do, and applies the
  workflow transition; it is idempotent on its ``item_key`` (Powertools, DynamoDB).
Then, once per batch: outcomes are counted on their runs (once per envelope), poison items are
dead-lettered with their reason, and the external system is acknowledged per client for what
succeeded. Permanent errors dead-letter at once; transient ones are retried with exponential
backoff (message visibility) and dead-lettered by us on the last allowed attempt, so every
dead letter is counted on its run and carries its envelope and reason.

Every batch returns before the function's timeout (``TimeBudget``): a message starts only while
the time left covers its worst case and the settling of the batch, and one that does not (or
an acknowledgement that does not) goes back to the queue for a later invocation.
"""

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError

from jobkit.adapters.aws import SQSClient
from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig, ConfigStore
from jobkit.adapters.events import EventPublisher, StatusChanged, event_id
from jobkit.adapters.external import (
    ExternalSystem,
    call_worst_case_seconds,
    longest_attempt_seconds,
)
from jobkit.adapters.queue import MAX_MESSAGE_BYTES, DeadLetterQueue, WorkQueue, receive_count
from jobkit.adapters.ratelimit import (
    DEFAULT_PATIENCE_SECONDS,
    OutOfTimeError,
    RateLimitedError,
    time_budget,
)
from jobkit.adapters.records import (
    AlreadyApplied,
    Applied,
    NotAllowed,
    TransitionContext,
    Unchanged,
    WorkflowStore,
    transition_id,
)
from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.envelope import (
    PageItem,
    RecordItem,
    content_hash,
    describe_validation_error,
    new_page_item,
    new_record_item,
    parse_work_item,
)
from jobkit.domain.errors import (
    ExternalAuthError,
    ExternalUnavailableError,
    InvalidPayloadError,
    PermanentError,
    TenantMismatchError,
    UnknownJobTypeError,
)
from jobkit.domain.job import AckRef, Job, Skip, Transition, raw_record_id
from jobkit.observability import logger
from jobkit.pipeline.retry import ClientRetries
from jobkit.runs.ledger import ItemOutcome, Outcome, PageSnapshot, RunStatus, RunStore
from jobkit.tooling.chaos import NO_CHAOS, Chaos

if TYPE_CHECKING:
    from jobkit.settings import ProcessorSettings

_BACKOFF_BASE_SECONDS = 2
_BACKOFF_MAX_SECONDS = 300
_MAX_PAGES = 100_000
_LATENCY_VALUES_PER_LINE = 50  # Powertools flushes by itself at 100 values
# An item put back this many times while its circuit stayed open (about 3 hours at SQS's
# longest delay) is given up on and dead-lettered.
MAX_DEFERRALS = 12
# Failures of a client's whole page: retried on a schedule (ClientRetries), not by SQS.
_CLIENT_LEVEL_ERRORS = (
    CircuitBreakerOpenError,
    ExternalUnavailableError,
    ExternalAuthError,
    RateLimitedError,
)


class RecordResult(BaseModel):
    """What the idempotency record keeps: small, and enough to count and acknowledge."""

    run_id: str
    envelope_id: str
    outcome: Outcome
    reason: str
    ack: AckRef | None = None
    # The domain event this item's commit owes, published with the batch's others.
    event: StatusChanged | None = None


class PageResult(BaseModel):
    run_id: str
    envelope_id: str
    records: int
    has_next: bool
    oversized: list[tuple[str, str, str]] = []  # (envelope_id, record_id, item_key)


@dataclass(frozen=True)
class TimeBudget:
    """What an invocation keeps time for, in seconds, so that it always returns (its batch
    settled) before the function's timeout.

    One external call as configured (``jobkit.adapters.http_client``) may take, per attempt, a token
    wait up to the bucket's patience (10 s), a connect (up to 2 s) and an answer (up to
    EXTERNAL_TIMEOUT_SECONDS), and up to 5 s of backoff between attempts (a Retry-After's included):
    with 3 attempts, 3 x (10 + 2 + 5) + 2 x 5 = 61 s on AWS (5 s timeout) and 3 x (10 + 2 + 2) + 2 x
    5 = 52 s locally (2 s), twice that when a 401 calls again with a fresh credential. Neither fits
    a 30 s invocation. So a call is given ``call_seconds`` (EXTERNAL_CALL_BUDGET_SECONDS, 10 s, when
    its worst case is longer) and its waits are cut to it
    (``jobkit.adapters.ratelimit.time_budget``): the token wait and the backoff leave room for a
    whole attempt, and no attempt starts without that room. A message then starts only while the
    time left covers its worst case, its AWS requests and the settling of the batch:
      page item:   10 (its fetch) + 1 (its requests) + 3 (settling) = 14 s left,
      record item: 1 + 3 + 10 (one acknowledgement when the batch settles) = 14 s,
      page item once the batch owes an acknowledgement: 10 + 1 + 3 + 10 = 24 s;
    and an acknowledgement is attempted while 10 + 3 = 13 s are left.
    """

    call_seconds: float = 10.0  # one external call at its worst, as cut to the budget
    item_seconds: float = 1.0  # the AWS requests of one item (a page's enqueueing included)
    settle_seconds: float = 3.0  # the AWS requests of settling a batch (counts, copies, events)

    @classmethod
    def from_settings(cls, settings: "ProcessorSettings") -> "TimeBudget":
        timeout = settings.external_timeout_seconds
        attempt = longest_attempt_seconds(timeout)
        if settings.external_call_budget_seconds < attempt:
            # Shorter than one attempt, a call could never be made.
            raise ValueError(
                f"EXTERNAL_CALL_BUDGET_SECONDS ({settings.external_call_budget_seconds:g}) "
                f"must cover one attempt ({attempt:g} s: its connect, then "
                f"EXTERNAL_TIMEOUT_SECONDS for its answer)"
            )
        worst = call_worst_case_seconds(
            timeout, settings.external_max_attempts, DEFAULT_PATIENCE_SECONDS
        )
        return cls(
            call_seconds=min(worst, settings.external_call_budget_seconds),
            item_seconds=settings.item_reserve_seconds,
            settle_seconds=settings.settle_reserve_seconds,
        )

    def after_call(self, owes_ack: bool) -> float:
        """What a page's fetch must leave: its own requests, the settling, perhaps an ack."""
        return self.item_seconds + self.settle_seconds + (self.call_seconds if owes_ack else 0)

    def to_start(self, item: PageItem | RecordItem, owes_ack: bool) -> float:
        """The time left a message needs to be started; ``owes_ack``: the batch already owes
        an acknowledgement (a record item keeps room for the one it may owe itself)."""
        if isinstance(item, PageItem):
            return self.call_seconds + self.after_call(owes_ack)
        return self.item_seconds + self.settle_seconds + self.call_seconds

    def to_acknowledge(self) -> float:
        return self.call_seconds + self.settle_seconds


@dataclass
class _Failure:
    message: SQSRecord
    reason: str
    error_type: str
    item: PageItem | RecordItem | None


@dataclass
class _Batch:
    """What one invocation learned, settled after every message was handled."""

    pages: list[tuple[SQSRecord, PageItem, PageResult]] = field(default_factory=list)
    outcomes: dict[tuple[str, str], list[tuple[SQSRecord, RecordItem, ItemOutcome]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    acks: dict[tuple[str, str], list[tuple[SQSRecord, RecordItem, AckRef]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dead: list[_Failure] = field(default_factory=list)
    item_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: list[tuple[SQSRecord, StatusChanged]] = field(default_factory=list)
    retry: list[_Failure] = field(default_factory=list)
    unsettled: set[str] = field(default_factory=set)  # message ids to report as failures
    deferred: set[str] = field(default_factory=set)  # put back on the queue as a delayed copy
    # Out of time: not started, or processed but not acknowledged; put back as copies.
    unstarted: list[tuple[SQSRecord, PageItem | RecordItem]] = field(default_factory=list)
    unacknowledged: list[tuple[SQSRecord, RecordItem, AckRef]] = field(default_factory=list)
    started: int = 0
    stopped_at_ms: int | None = None  # the time left when a message was first not started


@dataclass
class Dependencies:
    jobs: Mapping[str, Job[Any]]
    configs: ConfigStore
    runs: RunStore
    workflow: WorkflowStore
    queue: WorkQueue
    dead_letters: DeadLetterQueue
    sqs: Callable[[], SQSClient]  # a factory: most batches never need the client
    queue_url: str
    external: Callable[[ClientConfig], ExternalSystem]
    persistence: BasePersistenceLayer
    circuits: Circuits
    retries: ClientRetries
    max_receive_count: int
    key_prefix: str
    idempotency_ttl_seconds: int
    events: EventPublisher | None = None
    chaos: Chaos = NO_CHAOS
    budget: TimeBudget = field(default_factory=TimeBudget)


class Processor:
    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps
        self._idempotency = IdempotencyConfig(
            event_key_jmespath="item_key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=deps.idempotency_ttl_seconds,
        )
        self._apply_record = idempotent_function(
            self._apply_record_once,
            data_keyword_argument="item",
            persistence_store=deps.persistence,
            config=self._idempotency,
            output_serializer=PydanticSerializer(RecordResult),
            key_prefix=f"{deps.key_prefix}.record",
        )
        self._fetch_page = idempotent_function(
            self._fetch_page_once,
            data_keyword_argument="item",
            persistence_store=deps.persistence,
            config=self._idempotency,
            output_serializer=PydanticSerializer(PageResult),
            key_prefix=f"{deps.key_prefix}.page",
        )
        self._client_cache: dict[tuple[str, str], ClientConfig] = {}
        self._cancelled: dict[str, bool] = {}
        self._executed: set[str] = set()  # envelopes whose unit ran in this invocation
        self._context: LambdaContext | None = None

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # In-progress idempotency records expire with this invocation, so an item left
        # IN_PROGRESS by a timeout becomes retryable.
        self._idempotency.register_lambda_context(context)
        self._context = context
        self._client_cache.clear()
        self._cancelled.clear()
        self._executed.clear()
        batch = _Batch()
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        def handle_message(record: SQSRecord) -> None:  # BatchProcessor passes `record=`
            self._handle_message(record, batch)

        with processor(records=event.get("Records", []), handler=handle_message):
            processor.process()
        failed_ids = {str(f["itemIdentifier"]) for f in processor.response()["batchItemFailures"]}
        self._settle(batch)
        failed_ids |= batch.unsettled
        if batch.unstarted or batch.unacknowledged:
            logger.warning(
                "time budget: batch stopped early",
                extra={
                    "unstarted": len(batch.unstarted),
                    "unacknowledged": len(batch.unacknowledged),
                    "started": batch.started,
                    "ms_left_at_stop": batch.stopped_at_ms,
                    "ms_left": context.get_remaining_time_in_millis(),
                },
            )
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in sorted(failed_ids)]}

    def _seconds_left(self) -> float:
        assert self._context is not None  # set by handle, before any message
        return self._context.get_remaining_time_in_millis() / 1000

    def _may_start(self, item: PageItem | RecordItem, batch: _Batch) -> bool:
        """A message starts only while the time left covers its worst case and the settling
        of the batch: once started, it always has its time."""
        left = self._seconds_left()
        if left >= self._deps.budget.to_start(item, owes_ack=bool(batch.acks)):
            return True
        if batch.started == 0:
            # A timeout too short for one message would put every batch back forever: the
            # first one starts, its calls still cut to the time left.
            logger.error(
                "time budget: the invocation cannot cover one item's worst case",
                extra={"ms_left": int(left * 1000), "kind": item.kind},
            )
            return True
        if batch.stopped_at_ms is None:
            batch.stopped_at_ms = int(left * 1000)
        return False

    def _time_for_a_call(self, reserve: float) -> Callable[[], float]:
        """The budget of one external call starting now: the call budget, or less when the
        invocation must keep ``reserve`` seconds for what follows the call."""
        start = self._seconds_left()
        end = start - min(self._deps.budget.call_seconds, max(0.0, start - reserve))
        return lambda: self._seconds_left() - end

    # -- one message ------------------------------------------------------------------------

    def _handle_message(self, message: SQSRecord, batch: _Batch) -> None:
        attempts = receive_count(message)
        try:
            item = parse_work_item(message.body)
        except PermanentError as exc:
            logger.error(
                "invalid work message", extra={"message_id": message.message_id, "reason": str(exc)}
            )
            batch.dead.append(_Failure(message, str(exc), type(exc).__name__, None))
            return
        if not self._may_start(item, batch):
            batch.unstarted.append((message, item))
            return
        batch.started += 1
        logger.append_keys(
            correlation_id=item.correlation_id,
            run_id=item.run_id,
            client_id=item.client_id,
            group_id=item.group_id,
            item_id=item.envelope_id,
        )
        if self._is_cancelled(item.run_id):
            self._skip_cancelled(message, item, batch)
            logger.remove_keys(["correlation_id", "run_id", "client_id", "group_id", "item_id"])
            return
        try:
            if isinstance(item, PageItem):
                self._page(message, item, batch)
            else:
                self._record(message, item, batch)
        except PermanentError as exc:
            self._fail(batch, message, item, str(exc), type(exc).__name__, attempts)
        except Exception as exc:  # noqa: BLE001 - the batch boundary: anything else is retried
            reason = f"{type(exc).__name__}: {exc}"
            if attempts >= self._deps.max_receive_count:
                self._fail(
                    batch,
                    message,
                    item,
                    f"gave up after {attempts} attempts: {reason}",
                    type(exc).__name__,
                    attempts,
                )
                return
            if not isinstance(exc, IdempotencyAlreadyInProgressError):
                logger.warning(
                    "item failed, will retry", extra={"attempt": attempts, "error": reason}
                )
            batch.retry.append(_Failure(message, reason, type(exc).__name__, item))
            raise
        finally:
            logger.remove_keys(["correlation_id", "run_id", "client_id", "group_id", "item_id"])

    def _page(self, message: SQSRecord, item: PageItem, batch: _Batch) -> None:
        reserve = self._deps.budget.after_call(owes_ack=bool(batch.acks))
        try:
            with time_budget(self._time_for_a_call(reserve)):
                page = self._fetch_page(item=item)
        except OutOfTimeError as exc:
            # Nothing was sent (the first request found no time): not the client's failure,
            # and no attempt of the item's. It goes back, as if not started.
            logger.info("page not fetched: out of time", extra={"reason": str(exc)})
            batch.unstarted.append((message, item))
            return
        except _CLIENT_LEVEL_ERRORS as exc:
            self._client_failed(item, exc)
            return
        batch.pages.append((message, item, page))

    def _client_failed(self, item: PageItem, exc: Exception) -> None:
        """The page failed as a whole: the client's work is retried later, on a schedule."""
        wait = 0
        if isinstance(exc, CircuitBreakerOpenError):
            reason = "circuit open"
            wait = self._deps.circuits.seconds_until_trial(item.client_id)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        logger.warning("client's page failed", extra={"reason": reason, "attempt": item.attempt})
        self._deps.retries.page_failed(item, reason, wait)

    def _is_cancelled(self, run_id: str) -> bool:
        """Looked up once per run per batch."""
        if run_id not in self._cancelled:
            header = self._deps.runs.header(run_id)
            self._cancelled[run_id] = header is not None and header.status is RunStatus.CANCELLED
        return self._cancelled[run_id]

    def _skip_cancelled(
        self, message: SQSRecord, item: PageItem | RecordItem, batch: _Batch
    ) -> None:
        """A cancelled run's queued items are skipped: pages fetch nothing, records count so."""
        if isinstance(item, PageItem):
            batch.pages.append(
                (
                    message,
                    item,
                    PageResult(
                        run_id=item.run_id, envelope_id=item.envelope_id, records=0, has_next=False
                    ),
                )
            )
            return
        batch.outcomes[(item.run_id, item.client_id)].append(
            (
                message,
                item,
                ItemOutcome(
                    item.envelope_id,
                    Outcome.SKIPPED,
                    item.record_id,
                    item.item_key,
                    "run cancelled",
                ),
            )
        )

    def _record(self, message: SQSRecord, item: RecordItem, batch: _Batch) -> None:
        started = time.perf_counter()
        result: RecordResult = self._apply_record(item=item)
        batch.item_ms[item.job_type].append(1000 * (time.perf_counter() - started))
        outcome, reason = result.outcome, result.reason
        if result.envelope_id != item.envelope_id:
            # The same work was done before, by another message: count this one as skipped.
            outcome = Outcome.SKIPPED
            reason = f"already done by run {result.run_id}: {result.reason}"
        batch.outcomes[(item.run_id, item.client_id)].append(
            (
                message,
                item,
                ItemOutcome(item.envelope_id, outcome, item.record_id, item.item_key, reason),
            )
        )
        if result.ack is not None:
            batch.acks[(item.job_type, item.client_id)].append((message, item, result.ack))
        # The event goes out with the batch's others, after every item ran. It is owed by a
        # commit made just now, or replayed from the idempotency record when the message comes
        # back after a failed attempt (whose publish may not have happened): at least once,
        # with a stable event id that subscribers deduplicate on.
        event = result.event
        if event is not None and result.envelope_id == item.envelope_id:
            if item.envelope_id in self._executed or receive_count(message) > 1:
                batch.events.append((message, event))

    def _fail(
        self,
        batch: _Batch,
        message: SQSRecord,
        item: PageItem | RecordItem,
        reason: str,
        error_type: str,
        attempts: int,
    ) -> None:
        logger.error(
            "item failed", extra={"reason": reason, "error_type": error_type, "attempt": attempts}
        )
        batch.dead.append(_Failure(message, reason, error_type, item))
        if isinstance(item, RecordItem):
            batch.outcomes[(item.run_id, item.client_id)].append(
                (
                    message,
                    item,
                    ItemOutcome(
                        item.envelope_id,
                        Outcome.FAILED,
                        item.record_id,
                        item.item_key,
                        reason,
                        dead_lettered=True,
                    ),
                )
            )

    # -- the idempotent units ---------------------------------------------------------------

    def _apply_record_once(self, item: RecordItem) -> RecordResult:
        job = self._job(item.job_type)
        client = self._client(item.job_type, item.client_id)
        try:
            record = job.parse_record(item.record)
        except ValidationError as exc:
            raise InvalidPayloadError(
                f"record {item.record_id!r}: {describe_validation_error(exc)}"
            ) from exc
        if record.client_id != item.client_id or record.id != item.record_id:
            raise TenantMismatchError(
                f"record {record.id!r} of client {record.client_id!r} arrived on an item of "
                f"client {item.client_id!r}"
            )
        ack = AckRef(record_id=record.id, version=record.version)
        decision = job.process(record, client)
        if isinstance(decision, Skip):
            return RecordResult(
                run_id=item.run_id,
                envelope_id=item.envelope_id,
                outcome=Outcome.SKIPPED,
                reason=decision.reason,
                ack=ack,
            )
        tid = transition_id(item.client_id, record.id, f"v{record.version}", decision.to_status)
        context = TransitionContext(
            run_id=item.run_id,
            envelope_id=item.envelope_id,
            correlation_id=item.correlation_id,
            job_type=item.job_type,
        )
        applied = self._deps.workflow.apply(item.client_id, record.id, decision, tid, context)
        if isinstance(applied, Applied):
            self._deps.chaos.crash_after_commit(f"{item.client_id}/{record.id}")
        committed_here: Applied | AlreadyApplied | None = (
            applied if isinstance(applied, Applied) else None
        )
        if isinstance(applied, AlreadyApplied) and applied.envelope_id == item.envelope_id:
            committed_here = applied  # this very item committed it, then died before finishing
        event = None
        if committed_here is not None:
            self._executed.add(item.envelope_id)
            event = StatusChanged(
                event_id=event_id(tid),
                job_type=item.job_type,
                client_id=item.client_id,
                record_id=record.id,
                from_status=committed_here.from_status,
                to_status=decision.to_status,
                triggers=decision.triggers,
                transition_id=tid,
                run_id=item.run_id,
                occurred_at=committed_here.occurred_at,
                correlation_id=item.correlation_id,
            )
        outcome, reason = _outcome(applied, decision, item.envelope_id)
        return RecordResult(
            run_id=item.run_id,
            envelope_id=item.envelope_id,
            outcome=outcome,
            reason=reason,
            ack=ack,
            event=event,
        )

    def _fetch_page_once(self, item: PageItem) -> PageResult:
        job = self._job(item.job_type)
        client = self._client(item.job_type, item.client_id)
        external = self._deps.external(client)
        page = self._deps.circuits.call(
            item.client_id, functools.partial(job.fetch_page, external, client, item.cursor)
        )
        if page.next_cursor is not None and (
            page.next_cursor == item.cursor or item.page_number >= _MAX_PAGES
        ):
            raise PermanentError(
                f"external system paging does not advance (page {item.page_number}, "
                f"cursor {page.next_cursor!r})"
            )
        fetched = {
            raw_record_id(raw) or f"unidentified-{content_hash(raw)[:12]}": raw
            for raw in page.records
        }
        # Fetched again after a crash, a page may differ: count and page on from the first.
        snapshot = self._deps.runs.snapshot_page(
            item.run_id,
            item.client_id,
            item.envelope_id,
            PageSnapshot(tuple(fetched), page.next_cursor, page.resume_at),
        )
        records: list[RecordItem] = []
        oversized: list[tuple[str, str, str]] = []
        for record_id in snapshot.record_ids:
            if record_id not in fetched:
                continue  # acknowledged since: it was enqueued by the first fetch
            record_item = new_record_item(item, record_id, fetched[record_id])
            if len(record_item.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
                oversized.append((record_item.envelope_id, record_id, record_item.item_key))
            else:
                records.append(record_item)
        outgoing: list[PageItem | RecordItem] = list(records)
        if snapshot.next_cursor is not None:
            outgoing.append(
                new_page_item(
                    job_type=item.job_type,
                    run_id=item.run_id,
                    client_id=item.client_id,
                    group_id=item.group_id,
                    correlation_id=item.correlation_id,
                    cursor=snapshot.next_cursor,
                    page_number=item.page_number + 1,
                    attempt=item.attempt,
                )
            )
        self._deps.queue.send(outgoing)
        if snapshot.resume_at is not None:
            # Only now: a crash before this line re-fetches from the old cursor (duplicates
            # are skipped downstream), never skips data.
            self._deps.configs.save_cursor(item.job_type, item.client_id, snapshot.resume_at)
        return PageResult(
            run_id=item.run_id,
            envelope_id=item.envelope_id,
            records=len(snapshot.record_ids),
            has_next=snapshot.next_cursor is not None,
            oversized=oversized,
        )

    def _job(self, job_type: str) -> Job[Any]:
        job = self._deps.jobs.get(job_type)
        if job is None:
            raise UnknownJobTypeError(f"unknown job type {job_type!r}")
        return job

    def _client(self, job_type: str, client_id: str) -> ClientConfig:
        key = (job_type, client_id)
        if key not in self._client_cache:
            self._client_cache[key] = self._deps.configs.get(job_type, client_id)
        return self._client_cache[key]

    # -- once per batch ---------------------------------------------------------------------

    def _settle(self, batch: _Batch) -> None:
        # Acknowledge before counting: an item is counted (and its run may close) only once
        # its acknowledgement has settled, so a closed run has no ack left in flight.
        self._publish_events(batch)
        self._count_pages(batch)
        self._acknowledge(batch)
        self._put_back(batch)
        counted = self._count_outcomes(batch)
        self._dead_letter(batch)
        self._back_off(batch)
        self._emit_metrics(batch, counted)

    def _publish_events(self, batch: _Batch) -> None:
        """The batch's domain events, ten per PutEvents. An item whose event did not go out is
        retried (not counted): its redelivery replays the event from its idempotency record."""
        if self._deps.events is None or not batch.events:
            return
        # A message sent twice (one envelope, two messages) owes its event once.
        unique = list({event.event_id: event for _, event in batch.events}.values())
        try:
            failed = self._deps.events.publish_all(unique)
        except Exception:  # noqa: BLE001 - every item of the batch is retried
            logger.exception("publishing the batch's events failed")
            failed = {event.event_id for _, event in batch.events}
        unpublished = {m.message_id for m, event in batch.events if event.event_id in failed}
        if not unpublished:
            return
        # Not acknowledged now: only what fully succeeded is acknowledged.
        for key, acks in batch.acks.items():
            batch.acks[key] = [e for e in acks if e[0].message_id not in unpublished]
        given_up: list[tuple[SQSRecord, RecordItem, int]] = []
        for key, outcomes in batch.outcomes.items():
            kept = []
            for entry in outcomes:
                message, item, _ = entry
                if message.message_id not in unpublished:
                    kept.append(entry)
                    continue
                attempts = receive_count(message)
                if attempts < self._deps.max_receive_count:
                    logger.warning("item retried: its event was not published")
                    batch.unsettled.add(message.message_id)
                    kept.append(entry)
                else:
                    given_up.append((message, item, attempts))
            batch.outcomes[key] = kept
        # The last attempt: dead-lettered and counted failed, like any item that keeps
        # failing; redriven, it replays its event and is recounted as processed.
        for message, item, attempts in given_up:
            reason = f"gave up after {attempts} attempts: its event was not published"
            self._fail(batch, message, item, reason, "EventNotPublished", attempts)

    def _count_pages(self, batch: _Batch) -> None:
        for message, item, page in batch.pages:
            try:
                self._deps.runs.count_page(
                    item.run_id,
                    item.client_id,
                    item.envelope_id,
                    item.page_number,
                    page.records,
                )
                if page.oversized:
                    self._deps.runs.count_outcomes(
                        item.run_id,
                        item.client_id,
                        [
                            ItemOutcome(
                                envelope_id,
                                Outcome.FAILED,
                                record_id,
                                key,
                                "record too large for the work queue",
                            )
                            for envelope_id, record_id, key in page.oversized
                        ],
                    )
            except Exception:  # noqa: BLE001 - retried: counting is idempotent per envelope
                logger.exception("counting a page failed", extra={"run_id": item.run_id})
                batch.unsettled.add(message.message_id)
        for failure in batch.dead:
            if isinstance(failure.item, PageItem):
                item = failure.item
                try:
                    self._deps.runs.fail_page(
                        item.run_id,
                        item.client_id,
                        item.envelope_id,
                        item.page_number,
                        failure.reason,
                    )
                except Exception:  # noqa: BLE001
                    logger.exception("counting a failed page failed")
                    batch.unsettled.add(failure.message.message_id)

    def _count_outcomes(self, batch: _Batch) -> set[str]:
        """Count outcomes, one run at a time (its clients together); returns the message ids
        whose counting held."""
        by_run: dict[str, dict[str, list[tuple[SQSRecord, RecordItem, ItemOutcome]]]] = defaultdict(
            dict
        )
        for (run_id, client_id), all_entries in batch.outcomes.items():
            entries = [
                e
                for e in all_entries
                if e[0].message_id not in batch.unsettled and e[0].message_id not in batch.deferred
            ]
            if entries:
                by_run[run_id][client_id] = entries
        counted: set[str] = set()
        for run_id, by_client in by_run.items():
            messages = {e[0].message_id for entries in by_client.values() for e in entries}
            try:
                self._deps.runs.count_run_outcomes(
                    run_id,
                    {client: [e[2] for e in entries] for client, entries in by_client.items()},
                )
            except Exception:  # noqa: BLE001 - retried: counting is idempotent per envelope
                logger.exception("counting outcomes failed", extra={"run_id": run_id})
                batch.unsettled.update(messages)
                continue
            counted |= messages
        return counted

    def _dead_letter(self, batch: _Batch) -> None:
        for failure in batch.dead:
            message_id = failure.message.message_id
            if message_id in batch.unsettled:
                continue
            item = failure.item
            try:
                self._deps.dead_letters.send(
                    failure.message.body,
                    reason=failure.reason,
                    error_type=failure.error_type,
                    source_message_id=message_id,
                    attempts=receive_count(failure.message),
                    run_id=item.run_id if item else "",
                    client_id=item.client_id if item else "",
                )
            except Exception:  # noqa: BLE001 - keep the message: it is retried, not lost
                logger.exception("dead-lettering failed", extra={"message_id": message_id})
                batch.unsettled.add(message_id)

    def _acknowledge(self, batch: _Batch) -> None:
        """Acknowledge per client what committed; failed acks are retried, not reprocessed.
        An ack there is no time for is not attempted: its items go back unacknowledged, and
        their next delivery acknowledges them from the idempotency record."""
        budget = self._deps.budget
        for (job_type, client_id), entries in batch.acks.items():
            if self._seconds_left() < budget.to_acknowledge():
                batch.unacknowledged.extend(entries)
                continue
            job, client = self._deps.jobs[job_type], self._client(job_type, client_id)
            refs = list({ref.record_id: ref for _, _, ref in entries}.values())
            acknowledge = functools.partial(
                job.acknowledge, self._deps.external(client), client, refs
            )
            try:
                with time_budget(self._time_for_a_call(budget.settle_seconds)):
                    result = self._deps.circuits.call(client_id, acknowledge)
            except CircuitBreakerOpenError:
                self._defer(batch, client_id, entries)
                continue
            except OutOfTimeError:  # nothing was sent: not the external system's failure
                batch.unacknowledged.extend(entries)
                continue
            except Exception as exc:  # noqa: BLE001 - the ack is retried without reprocessing
                self._ack_failed(batch, entries, f"{type(exc).__name__}: {exc}")
                continue
            if result.rejected:
                logger.error(
                    "acknowledgement rejected",
                    extra={"client_id": client_id, "rejected": result.rejected},
                )

    def _put_back(self, batch: _Batch) -> None:
        """What this invocation had no time for goes back to the queue as identical copies
        (same envelope, so counted once), visible at once.

        Not as batch item failures: a failure waits out the queue's 180 s visibility timeout,
        and each return uses up a receive, so items that only lacked our time would come
        closer to being dead-lettered, and one at maxReceiveCount would be moved to the DLQ by
        the queue's redrive, without our reason or its count on the run. A copy costs what a
        visibility change would (one request per ten); should this invocation die after
        sending it, the original comes back too, and idempotency makes that a duplicate."""
        entries: list[tuple[SQSRecord, PageItem | RecordItem]] = [
            *batch.unstarted,
            *((message, item) for message, item, _ in batch.unacknowledged),
        ]
        failed: list[SQSRecord] = []
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            try:
                self._deps.queue.send_bodies(
                    [(item.message_group_id, message.body) for message, item in chunk]
                )
            except Exception:  # noqa: BLE001 - returned as failures instead, visible at once
                logger.exception("putting back items out of time failed")
                failed += [message for message, _ in chunk]
            else:
                batch.deferred.update(message.message_id for message, _ in chunk)
        if failed:
            batch.unsettled.update(message.message_id for message in failed)
            self._release(failed)

    def _release(self, messages: list[SQSRecord]) -> None:
        """Failures made visible again at once rather than after the visibility timeout."""
        for start in range(0, len(messages), 10):
            try:
                self._deps.sqs().change_message_visibility_batch(
                    QueueUrl=self._deps.queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                        for n, m in enumerate(messages[start : start + 10])
                    ],
                )
            except Exception:  # noqa: BLE001 - the queue's own timeout applies then
                logger.exception("could not make items visible again")

    def _defer(
        self, batch: _Batch, client_id: str, entries: list[tuple[SQSRecord, RecordItem, AckRef]]
    ) -> None:
        """The client's circuit is open: put its items back as delayed copies (same envelope,
        so counted once), which does not use up their receive count as a retry would."""
        delay = self._deps.circuits.seconds_until_trial(client_id)
        copies, exhausted = [], []
        for message, item, ref in entries:
            if item.deferrals >= MAX_DEFERRALS:
                exhausted.append((message, item, ref))
            else:
                copies.append((message, item.model_copy(update={"deferrals": item.deferrals + 1})))
        try:
            self._deps.queue.send([copy for _, copy in copies], delay_seconds=delay)
        except Exception:  # noqa: BLE001 - the originals are retried instead
            logger.exception("deferring items failed")
            batch.unsettled.update(message.message_id for message, _ in copies)
        else:
            batch.deferred.update(message.message_id for message, _ in copies)
            logger.info(
                "items deferred: circuit open",
                extra={"client_id": client_id, "items": len(copies), "delay_seconds": delay},
            )
        if exhausted:
            self._ack_failed(
                batch,
                exhausted,
                f"circuit stayed open through {MAX_DEFERRALS} deferrals",
                give_up=True,
            )

    def _ack_failed(
        self,
        batch: _Batch,
        entries: list[tuple[SQSRecord, RecordItem, AckRef]],
        reason: str,
        give_up: bool = False,
    ) -> None:
        giving_up = []
        for message, item, _ in entries:
            attempts = receive_count(message)
            if give_up or attempts >= self._deps.max_receive_count:
                giving_up.append((message, item))
            else:
                batch.retry.append(_Failure(message, f"ack failed: {reason}", "AckFailed", item))
                batch.unsettled.add(message.message_id)
        logger.warning(
            "acknowledgement failed",
            extra={"error": reason, "items": len(entries), "giving_up": len(giving_up)},
        )
        for message, item in giving_up:
            try:
                self._deps.dead_letters.send(
                    message.body,
                    reason=f"acknowledgement failed: {reason}",
                    error_type="AckFailed",
                    source_message_id=message.message_id,
                    attempts=self._deps.max_receive_count,
                    run_id=item.run_id,
                    client_id=item.client_id,
                )
                self._deps.runs.add_to_client(item.run_id, item.client_id, ack_failed=1)
            except Exception:  # noqa: BLE001
                logger.exception("dead-lettering an unacknowledged item failed")
                batch.unsettled.add(message.message_id)

    def _back_off(self, batch: _Batch) -> None:
        """Exponential backoff with jitter between attempts, through message visibility."""
        entries: list[dict[str, Any]] = []
        for failure in batch.retry:
            attempts = receive_count(failure.message)
            delay = backoff_seconds(
                attempts, _BACKOFF_BASE_SECONDS, _BACKOFF_MAX_SECONDS, floor=0.5
            )
            entries.append(
                {
                    "Id": str(len(entries)),
                    "ReceiptHandle": failure.message.receipt_handle,
                    "VisibilityTimeout": int(delay) + 1,
                }
            )
        for start in range(0, len(entries), 10):
            try:
                self._deps.sqs().change_message_visibility_batch(
                    QueueUrl=self._deps.queue_url,
                    Entries=entries[start : start + 10],  # type: ignore[arg-type]
                )
            except Exception:  # noqa: BLE001 - without it the queue's own timeout applies
                logger.exception("could not set retry backoff")
        retried: dict[tuple[str, str], int] = defaultdict(int)
        for failure in batch.retry:
            if failure.item is not None:
                retried[(failure.item.run_id, failure.item.client_id)] += 1
        for (run_id, client_id), count in retried.items():
            try:
                self._deps.runs.add_to_client(run_id, client_id, retries=count)
            except Exception:  # noqa: BLE001 - informational counter only
                logger.exception("could not count retries")

    def _emit_metrics(self, batch: _Batch, counted: set[str]) -> None:
        per_job: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for _, page_item, page in batch.pages:
            per_job[page_item.job_type]["RecordsReceived"] += page.records
        for job_type, values in _returned(batch).items():
            per_job[job_type].update(values)
        for entries in batch.outcomes.values():
            for message, item, outcome in entries:
                if message.message_id not in counted:
                    continue
                name = {
                    Outcome.PROCESSED: "RecordsProcessed",
                    Outcome.SKIPPED: "RecordsSkipped",
                    Outcome.FAILED: "RecordsFailed",
                }[outcome.outcome]
                per_job[item.job_type][name] += 1
                if outcome.dead_lettered:
                    per_job[item.job_type]["DeadLettered"] += 1
        for job_type, values in per_job.items():
            for name, value in values.items():
                with single_metric(
                    name=name,
                    unit=MetricUnit.Count,
                    value=value,
                    default_dimensions={"job_type": job_type},
                ):
                    pass
        self._emit_latency(batch, counted)
        for job_type, durations in batch.item_ms.items():
            with single_metric(
                name="ItemDuration",
                unit=MetricUnit.Milliseconds,
                value=sum(durations) / len(durations),  # the batch's mean per record item
                default_dimensions={"job_type": job_type},
            ) as metric:
                metric.add_metadata("items", len(durations))

    def _emit_latency(self, batch: _Batch, counted: set[str]) -> None:
        """Enqueue to counted, per record item: how long a client's records wait. EMF value
        lists (at most 100 values each), so CloudWatch can tell p50 and p95."""
        now = datetime.now(UTC)
        per_job: dict[str, list[float]] = defaultdict(list)
        for entries in batch.outcomes.values():
            for message, item, _ in entries:
                if message.message_id not in counted:
                    continue
                enqueued = item.enqueued_at
                if enqueued.tzinfo is None:  # a hand-made envelope: read it as UTC
                    enqueued = enqueued.replace(tzinfo=UTC)
                per_job[item.job_type].append((now - enqueued).total_seconds() * 1000)
        for job_type, latencies in per_job.items():
            for start in range(0, len(latencies), _LATENCY_VALUES_PER_LINE):
                latency = EphemeralMetrics()
                latency.add_dimension(name="job_type", value=job_type)
                for value in latencies[start : start + _LATENCY_VALUES_PER_LINE]:
                    latency.add_metric(
                        name="RecordLatency", unit=MetricUnit.Milliseconds, value=value
                    )
                latency.flush_metrics()


def _returned(batch: _Batch) -> dict[str, dict[str, int]]:
    """Per job type, the items put back for lack of time."""
    returned: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, item in batch.unstarted:
        returned[item.job_type]["ItemsReturnedUnstarted"] += 1
    for _, record_item, _ in batch.unacknowledged:
        returned[record_item.job_type]["ItemsReturnedUnacknowledged"] += 1
    return returned


def _outcome(
    applied: Applied | AlreadyApplied | Unchanged | NotAllowed,
    decision: Transition,
    envelope_id: str,
) -> tuple[Outcome, str]:
    """How a record item counts on its run, from what the guarded write found."""
    if isinstance(applied, Applied):
        return Outcome.PROCESSED, f"{applied.from_status} -> {decision.to_status}"
    if isinstance(applied, AlreadyApplied) and applied.envelope_id == envelope_id:
        # Committed by an earlier attempt of this very item that died before finishing.
        return Outcome.PROCESSED, f"-> {decision.to_status}"
    if isinstance(applied, AlreadyApplied):
        return Outcome.SKIPPED, f"already applied by run {applied.run_id}"
    if isinstance(applied, Unchanged):
        return Outcome.SKIPPED, "unchanged (same content hash)"
    return (
        Outcome.SKIPPED,
        f"record is {applied.current_status}: no transition to {decision.to_status}",
    )
