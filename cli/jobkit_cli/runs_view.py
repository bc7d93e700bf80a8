"""Reading runs and dead letters for people: live totals, tables, a progress bar."""

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobkit.api.models import ClientRunOut, RunOut
from jobkit.runs.ledger import open_ledger
from jobkit.runs.models import FINAL_STATUSES, RunView
from jobkit.runs.queries import RunQueries
from jobkit_cli.stack import Stack

# Wide enough for the tables when output is captured (CI, pipes); a terminal sets its own.
console = Console(width=None if sys.stdout.isatty() else 140)


def run_store(stack: Stack) -> RunQueries:
    return open_ledger(stack.table("RunsTableName")).queries


def is_final(view: RunView) -> bool:
    return view.header.status in FINAL_STATUSES


def watch(stack: Stack, run_id: str, timeout: float = 900.0) -> RunView:
    """Follow a run in the Runs table until it reaches a final status."""
    store = run_store(stack)

    def fetch() -> RunOut:
        view = store.view(run_id)
        if view is None:
            raise SystemExit(f"jobkit: no run {run_id!r}")
        return RunOut.of(view)

    follow(run_id, fetch, timeout)
    view = store.view(run_id)
    assert view is not None
    return view


def follow(run_id: str, fetch: Callable[[], RunOut], timeout: float = 900.0) -> RunOut:
    """A live progress bar fed by ``fetch`` until the run is final."""
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(run_id, total=None, detail="planning")
        while True:
            run = fetch()
            counts = run.counts
            done = counts.processed + counts.skipped + counts.failed
            progress.update(
                task,
                total=max(counts.received, 1),
                completed=done,
                detail=f"{run.status} · failed {counts.failed}",
            )
            if run.status in FINAL_STATUSES:
                return run
            if time.monotonic() > deadline:
                raise SystemExit(f"jobkit: run {run_id} still {run.status} after {timeout:.0f}s")
            time.sleep(1.0)


def client_table(run: RunOut, acks: dict[str, int] | None = None) -> Table:
    table = Table(title=f"run {run.run_id} · {run.status}")
    counters = ("received", "processed", "skipped", "failed", "dead_lettered", "retries")
    table.add_column("client")
    table.add_column("result")
    for name in counters:
        table.add_column(name.replace("_", "-"), justify="right")
    if acks is not None:
        table.add_column("acks seen", justify="right")
    table.add_column("note")
    for row in sorted(run.clients, key=lambda c: c.client_id):
        cells = [row.client_id, row.result, *(str(getattr(row, name)) for name in counters)]
        if acks is not None:
            cells.append(str(acks.get(row.client_id, 0)))
        cells.append(_note(row))
        table.add_row(*cells)
    return table


def _note(row: ClientRunOut) -> str:
    if row.result == "WAITING_RETRY":
        return f"retry {row.attempt + 1} at {row.next_retry_at}: {row.last_error}"
    return row.error or ""


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: dict[str, Any]
    attributes: dict[str, str]


def peek_dead_letters(stack: Stack, queue_output: str = "WorkDLQUrl") -> list[DeadLetter]:
    """Read a whole DLQ without consuming it: each message is hidden while the queue is paged
    through (so every receive returns new ones), then made visible again at once."""
    sqs = stack.client("sqs")
    url = stack.outputs[queue_output]
    seen: dict[str, DeadLetter] = {}
    handles: list[str] = []
    try:
        while True:
            response = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            new = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not new:
                break
            for message in new:
                handles.append(message["ReceiptHandle"])
                seen[message["MessageId"]] = _dead_letter(message)
    finally:
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for n, handle in enumerate(handles[start : start + 10])
                ],
            )
    return list(seen.values())


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = {"raw": message["Body"][:200]}
    attributes = {
        name: value.get("StringValue", "")
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return DeadLetter(message["MessageId"], body, attributes)


def dead_letter_table(letters: list[DeadLetter]) -> Table:
    table = Table(title=f"work DLQ · {len(letters)} message(s)")
    for column in ("client", "record", "run", "attempts", "reason"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            str(letter.body.get("client_id", "-")),
            str(letter.body.get("record_id", letter.body.get("kind", "-"))),
            str(letter.body.get("run_id", "-")),
            letter.attributes.get("attempts", "-"),
            letter.attributes.get("reason", "-"),
        )
    return table
