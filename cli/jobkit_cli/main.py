"""The `jobkit` command."""

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from jobkit.adapters.config import DEFAULT_FREQUENCY_MINUTES, ClientConfig, InvalidClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.api.models import RunOut
from jobkit.ops.health_page import DEFAULT_CLIENTS
from jobkit_cli import localstack
from jobkit_cli.api_client import ApiClient, ApiError, api_url
from jobkit_cli.backfill_cli import backfill
from jobkit_cli.dlq import dlq_app
from jobkit_cli.endpoints_cli import credentials_app, probe
from jobkit_cli.keys_cli import keys_app
from jobkit_cli.preview_cli import try_rules
from jobkit_cli.runs_view import (
    client_table,
    console,
    follow,
    run_store,
    watch,
)
from jobkit_cli.seed_cli import seed
from jobkit_cli.stack import Stack
from jobkit_cli.webhooks_cli import webhooks_app

app = typer.Typer(help="jobkit: integration jobs on AWS Lambda.", no_args_is_help=True)
clients_app = typer.Typer(help="Clients of a job type (one config row each).", no_args_is_help=True)
runs_app = typer.Typer(help="Runs: list, show, watch.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(credentials_app, name="credentials")
app.command()(probe)
app.command()(backfill)
app.command()(seed)
app.command("try")(try_rules)

KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="API key (default: $JOBKIT_API_KEY).", show_default=False),
]


@app.command()
def up() -> None:
    """Start MiniStack and the external system, then sam build + deploy the template there."""
    try:
        state = localstack.up()
    except localstack.LocalStackError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    stack = Stack.current()
    console.print(
        f"local stack up: AWS at {state.endpoint_url}, external system at "
        f"{state.external_url}, stack {stack.name} with {len(stack.outputs)} outputs"
    )


@app.command()
def down() -> None:
    """Stop the local stack (by process id) and forget its state."""
    localstack.stop()
    console.print("local stack stopped")


@app.command()
def demo() -> None:
    """Run the main job end to end on the local stack and check its totals and acks."""
    from jobkit_cli.demo import run_demo

    try:
        ok = run_demo()
    except localstack.LocalStackError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    raise typer.Exit(0 if ok else 1)


@app.command()
def run(
    job_type: str,
    client: Annotated[list[str] | None, typer.Option(help="Only these clients.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Plan and report, enqueue nothing.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = False,
    key: KeyOption = None,
) -> None:
    """Start a run of JOB_TYPE through the API (202 + the run), optionally following it."""
    api = ApiClient(Stack.current(), key)
    try:
        started = api.start_run(job_type, client or None, dry_run)
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    console.print(f"run {started.run_id} accepted ({started.status})")
    if wait:
        console.print(client_table(follow(started.run_id, lambda: api.run(started.run_id))))


@app.command()
def new(
    job_type: str,
    schedule: Annotated[str, typer.Option(help="Its EventBridge schedule.")] = "rate(1 hour)",
) -> None:
    """Scaffold a job type: its module, registration, template block, sample event and test."""
    from jobkit_cli.paths import project_root
    from jobkit_cli.scaffold import ScaffoldError, scaffold

    try:
        touched = scaffold(project_root(), job_type, schedule)
    except ScaffoldError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    for path in touched:
        console.print(f"wrote {path.relative_to(project_root())}")
    console.print(
        f"next: write the rules in {touched[0].relative_to(project_root())}, then `make up`,"
        " `jobkit seed`, `jobkit try` (docs/adding-a-job.md)",
        highlight=False,
    )


@app.command()
def health(
    client: Annotated[str, typer.Option(help="Only clients whose id starts with this.")] = "",
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="Clients listed per job type.")
    ] = DEFAULT_CLIENTS,
) -> None:
    """Job types x clients: recent results, failure streaks, ratios and the DLQ depth.
    Clients needing attention are listed first, longest failure streak first (an invalid
    configuration fails each run it is planned in)."""
    from jobkit_cli.health_view import health_tables

    for table in health_tables(Stack.current(), limit, client):
        console.print(table)


