"""Guarded status transitions with an append-only history, written in one transaction.

Read the current state, decide, persist with a guard: the state write is conditioned on the
version we read, and the history row is written in the same transaction, so a transition is
either entirely there or not at all.

A transition's workflow triggers are registered on its history row, inside that transaction, and
fired by the domain event its commit owes (``jobkit.adapters.events``). They are not rows of their
own: a separate trigger row per transition cost a third of the transaction (2 of its 6 write units)
and nothing ever read it, since the event is what subscribers act on.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from jobkit.adapters.aws import batch_get, transaction_cancelled
from jobkit.adapters.update_expression import UpdateExpression
from jobkit.domain.errors import ConcurrentUpdateError, RecordNotFoundError, ThrottledError
from jobkit.domain.job import NEW, Transition

STATE = "STATE"


def record_pk(client_id: str, record_id: str) -> str:
    """Records are keyed by client first: an item of one client cannot address another's."""
    return f"{client_id}#{record_id}"


def transition_id(client_id: str, record_id: str, revision: str, to_status: str) -> str:
    """Stable across retries: the same record revision moving to the same status."""
    return hashlib.sha256(f"{client_id}#{record_id}#{revision}#{to_status}".encode()).hexdigest()[
        :32
    ]


@dataclass(frozen=True)
class TransitionContext:
    """Where a transition comes from, written on its history row."""

    run_id: str
    envelope_id: str
    correlation_id: str
    job_type: str


@dataclass(frozen=True)
class Applied:
    from_status: str
    version: int
    occurred_at: str


@dataclass(frozen=True)
class AlreadyApplied:
    """This transition was committed before, by the item named here."""

    run_id: str
    envelope_id: str
    from_status: str
    occurred_at: str


@dataclass(frozen=True)
class NotAllowed:
    current_status: str


@dataclass(frozen=True)
class Unchanged:
    """The record already holds this content: nothing written."""


@dataclass(frozen=True)
class Allowed:
    """The guard admits the transition: the record is in ``from_status`` (``NEW``: absent)."""

    from_status: str


ApplyResult = Applied | AlreadyApplied | NotAllowed | Unchanged
Verdict = Allowed | AlreadyApplied | NotAllowed | Unchanged


