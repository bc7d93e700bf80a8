"""`jobkit backfill`: re-run clients over a window of time through the API, or count first."""

from typing import Annotated

import typer
from rich.table import Table

from jobkit.api.models import BackfillDryRunOut
from jobkit_cli.api_client import ApiClient, ApiError
from jobkit_cli.runs_view import client_table, console, follow
from jobkit_cli.stack import Stack


def dry_run_table(answer: BackfillDryRunOut) -> Table:
    table = Table(
        title=f"dry run · {answer.job_type} · {answer.mode}"
        f" · {answer.window_from.isoformat()} → {answer.window_to.isoformat()}"
    )
    for column in ("client", "in window", "already processed", "would process", "note"):
        table.add_column(column, justify="left" if column in ("client", "note") else "right")
    for row in answer.clients:
        note = row.error or ("" if row.complete else "window not read to its end")
        table.add_row(
            row.client_id,
            str(row.in_window),
            str(row.already_processed),
            str(row.would_process),
            note,
        )
    return table


def backfill(
    job_type: str,
    client: Annotated[list[str], typer.Option(help="A client to re-run (repeat for more).")],
    # Passed as given: the API parses them and names the one it refuses.
    window_from: Annotated[str, typer.Option("--from", help="Window start, ISO 8601 with a zone.")],
    window_to: Annotated[str, typer.Option("--to", help="Window end, ISO 8601 with a zone.")],
    mode: Annotated[
        str, typer.Option(help="missing: only versions never processed; all: every record.")
    ] = "missing",
    dry_run: Annotated[bool, typer.Option(help="Count, per client; write nothing.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = False,
    request_id: Annotated[
        str | None, typer.Option(help="The same id is the same backfill: sent twice, it runs once.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="API key (default: $JOBKIT_API_KEY).")] = None,
) -> None:
    """Re-run JOB_TYPE's clients over a window, on the backfill lane; --dry-run counts first."""
    api = ApiClient(Stack.current(), key)
    try:
        answer = api.backfill(
            job_type,
            client,
            window_from,
            window_to,
            mode=mode,
            dry_run=dry_run,
            request_id=request_id,
        )
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    if isinstance(answer, BackfillDryRunOut):
        console.print(dry_run_table(answer))
        return
    console.print(f"backfill {answer.run_id} accepted ({answer.status})")
    if wait:
        console.print(client_table(follow(answer.run_id, lambda: api.run(answer.run_id))))