@app.command()
def smoke(job_type: str, client_id: str, key: KeyOption = None) -> None:
    """Check the deployed stack: its status, a dry run of CLIENT_ID through the API, a probe
    of its endpoint, and every alarm's state. One pass/fail line each; exit 1 on a failure."""
    from jobkit_cli.smoke import run_checks

    stack = Stack.current()
    failed = False
    for check in run_checks(stack, ApiClient(stack, key), job_type, client_id):
        mark = "[green]PASS" if check.passed else "[red]FAIL"
        console.print(f"{mark}[/]  {check.name:<8} {check.detail}", highlight=False)
        failed |= not check.passed
    raise typer.Exit(1 if failed else 0)


@app.command("api-url")
def api_url_command() -> None:
    """The runs API's base URL (local stack or AWS)."""
    print(api_url(Stack.current()))


@clients_app.command("add")
def clients_add(
    job_type: str,
    client_id: str,
    group: Annotated[str, typer.Option(help="The client's group in the external system.")],
    route: str = "/v1",
    page_size: int = 50,
    frequency: Annotated[
        int, typer.Option(help="Minutes between scheduled syncs of this client.")
    ] = DEFAULT_FREQUENCY_MINUTES,
    stale_after: Annotated[
        int | None,
        typer.Option(help="Minutes without a clean run before it is stale (3 x frequency)."),
    ] = None,
    days: Annotated[int | None, typer.Option(help="Look-back, for jobs that use it.")] = None,
    year: Annotated[int | None, typer.Option(help="Year, for jobs that use it.")] = None,
    script: Annotated[
        str | None, typer.Option(help="The external query, for jobs that use it.")
    ] = None,
    pilot: bool = False,
    disabled: bool = False,
    credentials: Annotated[
        bool, typer.Option(help="Authenticate with the token `jobkit credentials set` stores.")
    ] = False,
    setting: Annotated[list[str] | None, typer.Option(help="key=value, repeatable")] = None,
) -> None:
    """Add a client of a job type, or replace its configuration (its sync state is kept);
    validated before it is written, a field its job does not use refused."""
    from jobkit.domain.job import unused_fields_error
    from jobkit_cli.job_modules import config_fields

    settings = dict(item.split("=", 1) for item in setting or [] if "=" in item)
    try:
        config = ClientConfig(
            job_type=job_type,
            client_id=client_id,
            group_id=group,
            route=route,
            page_size=page_size,
            frequency_minutes=frequency,
            stale_after_minutes=stale_after,
            days=days,
            year=year,
            script=script,
            pilot=pilot,
            enabled=not disabled,
            settings=settings,
            credentials=credentials,
            created_by="cli",
        )
        refused = unused_fields_error(job_type, config_fields(job_type), config)
    except (ValueError, LookupError) as exc:
        console.print(f"[red]invalid client: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    if refused:
        console.print(f"[red]invalid client: {refused}", highlight=False)
        raise typer.Exit(2)
    ConfigStore(Stack.current().table("ConfigTableName")).put(config)
    console.print(f"client {client_id} of {job_type}: saved")


@clients_app.command("list")
def clients_list(job_type: str) -> None:
    """Every client of a job type, invalid rows included (with their reason)."""
    table = Table(title=f"clients of {job_type}")
    columns = ("client", "group", "enabled", "pilot", "healthy runs", "page size")
    for column in (*columns, "every (min)", "last success", "problem"):
        table.add_column(column)
    for config in ConfigStore(Stack.current().table("ConfigTableName")).clients(job_type):
        if isinstance(config, InvalidClientConfig):
            table.add_row(config.client_id, *["-"] * 7, f"[red]{config.reason}")
        else:
            success = config.last_success_at
            table.add_row(
                config.client_id,
                config.group_id,
                str(config.enabled),
                str(config.pilot),
                str(config.healthy_runs),
                str(config.page_size),
                str(config.frequency_minutes),
                success.isoformat(timespec="minutes") if success else "never",
                "",
            )
    console.print(table)


def _set_enabled(job_type: str, client_id: str, enabled: bool) -> None:
    from jobkit.domain.errors import ConfigNotFoundError

    try:
        ConfigStore(Stack.current().table("ConfigTableName")).set_enabled(
            job_type, client_id, enabled
        )
    except ConfigNotFoundError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    console.print(f"client {client_id} of {job_type}: {'enabled' if enabled else 'disabled'}")


@clients_app.command("enable")
def clients_enable(job_type: str, client_id: str) -> None:
    """Include a client in the next runs."""
    _set_enabled(job_type, client_id, True)


@clients_app.command("disable")
def clients_disable(job_type: str, client_id: str) -> None:
    """Leave a client out of the next runs."""
    _set_enabled(job_type, client_id, False)


@clients_app.command("promote")
def clients_promote(
    job_type: str,
    client_id: str,
    force: Annotated[
        bool, typer.Option(help="Promote without the healthy runs the rollout rule expects.")
    ] = False,
) -> None:
    """End a client's pilot: expects two healthy runs in a row first (the rollout rule)."""
    from jobkit.domain.errors import ConfigNotFoundError, PromotionRefusedError

    try:
        config = ConfigStore(Stack.current().table("ConfigTableName")).promote(
            job_type, client_id, force=force
        )
    except (ConfigNotFoundError, PromotionRefusedError) as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"client {client_id} of {job_type}: promoted from pilot"
        f" ({config.healthy_runs} healthy run(s) in a row{', forced' if force else ''})"
    )


