"""`jobkit credentials …` and `jobkit probe`: a client's credential and its endpoint's health."""

from typing import Annotated

import typer
from rich.table import Table

from jobkit.adapters.credentials import ExternalCredential, secret_name
from jobkit_cli.runs_view import console
from jobkit_cli.stack import Stack

credentials_app = typer.Typer(
    help="Client credentials for the external system (Secrets Manager).", no_args_is_help=True
)


@credentials_app.command("set")
def credentials_set(
    client_id: str,
    route: str = "/v1",
    token: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="Prompted for when not given.")
    ] = "",
) -> None:
    """Store the client's bearer token (created or replaced); never printed."""
    try:
        credential = ExternalCredential(client_id=client_id, token=token, route=route)
    except ValueError as exc:
        # Field names only: the message must not echo the token.
        console.print("[red]invalid credential: the token must be 16 to 256 characters")
        raise typer.Exit(2) from exc
    stack = Stack.current()
    name = secret_name(stack.outputs["CredentialsSecretPrefix"], client_id)
    client = stack.client("secretsmanager")
    try:
        client.create_secret(Name=name, SecretString=credential.model_dump_json())
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=credential.model_dump_json())
    console.print(f"credential of {client_id} stored in {name}")
    console.print("set `credentials: true` on the client's config rows to use it")


@credentials_app.command("rotate")
def credentials_rotate(client_ids: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Rotate now (every client's credential, or the ones named): create, set, test, finish."""
    stack = Stack.current()
    payload = {"client_ids": client_ids} if client_ids else {}
    result = stack.invoke(stack.outputs["CredentialRotationName"], payload)
    for client_id in result.get("rotated", []):
        console.print(f"[green]{client_id}: rotated")
    for client_id, reason in result.get("failed", {}).items():
        console.print(f"[red]{client_id}: not rotated, the old credential stays current: {reason}")
    if result.get("failed"):
        raise typer.Exit(1)


def probe(client_ids: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Probe client endpoints now (every enabled client, or the ones named), through their
    circuits: status, latency and circuit state."""
    stack = Stack.current()
    payload = {"client_ids": client_ids} if client_ids else {}
    result = stack.invoke(stack.outputs["HealthProbeName"], payload)
    table = Table("client", "status", "latency ms", "circuit", "error")
    colours = {"up": "green", "down": "red", "circuit_open": "yellow"}
    for row in result["probes"]:
        status = row["status"]
        table.add_row(
            row["client_id"],
            f"[{colours[status]}]{status}",
            "" if row.get("latency_ms") is None else f"{row['latency_ms']:.1f}",
            row["circuit"],
            row.get("error") or "",
        )
    console.print(table)
