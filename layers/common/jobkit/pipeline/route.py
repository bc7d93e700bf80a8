"""One message of a batch: parse it, start it only if there is time, run its unit, and note
in the ``Batch`` what became of it. Nothing is settled here (``jobkit.pipeline.settle``).

Permanent errors dead-letter at once; transient ones are retried with backoff (the message
is reported failed) and dead-lettered by us on the last allowed attempt, so every dead letter
is counted on its run and carries its envelope and reason. A page that fails as a whole
(endpoint down, credential refused, circuit open, no rate-limit token) is the client's failure:
retried on a schedule (``jobkit.pipeline.retry``), not by SQS.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.queue import receive_count
from jobkit.adapters.ratelimit import OutOfTimeError, RateLimitedError, time_budget
from jobkit.domain.envelope import PageItem, RecordItem, parse_work_item
from jobkit.domain.errors import ExternalAuthError, ExternalUnavailableError, PermanentError
from jobkit.observability import logger
from jobkit.pipeline.apply import RecordApplier
from jobkit.pipeline.batch import (
    AckDue,
    Batch,
    CountedItem,
    EventDue,
    Failure,
    FetchedPage,
    PageResult,
    RecordResult,
    Unstarted,
    dead_lettered,
)
from jobkit.pipeline.budget import Clock
from jobkit.pipeline.retry import ClientRetries
from jobkit.runs.counting import OutcomeCounting
from jobkit.runs.models import ItemOutcome, Outcome, RunStatus

# Failures of a client's whole page: retried on a schedule (ClientRetries), not by SQS.
_CLIENT_LEVEL_ERRORS = (
    CircuitBreakerOpenError,
    ExternalUnavailableError,
    ExternalAuthError,
    RateLimitedError,
)
_LOG_KEYS = ["correlation_id", "run_id", "client_id", "group_id", "item_id"]


class Router:
    def __init__(
        self,
        fetch: Callable[[PageItem], PageResult],
        apply: Callable[[RecordItem], RecordResult],
        applier: RecordApplier,
        runs: OutcomeCounting,
        circuits: Circuits,
        retries: ClientRetries,
        max_receive_count: int,
    ) -> None:
        self._fetch = fetch  # idempotent: once per page item
        self._apply = apply  # idempotent: once per record item
        self._applier = applier
        self._runs = runs
        self._circuits = circuits
        self._retries = retries
        self._max_receive_count = max_receive_count
        self._cancelled: dict[str, bool] = {}
        self._parsed: dict[str, PageItem | RecordItem] = {}  # the batch's, by message id

    def forget(self) -> None:
        """A new invocation sees a run cancelled since."""
        self._cancelled.clear()
        self._parsed.clear()

    def prepare(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """The batch's messages parsed before any is run, and its records told to the store,
        which reads their states at once: one request for the batch where each record item
        would make its own."""
        for message in messages:
            message_id, body = message.get("messageId"), message.get("body")
            if not isinstance(message_id, str) or not isinstance(body, str):
                continue  # BatchProcessor reports it on its own
            with suppress(PermanentError):  # told when its turn comes (``handle``)
                self._parsed[message_id] = parse_work_item(body)
        self._applier.expect(i for i in self._parsed.values() if isinstance(i, RecordItem))

    def handle(self, message: SQSRecord, batch: Batch, clock: Clock) -> None:
        try:
            item = self._parsed.pop(message.message_id, None) or parse_work_item(message.body)
        except PermanentError as exc:
            logger.error(
                "invalid work message", extra={"message_id": message.message_id, "reason": str(exc)}
            )
            batch.dead.append(Failure(message, str(exc), type(exc).__name__, None))
            return
        if not _may_start(item, batch, clock):
            batch.unstarted.append(Unstarted(message, item))
            return
        batch.started += 1
        logger.append_keys(
            correlation_id=item.correlation_id,
            run_id=item.run_id,
            client_id=item.client_id,
            group_id=item.group_id,
            item_id=item.envelope_id,
        )
        try:
            self._run(message, item, batch, clock)
        finally:
            logger.remove_keys(_LOG_KEYS)

    def _run(
        self, message: SQSRecord, item: PageItem | RecordItem, batch: Batch, clock: Clock
    ) -> None:
        if self._is_cancelled(item.run_id):
            _skip_cancelled(message, item, batch)
            return
        attempts = receive_count(message)
        try:
            if isinstance(item, PageItem):
                self._page(message, item, batch, clock)
            else:
                self._record(message, item, batch)
        except PermanentError as exc:
            _fail(batch, message, item, str(exc), type(exc).__name__, attempts)
        except Exception as exc:  # noqa: BLE001 - the batch boundary: anything else is retried
            reason = f"{type(exc).__name__}: {exc}"
            if attempts >= self._max_receive_count:
                reason = f"gave up after {attempts} attempts: {reason}"
                _fail(batch, message, item, reason, type(exc).__name__, attempts)
                return
            if not isinstance(exc, IdempotencyAlreadyInProgressError):
                logger.warning(
                    "item failed, will retry", extra={"attempt": attempts, "error": reason}
                )
            batch.retry.append(Failure(message, reason, type(exc).__name__, item))
            raise  # BatchProcessor reports the message failed

    def _page(self, message: SQSRecord, item: PageItem, batch: Batch, clock: Clock) -> None:
        reserve = clock.budget.after_call(owes_ack=bool(batch.acks))
        try:
            with time_budget(clock.for_a_call(reserve)):
                page = self._fetch(item)
        except OutOfTimeError as exc:
            # Nothing was sent (the first request found no time): not the client's failure,
            # and no attempt of the item's. It goes back, as if not started.
            logger.info("page not fetched: out of time", extra={"reason": str(exc)})
            batch.unstarted.append(Unstarted(message, item))
            return
        except _CLIENT_LEVEL_ERRORS as exc:
            self._client_failed(item, exc)
            return
        batch.pages.append(FetchedPage(message, item, page))

    def _client_failed(self, item: PageItem, exc: Exception) -> None:
        """The page failed as a whole: the client's work is retried later, on a schedule."""
        wait = 0
        if isinstance(exc, CircuitBreakerOpenError):
            reason = "circuit open"
            wait = self._circuits.seconds_until_trial(item.client_id)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        logger.warning("client's page failed", extra={"reason": reason, "attempt": item.attempt})
        self._retries.page_failed(item, reason, wait)

    def _record(self, message: SQSRecord, item: RecordItem, batch: Batch) -> None:
        started = time.perf_counter()
        result = self._apply(item)
        batch.item_ms[item.job_type].append(1000 * (time.perf_counter() - started))
        outcome, reason = result.outcome, result.reason
        if result.envelope_id != item.envelope_id:
            # The same work was done before, by another message: count this one as skipped.
            outcome = Outcome.SKIPPED
            reason = f"already done by run {result.run_id}: {result.reason}"
        counted = ItemOutcome(item.envelope_id, outcome, item.record_id, item.item_key, reason)
        batch.outcomes.append(CountedItem(message, item, counted))
        # A live run acknowledges whatever it was served, even work another run did (the
        # record is still served: that run's acknowledgement may have failed). A replay,
        # served what was acknowledged too, acknowledges only what it committed: what it
        # skips, or finds done, is the live runs' to acknowledge.
        if result.ack is not None and (item.replay is None or outcome is Outcome.PROCESSED):
            batch.acks.append(AckDue(message, item, result.ack))
        # The event goes out with the batch's others, after every item ran. It is owed by a
        # commit made just now, or replayed from the idempotency record when the message comes
        # back after a failed attempt (whose publish may not have happened): at least once,
        # with a stable event id that subscribers deduplicate on.
        event = result.event
        if event is not None and result.envelope_id == item.envelope_id:
            if self._applier.committed_here(item.envelope_id) or receive_count(message) > 1:
                batch.events.append(EventDue(message, event))

    def _is_cancelled(self, run_id: str) -> bool:
        """Looked up once per run per invocation."""
        if run_id not in self._cancelled:
            header = self._runs.header(run_id)
            self._cancelled[run_id] = header is not None and header.status is RunStatus.CANCELLED
        return self._cancelled[run_id]


