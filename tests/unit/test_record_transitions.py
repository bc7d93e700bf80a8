"""Record transitions decided on an eventually consistent read: a stale read never decides
anything but a write its version guard checks; every other answer is read again, strongly."""

from typing import Any

from jobkit.adapters.records import (
    STATE,
    AlreadyApplied,
    Applied,
    NotAllowed,
    TransitionContext,
    WorkflowStore,
    record_pk,
    transition_id,
)
from jobkit.domain.job import NEW, Transition

COMPLETE = Transition("completed", frozenset({NEW, "pending"}), "done upstream")
CONTEXT = TransitionContext("run-1", "env-1", "corr", "sync-completed-records")


class StaleReads:
    """The Records table, whose eventually consistent reads answer ``stale`` (or nothing)."""

    def __init__(self, table: Any, stale: dict[str, Any] | None) -> None:
        self._table = table
        self.meta = table.meta
        self.name = table.name
        self._stale = stale
        self.reads: list[bool] = []

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self.reads.append(bool(kwargs.get("ConsistentRead")))
        if kwargs.get("ConsistentRead"):
            return dict(self._table.get_item(**kwargs))
        return {"Item": self._stale} if self._stale is not None else {}


def _state(aws: Any, **attributes: Any) -> dict[str, Any]:
    item = {"pk": record_pk("acme", "r1"), "sk": STATE, **attributes}
    aws.tables["RecordsTable"].put_item(Item=item)
    return item


def test_a_fresh_read_that_allows_the_transition_decides_with_one_cheap_read(aws: Any) -> None:
    state = _state(aws, status="pending", version=1)
    table = StaleReads(aws.tables["RecordsTable"], stale=state)
    tid = transition_id("acme", "r1", "1", "completed")

    result = WorkflowStore(table).apply("acme", "r1", COMPLETE, tid, CONTEXT)

    assert isinstance(result, Applied) and result.version == 2
    assert table.reads == [False]


def test_a_stale_read_fails_the_version_guard_and_the_strong_read_decides(aws: Any) -> None:
    # Given a record already completed by this transition, read stale as still pending
    tid = transition_id("acme", "r1", "1", "completed")
    _state(aws, status="completed", version=2, last_transition_id=tid, last_envelope_id="env-0")
    table = StaleReads(
        aws.tables["RecordsTable"], stale={"pk": "x", "status": "pending", "version": 1}
    )

    result = WorkflowStore(table).apply("acme", "r1", COMPLETE, tid, CONTEXT)

    # Then nothing is written twice: it was done, by the envelope that did it
    assert isinstance(result, AlreadyApplied) and result.envelope_id == "env-0"
    assert table.reads == [False, True]
    item = aws.tables["RecordsTable"].get_item(Key={"pk": record_pk("acme", "r1"), "sk": STATE})
    assert item["Item"]["version"] == 2


def test_a_stale_read_that_refuses_or_finds_nothing_is_confirmed_strongly(aws: Any) -> None:
    # A record that was refused on a stale status, and one not replicated yet
    _state(aws, status="pending", version=3)
    refusing = StaleReads(aws.tables["RecordsTable"], stale={"status": "archived", "version": 1})
    tid = transition_id("acme", "r1", "3", "completed")

    refused = WorkflowStore(refusing).apply("acme", "r1", COMPLETE, tid, CONTEXT)

    assert isinstance(refused, Applied) and refused.version == 4
    assert refusing.reads == [False, True]
    archived = Transition("archived", frozenset({"pending"}), "archived upstream")
    missing = StaleReads(aws.tables["RecordsTable"], stale=None)
    result = WorkflowStore(missing).apply("acme", "r1", archived, "t2", CONTEXT)
    assert isinstance(result, NotAllowed) and result.current_status == "completed"
    assert missing.reads == [False, True]


def _batch_gets(table: Any) -> list[int]:
    """Records the number of keys of each BatchGetItem the table's client makes."""
    made: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        made.append(sum(len(r["Keys"]) for r in params["RequestItems"].values()))

    table.meta.client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", count)
    return made


def test_a_batch_s_states_read_at_once_stand_for_each_record_s_cheap_read(aws: Any) -> None:
    # Given three pending records, and a fourth the transition may create
    for record_id in ("r1", "r2", "r3"):
        aws.tables["RecordsTable"].put_item(
            Item={
                "pk": record_pk("acme", record_id),
                "sk": STATE,
                "status": "pending",
                "version": 1,
            }
        )
    table = StaleReads(aws.tables["RecordsTable"], stale=None)
    batch_gets = _batch_gets(aws.tables["RecordsTable"])
    store = WorkflowStore(table)
    # When their states are read for the batch, then each record is applied
    store.expect([("acme", r) for r in ("r1", "r2", "r3", "r4", "r1")])
    results = [
        store.apply("acme", r, COMPLETE, transition_id("acme", r, "1", "completed"), CONTEXT)
        for r in ("r1", "r2", "r3", "r4")
    ]
    # Then one request read the four states, and no record was read again on its own
    assert batch_gets == [4]
    assert table.reads == []
    assert [type(r) for r in results] == [Applied] * 4
    assert [r.version for r in results if isinstance(r, Applied)] == [2, 2, 2, 1]


def test_a_state_read_with_the_batch_s_serves_once_and_a_stale_one_is_read_again_strongly(
    aws: Any,
) -> None:
    # Given two pending records of a batch, read together as the first one is applied, and
    # the second then completed by another writer before the batch reaches it
    tid = transition_id("acme", "r1", "1", "completed")
    _state(aws, status="pending", version=1)
    aws.tables["RecordsTable"].put_item(
        Item={"pk": record_pk("acme", "r2"), "sk": STATE, "status": "pending", "version": 1}
    )
    table = StaleReads(aws.tables["RecordsTable"], stale=None)
    store = WorkflowStore(table)
    store.expect([("acme", "r2"), ("acme", "r1")])
    r2 = store.apply("acme", "r2", COMPLETE, transition_id("acme", "r2", "1", "c"), CONTEXT)
    _state(aws, status="completed", version=2, last_transition_id=tid, last_envelope_id="env-0")
    # When the batch applies it, and a second item of the same record comes after
    first = store.apply("acme", "r1", COMPLETE, tid, CONTEXT)
    second = store.apply("acme", "r1", COMPLETE, tid, CONTEXT)
    # Then the stale state failed the version guard and the strong read decided (done by the
    # envelope that did it); the second item read on its own, as without the batch's read
    assert isinstance(r2, Applied)
    assert isinstance(first, AlreadyApplied) and first.envelope_id == "env-0"
    assert isinstance(second, AlreadyApplied)
    assert table.reads == [True, False, True]
    item = aws.tables["RecordsTable"].get_item(Key={"pk": record_pk("acme", "r1"), "sk": STATE})
    assert item["Item"]["version"] == 2


def test_a_batch_that_moves_no_record_reads_no_state(aws: Any) -> None:
    batch_gets = _batch_gets(aws.tables["RecordsTable"])
    store = WorkflowStore(aws.tables["RecordsTable"])
    store.expect([("acme", "r1"), ("acme", "r2")])  # every record skipped by the job
    store.expect([("acme", "r3")])  # the next batch
    assert batch_gets == []
