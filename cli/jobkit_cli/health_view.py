"""`jobkit health`: the job-health page's picture, as rich tables in the terminal."""

from rich.table import Table
from rich.text import Text

from jobkit.adapters.config_store import ConfigStore
from jobkit.api.visibility import EveryClient
from jobkit.ops.health_page import (
    DEFAULT_CLIENTS,
    ClientHealthOut,
    ClientsShown,
    HealthOut,
    JobHealthOut,
    build_health,
)
from jobkit.runs.client_health import RATIO_THRESHOLD, STREAK_THRESHOLD
from jobkit_cli.runs_view import run_store
from jobkit_cli.stack import Stack

COLOURS = {
    "SUCCEEDED": "green",
    "COMPLETED_WITH_ERRORS": "yellow",
    "FAILED": "red",
    "INVALID_CONFIG": "red",
    "RUNNING": "blue",
    "PLANNING": "blue",
    "WAITING_RETRY": "magenta",
    "CANCELLED": "dim",
}


def load_health(stack: Stack, limit: int = DEFAULT_CLIENTS, client_prefix: str = "") -> HealthOut:
    depth = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["WorkDLQUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    return build_health(
        {job: "" for job in stack.planners},
        ConfigStore(stack.table("ConfigTableName")),
        EveryClient(run_store(stack)),
        int(depth),
        limit=limit,
        shown=ClientsShown(prefix=client_prefix),
    )


def health_tables(
    stack: Stack, limit: int = DEFAULT_CLIENTS, client_prefix: str = ""
) -> list[Table]:
    report = load_health(stack, limit, client_prefix)
    return [_job_table(job, report.dlq_depth) for job in report.jobs]


def _job_table(job: JobHealthOut, dlq_depth: int | None) -> Table:
    title = f"{job.job_type} · {job.health} · DLQ depth {dlq_depth}"
    if job.open_run:
        counts = job.open_run.counts
        done = counts.processed + counts.skipped + counts.failed
        title += f" · run {job.open_run.run_id} open: {done}/{counts.received}"
    table = Table(
        title=title,
        caption=(
            f"{len(job.clients)} of {job.clients_total} client(s),"
            f" {job.clients_needing_attention} needing attention (listed first),"
            f" {job.clients_stale} stale"
        ),
    )
    columns = ("client", "recent runs (newest first)", "streak", "processed/received")
    for column in (*columns, "last success", "note"):
        table.add_column(column)
    for client in job.clients:
        table.add_row(*_client_cells(client))
    return table


def _client_cells(client: ClientHealthOut) -> tuple[str, Text, Text, Text, Text, str]:
    recent = Text()
    for result in client.recent or ["-"]:
        recent.append("■ ", style=COLOURS.get(result, "dim"))
    streak = Text(str(client.streak), style="bold red" if client.streak >= STREAK_THRESHOLD else "")
    low = client.ratio is not None and client.ratio < RATIO_THRESHOLD
    ratio = Text(
        "-" if client.ratio is None else f"{client.ratio:.1f}%", style="bold red" if low else ""
    )
    return client.client_id, recent, streak, ratio, _last_success(client), _note(client)


def _last_success(client: ClientHealthOut) -> Text:
    """Its age since the last clean run: minutes, hours or days, and stale in red."""
    minutes = client.age_minutes
    if minutes is None:
        since = "never"
    elif minutes < 120:
        since = f"{minutes} min ago"
    elif minutes < 2880:
        since = f"{minutes // 60} h ago"
    else:
        since = f"{minutes // 1440} d ago"
    if client.stale:
        return Text(f"{since} · stale", style="bold red")
    return Text(since)


def _note(client: ClientHealthOut) -> str:
    if client.problem:
        return client.problem
    if not client.enabled:
        return "disabled"
    return "pilot" if client.pilot else ""
