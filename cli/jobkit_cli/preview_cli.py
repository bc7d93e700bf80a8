"""`jobkit try JOB --client C`: what the job's rules decide for each record of the client's
next page, through the API (`POST /jobs/{type}/preview`): it writes nothing, on AWS too."""

from typing import Annotated

import typer
from rich.table import Table

from jobkit.api.models import PreviewOut
from jobkit_cli.api_client import ApiClient, ApiError
from jobkit_cli.runs_view import console
from jobkit_cli.stack import Stack

_STYLES = {"transition": "green", "skip": "yellow", "error": "red"}


def preview_table(preview: PreviewOut) -> Table:
    table = Table(title=f"{preview.job_type} rules on {preview.client_id}'s next page")
    for column in ("record", "decision", "from -> to", "reason", "ack"):
        table.add_column(column, overflow="fold")
    for row in preview.records:
        moves = f"{row.from_status or '-'} -> {row.to_status}" if row.to_status else ""
        table.add_row(
            row.record_id,
            f"[{_STYLES.get(row.decision, 'white')}]{row.decision}",
            moves,
            row.reason,
            "yes" if row.acknowledged else "no",
        )
    if preview.more:
        table.caption = "more records follow: --limit shows up to 100"
    return table


def try_rules(
    job_type: str,
    client: Annotated[str, typer.Option("--client", help="The client whose records to read.")],
    limit: Annotated[int, typer.Option(min=1, max=100, help="Records shown, at most.")] = 20,
    key: Annotated[
        str | None,
        typer.Option("--key", help="API key (default: $JOBKIT_API_KEY).", show_default=False),
    ] = None,
) -> None:
    """Preview JOB_TYPE's rules on CLIENT's next page: the transition, skip or error of each
    record, and whether a run would acknowledge it. Nothing is written or acknowledged."""
    try:
        preview = ApiClient(Stack.current(), key).preview(job_type, client, limit)
    except ApiError as exc:
        console.print(f"[red]jobkit try: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(preview_table(preview))