def _may_start(item: PageItem | RecordItem, batch: Batch, clock: Clock) -> bool:
    """A message starts only while the time left covers its worst case and the settling of
    the batch: once started, it always has its time."""
    left = clock.seconds_left()
    if left >= clock.budget.to_start(item, owes_ack=bool(batch.acks)):
        return True
    if batch.started == 0:
        # A timeout too short for one message would put every batch back forever: the first
        # one starts, its calls still cut to the time left.
        logger.error(
            "time budget: the invocation cannot cover one item's worst case",
            extra={"ms_left": int(left * 1000), "kind": item.kind},
        )
        return True
    if batch.stopped_at_ms is None:
        batch.stopped_at_ms = int(left * 1000)
    return False


def _skip_cancelled(message: SQSRecord, item: PageItem | RecordItem, batch: Batch) -> None:
    """A cancelled run's queued items are skipped: pages fetch nothing, records count so."""
    if isinstance(item, PageItem):
        nothing = PageResult(
            run_id=item.run_id, envelope_id=item.envelope_id, records=0, has_next=False
        )
        batch.pages.append(FetchedPage(message, item, nothing))
        return
    skipped = ItemOutcome(
        item.envelope_id, Outcome.SKIPPED, item.record_id, item.item_key, "run cancelled"
    )
    batch.outcomes.append(CountedItem(message, item, skipped))


def _fail(
    batch: Batch,
    message: SQSRecord,
    item: PageItem | RecordItem,
    reason: str,
    error_type: str,
    attempts: int,
) -> None:
    logger.error(
        "item failed", extra={"reason": reason, "error_type": error_type, "attempt": attempts}
    )
    batch.dead.append(Failure(message, reason, error_type, item))
    if isinstance(item, RecordItem):
        batch.outcomes.append(dead_lettered(message, item, reason))
