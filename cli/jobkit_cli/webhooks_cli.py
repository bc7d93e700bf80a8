"""`jobkit webhooks`: subscriptions (the signing secret is shown once) and the delivery log."""

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from jobkit.webhooks.subscriptions import EVENT_TYPES, DeliveryLog, SubscriptionStore
from jobkit_cli.runs_view import console
from jobkit_cli.stack import Stack

webhooks_app = typer.Typer(help="Webhook subscriptions and deliveries.", no_args_is_help=True)


def _store(stack: Stack) -> SubscriptionStore:
    return SubscriptionStore(
        stack.table("SubscriptionsTableName"),
        stack.client("secretsmanager"),
        stack.outputs["WebhookSecretPrefix"],
    )


@webhooks_app.command("add")
def add(
    client_id: str,
    url: str,
    event: Annotated[list[str], typer.Option(help="Event type; repeatable.")] = [  # noqa: B006
        "record.status_changed"
    ],
    rate: Annotated[float, typer.Option(help="Requests per second to this endpoint.")] = 5.0,
) -> None:
    """Subscribe an endpoint; prints the signing secret once."""
    stack = Stack.current()
    try:
        subscription, secret = _store(stack).add(
            client_id, url, set(event), allow_loopback_http=stack.is_local, rate_per_second=rate
        )
    except ValueError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    console.print(
        f"subscription {subscription.subscription_id} for {client_id} -> {url}; "
        "signing secret (shown once, store it now):"
    )
    print(secret)


@webhooks_app.command("list")
def list_command(client_id: Annotated[str | None, typer.Option("--client")] = None) -> None:
    """Subscriptions, with their state (never their secret)."""
    store = _store(Stack.current())
    found = store.for_client(client_id) if client_id else store.all()
    table = Table(title=f"webhook subscriptions · events: {', '.join(sorted(EVENT_TYPES))}")
    for column in ("client", "id", "url", "events", "rate/s", "state"):
        table.add_column(column)
    for sub in found:
        state = "enabled" if sub.enabled else f"disabled: {sub.disabled_reason or '-'}"
        table.add_row(
            sub.client_id,
            sub.subscription_id,
            sub.url,
            ",".join(sorted(sub.event_types)),
            f"{sub.rate_per_second:g}",
            state,
        )
    console.print(table)


def parse_grace(text: str) -> timedelta:
    """``24h``, ``90m``, ``30s``, ``2d``: how long the secrets signing now go on signing."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    amount, unit = text[:-1], text[-1:]
    if unit not in units or not amount.isdigit():
        raise typer.BadParameter("a number and a unit: 30s, 90m, 24h, 2d")
    return timedelta(seconds=int(amount) * units[unit])


@webhooks_app.command("rotate-secret")
def rotate_secret(
    client_id: str,
    subscription_id: str,
    grace: Annotated[
        str, typer.Option(help="How long the current secret keeps signing beside the new one.")
    ] = "24h",
) -> None:
    """Issue a new signing secret; prints it once. Deliveries carry both signatures during
    the grace period, then only the new one."""
    rotated = _store(Stack.current()).rotate_secret(client_id, subscription_id, parse_grace(grace))
    if rotated is None:
        console.print(f"[red]no subscription {subscription_id!r} for {client_id!r}")
        raise typer.Exit(1)
    _, keys = rotated
    for key in keys.keys:
        until = key.retires_at.isoformat() if key.retires_at else "no end"
        console.print(f"secret version {key.version} signs until {until}")
    console.print(f"new signing secret, version {keys.newest.version} (shown once, store it now):")
    print(keys.newest.secret)


@webhooks_app.command("remove")
def remove(client_id: str, subscription_id: str) -> None:
    """Remove a subscription and its secret."""
    if not _store(Stack.current()).remove(client_id, subscription_id):
        console.print(f"[red]no subscription {subscription_id!r} for {client_id!r}")
        raise typer.Exit(1)
    console.print(f"subscription {subscription_id} removed")


@webhooks_app.command("deliveries")
def deliveries(client_id: str, limit: int = 50) -> None:
    """A client's recent deliveries: attempts, last status, latency, outcome."""
    rows = DeliveryLog(Stack.current().table("DeliveriesTableName")).for_client(client_id, limit)
    table = Table(title=f"webhook deliveries of {client_id}")
    for column in (
        "delivery",
        "event",
        "status",
        "attempts",
        "signed by",
        "last HTTP",
        "latency ms",
        "updated",
        "error",
    ):
        table.add_column(column)
    for row in rows:
        http = int(row.get("last_http_status", -1))
        table.add_row(
            str(row["delivery_id"]),
            str(row.get("event_id", "")),
            str(row.get("status", "")),
            str(row.get("attempts", 0)),
            ",".join(f"v{version}" for version in row.get("signed_with", [])) or "-",
            "-" if http < 0 else str(http),
            str(row.get("latency_ms", "")),
            str(row.get("updated_at", "")),
            str(row.get("last_error", "")),
        )
    console.print(table)
