"""Counting a batch's outcomes: each client's in one update and one outcome pack, each once,
and a closed client's totals exact whatever was delivered (or counted) twice."""

from datetime import UTC, datetime
from typing import Any

import pytest

from jobkit.runs.ledger import Ledger, open_ledger
from jobkit.runs.models import (
    ClientRun,
    ClientStatus,
    ItemOutcome,
    Outcome,
    RunHeader,
    RunStatus,
    Trigger,
)


def _outcome(
    envelope: str, outcome: Outcome = Outcome.PROCESSED, dead_lettered: bool = False
) -> ItemOutcome:
    return ItemOutcome(
        envelope,
        outcome,
        f"rec-{envelope}",
        f"sync-completed-records#acme#rec-{envelope}#r1",
        dead_lettered=dead_lettered,
    )


def _running_run(ledger: Ledger, received: dict[str, int]) -> str:
    header = RunHeader(
        run_id="run-1",
        job_type="sync-completed-records",
        trigger=Trigger.CLI,
        requested_by="test",
        correlation_id="corr",
        created_at=datetime.now(UTC),
    )
    ledger.lifecycle.open_run(header)
    rows = [ClientRun(client_id=c, group_id="g", pages_open=1) for c in received]
    ledger.lifecycle.add_clients(header, rows, resume=False)
    ledger.lifecycle.mark_running("run-1", len(received), 0, [])
    for client_id, n in received.items():
        ledger.counting.count_page("run-1", client_id, f"page-{client_id}", 1, n)
    return "run-1"


def _client(ledger: Ledger, run_id: str, client_id: str) -> ClientRun:
    view = ledger.queries.view(run_id)
    assert view is not None
    return next(c for c in view.clients if c.client_id == client_id)


def test_a_batch_of_two_clients_is_one_update_and_one_pack_each_and_counted_once(
    aws: Any,
) -> None:
    ledger = open_ledger(aws.tables["RunsTable"])
    run_id = _running_run(ledger, {"acme": 2, "globex": 1})
    client = aws.tables["RunsTable"].meta.client
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

    counted = ledger.counting.count_run_outcomes(
        run_id,
        {"acme": [_outcome("a1"), _outcome("a2"), _outcome("a1")], "globex": [_outcome("g1")]},
    )

    assert counted == {"acme": 2, "globex": 1}
    assert calls.count("UpdateItem") >= 2 and calls.count("PutItem") == 2
    assert "TransactWriteItems" not in calls
    again = ledger.counting.count_run_outcomes(
        run_id, {"acme": [_outcome("a2")], "globex": [_outcome("g1")]}, frozenset({"a2", "g1"})
    )
    assert sum(again.values()) == 0
    view = ledger.queries.view(run_id)
    assert view is not None
    assert {(c.client_id, c.status, c.processed) for c in view.clients} == {
        ("acme", ClientStatus.DONE, 2),
        ("globex", ClientStatus.DONE, 1),
    }
    assert view.header.status is RunStatus.SUCCEEDED
    assert view.header.processed == 3
    assert sorted(item.envelope_id for item in ledger.queries.items(run_id)) == ["a1", "a2", "g1"]


def test_a_redelivered_message_of_an_open_client_is_looked_up_and_not_counted_again(
    aws: Any,
) -> None:
    ledger = open_ledger(aws.tables["RunsTable"])
    run_id = _running_run(ledger, {"acme": 3})
    ledger.counting.count_outcomes(run_id, "acme", [_outcome("a1"), _outcome("a2")])

    again = ledger.counting.count_outcomes(
        run_id, "acme", [_outcome("a1"), _outcome("a3")], frozenset({"a1"})
    )

    assert again == 1  # only a3 is news
    row = _client(ledger, run_id, "acme")
    assert (row.status, row.processed, row.received) == (ClientStatus.DONE, 3, 3)


def test_a_batch_larger_than_one_pack_is_split_and_still_counted_once(aws: Any) -> None:
    ledger = open_ledger(aws.tables["RunsTable"])
    received = {"acme": 250, "globex": 30}  # acme's outcomes take two packs
    run_id = _running_run(ledger, received)
    outcomes = {c: [_outcome(f"{c}-{i}") for i in range(n)] for c, n in received.items()}

    counted = ledger.counting.count_run_outcomes(run_id, outcomes)

    assert counted == received
    view = ledger.queries.view(run_id)
    assert view is not None and view.header.status is RunStatus.SUCCEEDED
    assert view.header.processed == 280
    assert len(ledger.queries.items(run_id)) == 280


def test_a_crash_between_the_counters_and_the_pack_leaves_the_closed_totals_exact(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a client of two records whose first count dies after its counters moved
    table = aws.tables["RunsTable"]
    ledger = open_ledger(table)
    run_id = _running_run(ledger, {"acme": 2})
    put_item = ledger.counting._table.table.put_item  # noqa: SLF001 - the crash point

    def crash(**_: Any) -> None:
        raise ConnectionError("the processor died here")

    monkeypatch.setattr(ledger.counting._table.table, "put_item", crash)  # noqa: SLF001
    with pytest.raises(ConnectionError):
        ledger.counting.count_outcomes(run_id, "acme", [_outcome("a1")])
    monkeypatch.setattr(ledger.counting._table.table, "put_item", put_item)  # noqa: SLF001

    # When its message comes again, and then the client's last record
    ledger.counting.count_outcomes(run_id, "acme", [_outcome("a1")], frozenset({"a1"}))
    ahead = _client(ledger, run_id, "acme")
    ledger.counting.count_outcomes(run_id, "acme", [_outcome("a2")])

    # Then the live counters ran ahead, but the client did not close before its last record,
    # and closed with the exact totals
    assert (ahead.status, ahead.processed) == (ClientStatus.RUNNING, 2)
    row = _client(ledger, run_id, "acme")
    assert (row.status, row.processed, row.open_items) == (ClientStatus.DONE, 2, 0)
    header = ledger.queries.header(run_id)
    assert header is not None and header.processed == 2


def test_a_dead_letter_redriven_after_closing_moves_from_failed_once(aws: Any) -> None:
    ledger = open_ledger(aws.tables["RunsTable"])
    run_id = _running_run(ledger, {"acme": 2})
    ledger.counting.count_outcomes(
        run_id, "acme", [_outcome("a1"), _outcome("a2", Outcome.FAILED, dead_lettered=True)]
    )
    closed = _client(ledger, run_id, "acme")

    redriven = [_outcome("a2")]
    first = ledger.counting.count_outcomes(run_id, "acme", redriven, frozenset({"a2"}))
    second = ledger.counting.count_outcomes(run_id, "acme", redriven, frozenset({"a2"}))

    assert (closed.status, closed.processed, closed.failed) == (ClientStatus.DONE, 1, 1)
    assert (first, second) == (1, 0)
    row = _client(ledger, run_id, "acme")
    assert (row.processed, row.failed, row.dead_lettered) == (2, 0, 1)
    header = ledger.queries.header(run_id)
    assert header is not None and (header.processed, header.failed) == (2, 0)
    # The item is listed with its failure and with its redrive
    listed = sorted((i.envelope_id, i.outcome.value) for i in ledger.queries.items(run_id))
    assert listed == [("a1", "processed"), ("a2", "failed"), ("a2", "processed")]
