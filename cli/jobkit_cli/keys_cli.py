"""`jobkit keys`: create (the key is printed once), list, revoke. Needs AWS access, not a key."""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from jobkit.adapters.keys import KeyStore, Scope
from jobkit_cli.runs_view import console
from jobkit_cli.stack import Stack

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


def _store() -> KeyStore:
    return KeyStore(Stack.current().table("KeysTableName"))


def parse_expiry(value: str | None, now: datetime | None = None) -> datetime | None:
    """'30d', '12h', '90m' from now, or an ISO-8601 instant; None means no expiry."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    if match := re.fullmatch(r"(\d+)([dhm])", value):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
        return now + timedelta(**{unit: int(match[1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: use 30d, 12h, 90m or an ISO-8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    scope: Annotated[list[Scope], typer.Option(help="read, trigger or admin; repeatable.")],
    job: Annotated[list[str] | None, typer.Option(help="Limit to these job types.")] = None,
    client: Annotated[
        list[str] | None, typer.Option(help="Limit to these clients: every read and action.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="30d, 12h, 90m or an ISO time.")] = None,
) -> None:
    """Create a key. It is shown once, here, and stored only as a hash."""
    key, plaintext = _store().create(
        name,
        set(scope),
        job_types=set(job or ()),
        clients=set(client or ()),
        expires_at=parse_expiry(expires),
    )
    console.print(
        f"key {key.key_id} ({', '.join(sorted(key.scopes))}) created; it is shown "
        "once, store it now:"
    )
    print(plaintext)


@keys_app.command("list")
def list_keys() -> None:
    """Every key: id, name, scopes, limits, expiry and revocation (never the key)."""
    table = Table(title="API keys")
    for column in ("id", "name", "scopes", "jobs", "clients", "expires", "state"):
        table.add_column(column)
    now = datetime.now(UTC)
    for key in _store().list():
        state = "revoked" if key.revoked_at else ("expired" if not key.is_usable(now) else "ok")
        table.add_row(
            key.key_id,
            key.name,
            ",".join(sorted(key.scopes)),
            ",".join(sorted(key.job_types)) or "*",
            ",".join(sorted(key.clients)) or "*",
            key.expires_at.isoformat(timespec="minutes") if key.expires_at else "never",
            state,
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key; cached authorizations end within a minute."""
    if not _store().revoke(key_id):
        console.print(f"[red]no key {key_id!r}")
        raise typer.Exit(1)
    console.print(f"key {key_id} revoked")
