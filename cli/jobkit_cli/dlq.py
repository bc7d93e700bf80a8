"""`jobkit dlq`: list, show and redrive dead letters, filtered by run, client or message id.

Redrive receives, sends to the work queue and only then deletes (MiniStack has no
StartMessageMoveTask, and this works the same on AWS). A redriven item is idempotent
downstream: processed once, and its run's counts move from failed to its new outcome.
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from jobkit_cli.runs_view import DeadLetter, console, peek_dead_letters
from jobkit_cli.stack import Stack

dlq_app = typer.Typer(help="Dead letters: list, show, redrive.", no_args_is_help=True)

RunOption = Annotated[str | None, typer.Option("--run", help="Only this run.")]
ClientOption = Annotated[str | None, typer.Option("--client", help="Only this client.")]
MessageOption = Annotated[str | None, typer.Option("--message-id", help="Only this message.")]


@dataclass(frozen=True)
class Filter:
    run_id: str | None = None
    client_id: str | None = None
    message_id: str | None = None

    def matches(self, message_id: str, body: dict[str, Any]) -> bool:
        return (
            (self.run_id is None or body.get("run_id") == self.run_id)
            and (self.client_id is None or body.get("client_id") == self.client_id)
            and (self.message_id is None or message_id == self.message_id)
        )


def _body(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def redrive(stack: Stack, wanted: Filter) -> int:
    """Move matching dead letters back to their work queue (a backfill's to the backfill
    lane); returns how many moved."""
    sqs = stack.client("sqs")
    dlq, work = stack.outputs["WorkDLQUrl"], stack.outputs["WorkQueueUrl"]
    backfill = stack.outputs.get("BackfillQueueUrl", work)
    seen: set[str] = set()
    keep: list[str] = []
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            body = _body(message["Body"])
            if not wanted.matches(message["MessageId"], body):
                keep.append(message["ReceiptHandle"])
                continue
            group = f"{body.get('job_type', 'unknown')}#{body.get('client_id', 'unknown')}"
            # A backfill's item goes back to its own lane.
            lane = backfill if body.get("replay") else work
            sqs.send_message(QueueUrl=lane, MessageBody=message["Body"], MessageGroupId=group)
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    for handle in keep:  # what did not match goes back as it was
        sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=handle, VisibilityTimeout=0)
    return moved


def _listed(stack: Stack, wanted: Filter) -> list[DeadLetter]:
    return [d for d in peek_dead_letters(stack) if wanted.matches(d.message_id, d.body)]


@dlq_app.command("list")
def list_command(
    run: RunOption = None, client: ClientOption = None, message_id: MessageOption = None
) -> None:
    """Dead letters with their run, client, record and reason (nothing is consumed)."""
    letters = _listed(Stack.current(), Filter(run, client, message_id))
    table = Table(title=f"work DLQ · {len(letters)} message(s)")
    for column in ("message id", "client", "record", "run", "error", "reason"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            letter.message_id,
            str(letter.body.get("client_id", "-")),
            str(letter.body.get("record_id", letter.body.get("kind", "-"))),
            str(letter.body.get("run_id", "-")),
            letter.attributes.get("error_type", "-"),
            letter.attributes.get("reason", "-"),
        )
    console.print(table)


@dlq_app.command("show")
def show_command(message_id: str) -> None:
    """One dead letter in full: its envelope and why it is there."""
    letters = _listed(Stack.current(), Filter(message_id=message_id))
    if not letters:
        console.print(f"[red]no dead letter {message_id!r}")
        raise typer.Exit(1)
    print(
        json.dumps(
            {
                "message_id": message_id,
                "attributes": letters[0].attributes,
                "envelope": letters[0].body,
            },
            indent=2,
        )
    )


@dlq_app.command("redrive")
def redrive_command(
    run: RunOption = None,
    client: ClientOption = None,
    message_id: MessageOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Put dead letters back on the work queue, after their cause is fixed."""
    wanted = Filter(run, client, message_id)
    if wanted == Filter() and not all_:
        console.print("[red]say which: --run, --client, --message-id, or --all")
        raise typer.Exit(2)
    moved = redrive(Stack.current(), wanted)
    console.print(f"redrove {moved} message(s) to the work queue")
