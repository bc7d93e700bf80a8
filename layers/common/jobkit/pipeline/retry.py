"""Client-level retries: a client whose work failed as a whole (the fetch failed after our HTTP
retries, its credentials were refused, its circuit is open) is retried later within the same
run, on a one-off EventBridge Scheduler schedule, with exponential backoff and a cap.

The schedule invokes the retry worker with a ``RetryRequest``; the worker re-enqueues the
client's page where it failed. Past the cap the client is marked poison on its run.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.queue import WorkQueue
from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.envelope import Identifier, JobType, PageItem, RunId, new_page_item
from jobkit.domain.replay import Replay
from jobkit.observability import logger
from jobkit.runs.models import FINAL_STATUSES
from jobkit.runs.retry_state import ClientRetryState

_MAX_SCHEDULE_NAME = 64


class RetryRequest(BaseModel):
    """What a one-off schedule hands the retry worker: where the client's work stopped."""

    # Built on first use: the processor needs it only when a client's work fails as a whole.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    job_type: JobType
    run_id: RunId
    client_id: Identifier
    group_id: Identifier
    correlation_id: str = Field(min_length=1, max_length=128)
    attempt: int = Field(ge=1, le=100)
    cursor: str | None = None
    page_number: int = Field(1, ge=1)
    reason: str = Field(max_length=500)
    as_of: datetime | None = None  # the run's reference time (``PageItem.as_of``)
    replay: Replay | None = None  # a backfill's window and generation (``PageItem.replay``)


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: int = 60
    max_seconds: int = 3600
    max_retries: int = 3

    def delay(self, attempt: int) -> int:
        """Backoff before retry ``attempt`` (1-based): doubling, with jitter, capped."""
        wait = backoff_seconds(attempt, self.base_seconds, self.max_seconds, floor=0.5)
        return max(1, int(wait))

    def exhausted(self, attempt: int) -> bool:
        """True when retry ``attempt`` (0 = the first try) was the last one allowed."""
        return attempt >= self.max_retries


def schedule_name(request: RetryRequest) -> str:
    """One schedule per (run, client, attempt): a repeated request creates it once."""
    digest = hashlib.sha256(
        f"{request.run_id}\x1f{request.client_id}\x1f{request.attempt}".encode()
    ).hexdigest()[:24]
    return f"jobkit-retry-{digest}"[:_MAX_SCHEDULE_NAME]


