"""Applying a job's rules to one record: the record item's idempotent unit.

Validate the external record, ask the job what to do, then make the guarded transition (state
and history in one transaction). The result says how the item counts, what to acknowledge, and
the domain event its commit owes.
"""

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from jobkit.adapters.events import StatusChanged, event_id
from jobkit.adapters.records import (
    Allowed,
    AlreadyApplied,
    Applied,
    NotAllowed,
    TransitionContext,
    Unchanged,
    WorkflowStore,
    transition_id,
)
from jobkit.domain.envelope import RecordItem, describe_validation_error
from jobkit.domain.errors import InvalidPayloadError, TenantMismatchError
from jobkit.domain.job import AckRef, ExternalRecord, Job, Skip, Transition
from jobkit.domain.replay import Replay, generation_suffix
from jobkit.pipeline.batch import RecordResult
from jobkit.pipeline.lookup import Lookups
from jobkit.runs.models import Outcome
from jobkit.tooling.chaos import NO_CHAOS, Chaos


class RecordApplier:
    def __init__(self, lookups: Lookups, workflow: WorkflowStore, chaos: Chaos = NO_CHAOS) -> None:
        self._lookups = lookups
        self._workflow = workflow
        self._chaos = chaos
        self._committed: set[str] = set()  # envelopes whose transition committed here

    def forget(self) -> None:
        self._committed.clear()

    def expect(self, items: Iterable[RecordItem]) -> None:
        """The batch's record items: their states read at once when first needed
        (``WorkflowStore.expect``)."""
        self._workflow.expect((item.client_id, item.record_id) for item in items)

    def committed_here(self, envelope_id: str) -> bool:
        """This invocation committed the item's transition (so it owes the event now)."""
        return envelope_id in self._committed

    def apply_once(self, item: RecordItem) -> RecordResult:
        """Run by Powertools' idempotent_function: once per record item."""
        job = self._lookups.job(item.job_type)
        client = self._lookups.client(item.job_type, item.client_id)
        record = parse_external_record(job, item.record, item.client_id, item.record_id)
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
        tid = record_transition_id(item.client_id, record, decision, item.replay)
        context = TransitionContext(
            run_id=item.run_id,
            envelope_id=item.envelope_id,
            correlation_id=item.correlation_id,
            job_type=item.job_type,
        )
        applied = self._workflow.apply(item.client_id, record.id, decision, tid, context)
        if isinstance(applied, Applied):
            self._chaos.crash_after_commit(f"{item.client_id}/{record.id}")
        outcome, reason = describe_outcome(applied, decision, item.envelope_id)
        return RecordResult(
            run_id=item.run_id,
            envelope_id=item.envelope_id,
            outcome=outcome,
            reason=reason,
            ack=ack,
            event=self._event_owed(item, record.id, decision, tid, applied),
        )

    def _event_owed(
        self,
        item: RecordItem,
        record_id: str,
        decision: Transition,
        tid: str,
        applied: Applied | AlreadyApplied | Unchanged | NotAllowed,
    ) -> StatusChanged | None:
        """The transition's event, if this item committed it: just now, or in an earlier
        attempt of this very item that died before finishing."""
        committed: Applied | AlreadyApplied | None = None
        if isinstance(applied, Applied):
            committed = applied
        elif isinstance(applied, AlreadyApplied) and applied.envelope_id == item.envelope_id:
            committed = applied
        if committed is None:
            return None
        self._committed.add(item.envelope_id)
        return StatusChanged(
            event_id=event_id(tid),
            job_type=item.job_type,
            client_id=item.client_id,
            record_id=record_id,
            from_status=committed.from_status,
            to_status=decision.to_status,
            triggers=decision.triggers,
            transition_id=tid,
            run_id=item.run_id,
            occurred_at=committed.occurred_at,
            correlation_id=item.correlation_id,
            replay=item.replay is not None,
        )


def parse_external_record(
    job: Job[Any], raw: dict[str, Any], client_id: str, record_id: str
) -> ExternalRecord:
    """The record validated with the job's model, and checked to be the client's it came for;
    a permanent error naming the field, or the tenant, otherwise."""
    try:
        record: ExternalRecord = job.parse_record(raw)
    except ValidationError as exc:
        raise InvalidPayloadError(
            f"record {record_id!r}: {describe_validation_error(exc)}"
        ) from exc
    if record.client_id != client_id or record.id != record_id:
        raise TenantMismatchError(
            f"record {record.id!r} of client {record.client_id!r} arrived on an item of "
            f"client {client_id!r}"
        )
    return record


def record_transition_id(
    client_id: str, record: ExternalRecord, decision: Transition, replay: Replay | None
) -> str:
    """The transition's id: the same for every attempt at this record revision (and, for a
    backfill in mode all, generation), so a second one finds it applied."""
    revision = f"v{record.version}{generation_suffix(replay)}"
    return transition_id(client_id, record.id, revision, decision.to_status)


def describe_outcome(
    applied: Allowed | Applied | AlreadyApplied | Unchanged | NotAllowed,
    decision: Transition,
    envelope_id: str | None,
) -> tuple[Outcome, str]:
    """How a record item counts on its run, from what the guarded write found (``Allowed``:
    what a preview finds it would do; ``envelope_id`` None: no item is asking)."""
    if isinstance(applied, Applied | Allowed):
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
