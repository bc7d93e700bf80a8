"""Settle: tell the external system, per client, which records committed.

Only what succeeded is acknowledged. A failed acknowledgement is retried by redelivery, which
finds the item's idempotency record: the record is not processed again. A client whose circuit
is open gets its items back as delayed copies (its receive count is not used up). An
acknowledgement there is no time for is not attempted: its items go back unacknowledged.
"""

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.external import ExternalSystem
from jobkit.adapters.queue import DeadLetterQueue, WorkQueue, receive_count
from jobkit.adapters.ratelimit import OutOfTimeError, time_budget
from jobkit.observability import logger
from jobkit.pipeline.batch import AckDue, Failure
from jobkit.pipeline.budget import Clock
from jobkit.pipeline.lookup import Lookups
from jobkit.runs.counting import OutcomeCounting

# An item put back this many times while its circuit stayed open (about 3 hours at SQS's
# longest delay) is given up on and dead-lettered.
MAX_DEFERRALS = 12


@dataclass
class Acknowledged:
    unsettled: set[str] = field(default_factory=set)  # retried: reported failed
    deferred: set[str] = field(default_factory=set)  # put back as delayed copies
    retry: list[Failure] = field(default_factory=list)  # to back off before their retry
    unacknowledged: list[AckDue] = field(default_factory=list)  # no time: to put back


class Acknowledger:
    def __init__(
        self,
        lookups: Lookups,
        external: Callable[[ClientConfig], ExternalSystem],
        circuits: Circuits,
        queue: WorkQueue,
        dead_letters: DeadLetterQueue,
        runs: OutcomeCounting,
        max_receive_count: int,
    ) -> None:
        self._lookups = lookups
        self._external = external
        self._circuits = circuits
        self._queue = queue
        self._dead_letters = dead_letters
        self._runs = runs
        self._max_receive_count = max_receive_count

    def acknowledge(self, acks: list[AckDue], clock: Clock) -> Acknowledged:
        decided = Acknowledged()
        by_client: dict[tuple[str, str], list[AckDue]] = defaultdict(list)
        for ack in acks:
            by_client[(ack.item.job_type, ack.item.client_id)].append(ack)
        for (job_type, client_id), entries in by_client.items():
            if clock.seconds_left() < clock.budget.to_acknowledge():
                decided.unacknowledged.extend(entries)
                continue
            self._one_client(job_type, client_id, entries, clock, decided)
        return decided

    def _one_client(
        self,
        job_type: str,
        client_id: str,
        entries: list[AckDue],
        clock: Clock,
        decided: Acknowledged,
    ) -> None:
        job, client = self._lookups.job(job_type), self._lookups.client(job_type, client_id)
        refs = list({entry.ref.record_id: entry.ref for entry in entries}.values())
        call = functools.partial(job.acknowledge, self._external(client), client, refs)
        try:
            with time_budget(clock.for_a_call(clock.budget.settle_seconds)):
                result = self._circuits.call(client_id, call)
        except CircuitBreakerOpenError:
            self._defer(client_id, entries, decided)
            return
        except OutOfTimeError:  # nothing was sent: not the external system's failure
            decided.unacknowledged.extend(entries)
            return
        except Exception as exc:  # noqa: BLE001 - the ack is retried without reprocessing
            self._failed(entries, f"{type(exc).__name__}: {exc}", decided)
            return
        if result.rejected:
            logger.error(
                "acknowledgement rejected",
                extra={"client_id": client_id, "rejected": result.rejected},
            )

    def _defer(self, client_id: str, entries: list[AckDue], decided: Acknowledged) -> None:
        """The client's circuit is open: put its items back as delayed copies (same envelope,
        so counted once), which does not use up their receive count as a retry would."""
        delay = self._circuits.seconds_until_trial(client_id)
        copies, exhausted = _partition(entries, lambda e: e.item.deferrals < MAX_DEFERRALS)
        try:
            self._queue.send(
                [e.item.model_copy(update={"deferrals": e.item.deferrals + 1}) for e in copies],
                delay_seconds=delay,
            )
        except Exception:  # noqa: BLE001 - the originals are retried instead
            logger.exception("deferring items failed")
            decided.unsettled.update(e.message.message_id for e in copies)
        else:
            decided.deferred.update(e.message.message_id for e in copies)
            logger.info(
                "items deferred: circuit open",
                extra={"client_id": client_id, "items": len(copies), "delay_seconds": delay},
            )
        if exhausted:
            reason = f"circuit stayed open through {MAX_DEFERRALS} deferrals"
            self._failed(exhausted, reason, decided, give_up=True)

    def _failed(
        self, entries: list[AckDue], reason: str, decided: Acknowledged, give_up: bool = False
    ) -> None:
        giving_up = []
        for entry in entries:
            if give_up or receive_count(entry.message) >= self._max_receive_count:
                giving_up.append(entry)
            else:
                failure = Failure(entry.message, f"ack failed: {reason}", "AckFailed", entry.item)
                decided.retry.append(failure)
                decided.unsettled.add(entry.message.message_id)
        logger.warning(
            "acknowledgement failed",
            extra={"error": reason, "items": len(entries), "giving_up": len(giving_up)},
        )
        for entry in giving_up:
            try:
                self._give_up(entry, reason)
            except Exception:  # noqa: BLE001
                logger.exception("dead-lettering an unacknowledged item failed")
                decided.unsettled.add(entry.message.message_id)

    def _give_up(self, entry: AckDue, reason: str) -> None:
        self._dead_letters.send(
            entry.message.body,
            reason=f"acknowledgement failed: {reason}",
            error_type="AckFailed",
            source_message_id=entry.message.message_id,
            attempts=self._max_receive_count,
            run_id=entry.item.run_id,
            client_id=entry.item.client_id,
        )
        self._runs.add_to_client(entry.item.run_id, entry.item.client_id, ack_failed=1)


def _partition(
    entries: list[AckDue], keep: Callable[[AckDue], bool]
) -> tuple[list[AckDue], list[AckDue]]:
    kept: list[AckDue] = []
    others: list[AckDue] = []
    for entry in entries:
        (kept if keep(entry) else others).append(entry)
    return kept, others