class RetryScheduler:
    """Creates the one-off schedules (``at()``, deleted after they fire).

    ``scheduler`` gives the Scheduler client when a schedule is to be created: most
    invocations create none, so the client is not made at cold start (pass a cached factory,
    such as ``jobkit.adapters.aws.scheduler_client``, to make it once per container).
    """

    def __init__(
        self,
        scheduler: Callable[[], Any],
        target_arn: str,
        role_arn: str,
        group: str,
        dead_letter_arn: str | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._target_arn = target_arn
        self._role_arn = role_arn
        self._group = group
        self._dead_letter_arn = dead_letter_arn

    def schedule(self, request: RetryRequest, when: datetime) -> None:
        name = schedule_name(request)
        target: dict[str, Any] = {
            "Arn": self._target_arn,
            "RoleArn": self._role_arn,
            "Input": json.dumps(request.model_dump(mode="json")),
            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
        }
        if self._dead_letter_arn:
            # Without it, a retry whose invoke fails every attempt is dropped, and the client
            # waits on its run until the run is cancelled.
            target["DeadLetterConfig"] = {"Arn": self._dead_letter_arn}
        scheduler = self._scheduler()
        try:
            scheduler.create_schedule(
                Name=name,
                GroupName=self._group,
                ScheduleExpression=f"at({when:%Y-%m-%dT%H:%M:%S})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target=target,
            )
        except scheduler.exceptions.ConflictException:
            logger.info("retry already scheduled", extra={"schedule": name})
        logger.info(
            "client retry scheduled",
            extra={
                "run_id": request.run_id,
                "client_id": request.client_id,
                "attempt": request.attempt,
                "at": when.isoformat(),
                "reason": request.reason,
            },
        )


class ClientRetries:
    """What happens when a client's work fails as a whole: park it and schedule the next
    attempt, or, past the policy's cap, mark it poison on its run."""

    def __init__(
        self, runs: ClientRetryState, scheduler: RetryScheduler, policy: RetryPolicy
    ) -> None:
        self._runs = runs
        self._scheduler = scheduler
        self.policy = policy

    def page_failed(self, item: PageItem, reason: str, wait_at_least: int = 0) -> None:
        """The client's page could not be fetched (after our HTTP retries)."""
        exhausted = self.policy.exhausted(item.attempt)
        when = retry_time(max(self.policy.delay(item.attempt + 1), wait_at_least))
        self._runs.park_client(
            item.run_id,
            item.client_id,
            item.envelope_id,
            item.page_number,
            reason,
            item.attempt,
            "" if exhausted else when.isoformat(),
        )
        if exhausted:
            self.poison(item.job_type, item.run_id, item.client_id, item.attempt, reason)
            return
        request = RetryRequest(
            job_type=item.job_type,
            run_id=item.run_id,
            client_id=item.client_id,
            group_id=item.group_id,
            correlation_id=item.correlation_id,
            attempt=item.attempt + 1,
            cursor=item.cursor,
            page_number=item.page_number,
            reason=reason[:500],
            as_of=item.query_time,
            replay=item.replay,
        )
        # Also when the page was parked before (a crash before this line): the schedule's
        # name makes creating it again harmless.
        self._scheduler.schedule(request, when)

    def schedule(self, request: RetryRequest, wait_at_least: int = 0) -> str:
        """Schedule ``request``; returns when it will run (ISO 8601)."""
        when = retry_time(max(self.policy.delay(request.attempt), wait_at_least))
        self._scheduler.schedule(request, when)
        return when.isoformat()

    def poison(
        self, job_type: str, run_id: str, client_id: str, attempts: int, reason: str
    ) -> None:
        self._runs.poison_client(
            run_id, client_id, f"gave up after {attempts + 1} attempt(s): {reason}"
        )
        logger.error(
            "client poisoned",
            extra={"run_id": run_id, "client_id": client_id, "reason": reason},
        )
        # One alarm for every job type: the job type travels as metadata, not a dimension.
        with single_metric(name="ClientsPoisoned", unit=MetricUnit.Count, value=1) as metric:
            metric.add_metadata("job_type", job_type)
            metric.add_metadata("run_id", run_id)
            metric.add_metadata("client_id", client_id)


class RetryWorker:
    """Runs a scheduled retry: the client's page goes back on the queue where it failed."""

    def __init__(
        self, runs: ClientRetryState, queue: WorkQueue, circuits: Circuits, retries: ClientRetries
    ) -> None:
        self._runs = runs
        self._queue = queue
        self._circuits = circuits
        self._retries = retries

    def retry(self, request: RetryRequest) -> str:
        header = self._runs.header(request.run_id)
        if header is None or header.status in FINAL_STATUSES:
            logger.info("retry of a closed run dropped", extra={"run_id": request.run_id})
            return "dropped"
        circuit = self._circuits.open_circuit(request.client_id)
        if circuit is not None:
            reason = f"circuit open (retry in {circuit.retry_in_seconds} s)"
            if self._retries.policy.exhausted(request.attempt):
                self._retries.poison(
                    request.job_type, request.run_id, request.client_id, request.attempt, reason
                )
                return "poisoned"
            later = request.model_copy(update={"attempt": request.attempt + 1, "reason": reason})
            at = self._retries.schedule(later, circuit.retry_in_seconds)
            self._runs.delay_client(request.run_id, request.client_id, later.attempt, at, reason)
            return "delayed"
        # Once per attempt; a repeated invocation still re-sends the page, which is
        # deduplicated downstream (same envelope, same work).
        self._runs.resume_client(request.run_id, request.client_id, request.attempt)
        self._queue.send(
            [
                new_page_item(
                    job_type=request.job_type,
                    run_id=request.run_id,
                    client_id=request.client_id,
                    group_id=request.group_id,
                    correlation_id=request.correlation_id,
                    cursor=request.cursor,
                    page_number=request.page_number,
                    attempt=request.attempt,
                    as_of=request.as_of,
                    replay=request.replay,
                )
            ]
        )
        logger.info(
            "client retried",
            extra={
                "run_id": request.run_id,
                "client_id": request.client_id,
                "attempt": request.attempt,
            },
        )
        return "resumed"


def retry_time(delay_seconds: int) -> datetime:
    """When a retry runs: whole seconds, as an ``at()`` schedule can say it."""
    return (datetime.now(UTC) + timedelta(seconds=delay_seconds)).replace(microsecond=0)
