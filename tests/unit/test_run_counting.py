"""Counting a batch's outcomes: several clients of a run in one transaction, each once."""

from datetime import UTC, datetime
from typing import Any

from jobkit.runs.ledger import (
    ClientRun,
    ClientStatus,
    ItemOutcome,
    Outcome,
    RunHeader,
    RunStatus,
    RunStore,
    Trigger,
)


def _outcome(envelope: str, outcome: Outcome = Outcome.PROCESSED) -> ItemOutcome:
    return ItemOutcome(envelope, outcome, f"rec-{envelope}", f"key-{envelope}")


def _running_run(runs: RunStore, received: dict[str, int]) -> str:
    header = RunHeader(
        run_id="run-1",
        job_type="sync-completed-records",
        trigger=Trigger.CLI,
        requested_by="test",
        correlation_id="corr",
        created_at=datetime.now(UTC),
    )
    runs.open_run(header)
    rows = [ClientRun(client_id=c, group_id="g", pages_open=1) for c in received]
    runs.add_clients("run-1", rows, resume=False)
    runs.mark_running("run-1", len(received), 0, [])
    for client_id, n in received.items():
        runs.count_page("run-1", client_id, f"page-{client_id}", 1, n)
    return "run-1"


def test_a_batch_of_two_clients_is_counted_in_one_transaction_and_only_once(aws: Any) -> None:
    runs = RunStore(aws.tables["RunsTable"])
    run_id = _running_run(runs, {"acme": 2, "globex": 1})
    client = aws.tables["RunsTable"].meta.client
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))

    counted = runs.count_run_outcomes(
        run_id,
        {"acme": [_outcome("a1"), _outcome("a2"), _outcome("a1")], "globex": [_outcome("g1")]},
    )

    assert counted == {"acme": 2, "globex": 1}
    assert calls.count("TransactWriteItems") == 1
    again = runs.count_run_outcomes(run_id, {"acme": [_outcome("a2")], "globex": [_outcome("g1")]})
    assert sum(again.values()) == 0
    view = runs.view(run_id)
    assert view is not None
    assert {(c.client_id, c.status, c.processed) for c in view.clients} == {
        ("acme", ClientStatus.DONE, 2),
        ("globex", ClientStatus.DONE, 1),
    }
    assert view.header.status is RunStatus.SUCCEEDED
    assert view.header.processed == 3


def test_a_batch_larger_than_one_transaction_is_split_and_still_counted_once(aws: Any) -> None:
    runs = RunStore(aws.tables["RunsTable"])
    received = {f"c{n}": 30 for n in range(5)}  # 150 markers + 5 clients: two transactions
    run_id = _running_run(runs, received)
    outcomes = {c: [_outcome(f"{c}-{i}") for i in range(n)] for c, n in received.items()}

    counted = runs.count_run_outcomes(run_id, outcomes)

    assert counted == received
    view = runs.view(run_id)
    assert view is not None and view.header.status is RunStatus.SUCCEEDED
    assert view.header.processed == 150
