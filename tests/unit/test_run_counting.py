"""Counting a batch's outcomes: several clients of a run in one transaction, each once."""

from datetime import UTC, datetime
from typing import Any

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


def _outcome(envelope: str, outcome: Outcome = Outcome.PROCESSED) -> ItemOutcome:
    return ItemOutcome(envelope, outcome, f"rec-{envelope}", f"key-{envelope}")


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


def test_a_batch_of_two_clients_is_counted_in_one_transaction_and_only_once(aws: Any) -> None:
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
    assert calls.count("TransactWriteItems") == 1
    again = ledger.counting.count_run_outcomes(
        run_id, {"acme": [_outcome("a2")], "globex": [_outcome("g1")]}
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


def test_a_batch_larger_than_one_transaction_is_split_and_still_counted_once(aws: Any) -> None:
    ledger = open_ledger(aws.tables["RunsTable"])
    received = {f"c{n}": 30 for n in range(5)}  # 150 markers + 5 clients: two transactions
    run_id = _running_run(ledger, received)
    outcomes = {c: [_outcome(f"{c}-{i}") for i in range(n)] for c, n in received.items()}

    counted = ledger.counting.count_run_outcomes(run_id, outcomes)

    assert counted == received
    view = ledger.queries.view(run_id)
    assert view is not None and view.header.status is RunStatus.SUCCEEDED
    assert view.header.processed == 150