class WorkflowStore:
    """The Records table: ``pk`` = client#record, ``sk`` = STATE | HIST#<version>."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._client = table.meta.client
        # A batch's records (``expect``), read together at its first cheap read; the states
        # read, each kept for its record's next one (None: the read found no such record).
        self._expected: list[str] = []
        self._read_ahead: dict[str, dict[str, Any] | None] = {}

    def expect(self, records: Iterable[tuple[str, str]]) -> None:
        """The records (client id, record id) a batch may move. The first of them to need its
        state has all of theirs read at once, one request per 100 (BatchGetItem, eventually
        consistent): each stands for its record's cheap read in ``apply``, at the same price,
        and saves its round trip. Nothing is read for a batch that moves no record (a job
        that skips them all). A state that went stale meanwhile fails the version guard, as
        a stale read does, and the strong read decides."""
        self._expected = sorted(
            {record_pk(client_id, record_id) for client_id, record_id in records}
        )
        self._read_ahead = {}

    def _cheap_read(self, pk: str) -> dict[str, Any] | None:
        """The record's state, eventually consistent: read with the batch's the first time."""
        if self._expected:
            expected, self._expected = self._expected, []
            self._read_ahead = self._read_together(expected)
        if pk in self._read_ahead:
            return self._read_ahead.pop(pk)
        item: dict[str, Any] | None = self._table.get_item(Key={"pk": pk, "sk": STATE}).get("Item")
        return item

    def _read_together(self, pks: list[str]) -> dict[str, dict[str, Any] | None]:
        """States of ``pks``; those a throttled table left unread are left out (each is then
        read on its own)."""
        found: dict[str, dict[str, Any] | None] = {}
        try:
            keys = [{"pk": pk, "sk": STATE} for pk in pks]
            for item in batch_get(self._client, self._table.name, keys):
                found[item["pk"]] = item
        except ThrottledError:
            return found
        return {pk: found.get(pk) for pk in pks}

    def apply(
        self,
        client_id: str,
        record_id: str,
        transition: Transition,
        tid: str,
        context: TransitionContext,
    ) -> ApplyResult:
        """Decide on an eventually consistent read (half a strongly consistent one's price),
        and act on it only when it allows the transition: the write is guarded on the version
        read, so a stale read fails the guard and is read again, strongly. Any other answer
        (done, unchanged, not allowed, unknown) is confirmed by a strongly consistent read,
        which alone decides."""
        pk = record_pk(client_id, record_id)
        try:
            state = self._state(client_id, record_id, transition, consistent=False)
            verdict = _verdict(state, transition, tid)
            if isinstance(verdict, Allowed):
                return self._commit_allowed(pk, state, verdict, transition, tid, context)
        except (RecordNotFoundError, ConcurrentUpdateError):
            pass  # not replicated yet, stale, or truly concurrent: the strong read decides
        state = self._state(client_id, record_id, transition, consistent=True)
        verdict = _verdict(state, transition, tid)
        if not isinstance(verdict, Allowed):
            return verdict
        return self._commit_allowed(pk, state, verdict, transition, tid, context)

    def verdict(self, client_id: str, record_id: str, transition: Transition, tid: str) -> Verdict:
        """What ``apply`` would find, read and never written: a preview of the rules."""
        state = self._state(client_id, record_id, transition, consistent=True)
        return _verdict(state, transition, tid)

    def _commit_allowed(
        self,
        pk: str,
        state: dict[str, Any],
        verdict: Allowed,
        transition: Transition,
        tid: str,
        context: TransitionContext,
    ) -> Applied:
        version = int(state.get("version", 0))
        now = datetime.now(UTC).isoformat()
        self._commit(pk, state, version, transition, tid, context, now)
        return Applied(from_status=verdict.from_status, version=version + 1, occurred_at=now)

    def _state(
        self, client_id: str, record_id: str, transition: Transition, consistent: bool
    ) -> dict[str, Any]:
        """The record's state, or a new one's where the transition may create it."""
        pk = record_pk(client_id, record_id)
        if consistent:
            state = self._table.get_item(Key={"pk": pk, "sk": STATE}, ConsistentRead=True).get(
                "Item"
            )
        else:
            state = self._cheap_read(pk)
        if state is None and NEW in transition.allowed_from:
            state = {"status": NEW, "version": 0, "new": True}
        if state is None:
            raise RecordNotFoundError(f"record {record_id!r} of client {client_id!r} is unknown")
        return dict(state)

    def _commit(
        self,
        pk: str,
        state: dict[str, Any],
        version: int,
        transition: Transition,
        tid: str,
        context: TransitionContext,
        now: str,
    ) -> None:
        write = _Write(pk, state, version, transition, tid, context, now)
        items = [self._state_update(write), self._history_put(write)]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if transaction_cancelled(exc):
                # Another writer moved the record between our read and our write.
                raise ConcurrentUpdateError(f"record {pk!r} changed concurrently") from exc
            raise

    def _state_update(self, write: "_Write") -> dict[str, Any]:
        """The record's new state, guarded: on the version read (or on its absence)."""
        transition, context = write.transition, write.context
        update = UpdateExpression()
        update.set("status", transition.to_status).set("version", write.version + 1)
        update.set("last_transition_id", write.tid).set("last_run_id", context.run_id)
        update.set("last_envelope_id", context.envelope_id).set("updated_at", write.now)
        update.set("last_from_status", write.state["status"])
        for name, value in (transition.fields or {}).items():
            update.set(name, value)
        if transition.content_hash is not None:
            update.set("content_hash", transition.content_hash)
        if transition.clear_pending:
            update.remove("pending_items")
        arguments = update.arguments()
        if write.state.get("new"):
            guard = "attribute_not_exists(pk)"
        else:
            guard = "version = :version"
            arguments["ExpressionAttributeValues"][":version"] = write.version
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": {"pk": write.pk, "sk": STATE},
                "ConditionExpression": guard,
                **arguments,
            }
        }

    def _history_put(self, write: "_Write") -> dict[str, Any]:
        """The transition's row in the append-only history, written once."""
        transition, context, state = write.transition, write.context, write.state
        cleared = list(state.get("pending_items", [])) if transition.clear_pending else []
        return {
            "Put": {
                "TableName": self._table.name,
                "Item": {
                    "pk": write.pk,
                    "sk": f"HIST#{write.version + 1:010d}",
                    "transition_id": write.tid,
                    "from_status": state["status"],
                    "to_status": transition.to_status,
                    "reason": transition.reason,
                    "cleared_pending": cleared,
                    "triggers": list(transition.triggers),
                    "job_type": context.job_type,
                    "run_id": context.run_id,
                    "envelope_id": context.envelope_id,
                    "correlation_id": context.correlation_id,
                    "occurred_at": write.now,
                },
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def history(self, client_id: str, record_id: str) -> list[dict[str, Any]]:
        """The record's transitions, oldest first."""
        response = self._table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :hist)",
            ExpressionAttributeValues={":pk": record_pk(client_id, record_id), ":hist": "HIST#"},
        )
        return list(response.get("Items", []))


def _verdict(state: dict[str, Any], transition: Transition, tid: str) -> Verdict:
    """The guard's answer for ``transition`` on a record in ``state``."""
    if transition.content_hash is not None and (
        state.get("content_hash") == transition.content_hash
    ):
        return Unchanged()
    if state.get("last_transition_id") == tid:
        return AlreadyApplied(
            run_id=str(state.get("last_run_id", "")),
            envelope_id=str(state.get("last_envelope_id", "")),
            from_status=str(state.get("last_from_status", "")),
            occurred_at=str(state.get("updated_at", "")),
        )
    current = str(state["status"])
    if current not in transition.allowed_from:
        return NotAllowed(current_status=current)
    return Allowed(from_status=current)


class _Write(NamedTuple):
    """One transition as it is committed: the state it was decided on, and its history row."""

    pk: str
    state: dict[str, Any]
    version: int
    transition: Transition
    tid: str
    context: TransitionContext
    now: str