@runs_app.command("list")
def runs_list(job_type: str, limit: int = 20) -> None:
    """The most recent runs of a job type."""
    table = Table(title=f"runs of {job_type}")
    for column in (
        "run",
        "trigger",
        "status",
        "created",
        "clients",
        "received",
        "processed",
        "failed",
    ):
        table.add_column(column)
    for header in run_store(Stack.current()).recent_runs(job_type, limit):
        table.add_row(
            header.run_id,
            header.trigger.value,
            header.status.value,
            header.created_at.isoformat(timespec="seconds"),
            str(header.clients),
            str(header.received),
            str(header.processed),
            str(header.failed),
        )
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A run: status, timings, live totals, issues and one row per client."""
    view = run_store(Stack.current()).view(run_id)
    if view is None:
        console.print(f"[red]no run {run_id!r}")
        raise typer.Exit(1)
    if as_json:
        print(
            json.dumps(
                {
                    "run": view.header.model_dump(mode="json"),
                    "totals": view.live_totals,
                    "clients": [c.model_dump(mode="json") for c in view.clients],
                }
            )
        )
        return
    header = view.header
    console.print(
        f"[bold]{header.run_id}[/] {header.job_type} · {header.status.value} · "
        f"trigger {header.trigger.value} by {header.requested_by}"
    )
    console.print(
        f"created {header.created_at:%Y-%m-%d %H:%M:%S} · "
        f"finished {header.finished_at or '-'} · now {datetime.now(UTC):%H:%M:%S}"
    )
    for issue in header.issues:
        console.print(f"[yellow]issue:[/] {issue}")
    console.print(client_table(RunOut.of(view)))


@runs_app.command("watch")
def runs_watch(run_id: str) -> None:
    """A live progress bar until the run ends."""
    console.print(client_table(RunOut.of(watch(Stack.current(), run_id))))


@runs_app.command("cancel")
def runs_cancel(run_id: str, key: KeyOption = None) -> None:
    """Cancel an open run through the API: its queued items are skipped."""
    try:
        cancelled = ApiClient(Stack.current(), key).cancel(run_id)
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    console.print(f"run {cancelled.run_id}: {cancelled.status}")
