"""`jobkit seed JOB CLIENT`: a client of a job type on the local stack, records on both sides."""

from typing import Annotated

import httpx
import typer

from jobkit.adapters.config import ClientConfig
from jobkit.domain.errors import JobkitError, JobModuleError
from jobkit_cli.job_modules import job
from jobkit_cli.job_seed import parse_faults, seed_job_client
from jobkit_cli.runs_view import console
from jobkit_cli.stack import Stack


def seed(
    job_type: str,
    client_id: str,
    records: Annotated[int, typer.Option(min=0, max=99_999, help="Records to seed.")] = 20,
    poison: Annotated[
        int, typer.Option(min=0, help="Of those, how many are served malformed.")
    ] = 0,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Faults for this client: 5xx, timeout, 429, ack-5xx (rates), latency-ms."
        ),
    ] = None,
    group: Annotated[str, typer.Option(help="The client's group in the external system.")] = "main",
) -> None:
    """Local stack only: give CLIENT_ID records of JOB_TYPE on the fake external system
    (shaped as the job declares), the platform records its rules expect, and a config row."""
    try:
        declared = job(job_type)
    except (LookupError, JobModuleError) as exc:
        console.print(f"[red]jobkit seed: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    try:
        client = ClientConfig(
            job_type=job_type, client_id=client_id, group_id=group, created_by="cli:seed"
        )
        seeded = seed_job_client(
            Stack.current(), declared, client, records, poison, parse_faults(faults)
        )
    except ValueError as exc:
        console.print(f"[red]jobkit seed: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    except JobkitError as exc:
        # The job's own fetch, reading the seeded records back.
        console.print(f"[red]jobkit seed: reading the records back: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    except httpx.HTTPStatusError as exc:
        answer = exc.response
        console.print(
            f"[red]jobkit seed: the fake external system refused {answer.request.method}"
            f" {answer.request.url.path}: HTTP {answer.status_code}: {answer.text[:300]}",
            highlight=False,
        )
        raise typer.Exit(1) from exc
    console.print(
        f"client {client_id} of {job_type}: {seeded.records} records on the fake external system"
        + (
            f" ({len(seeded.poison)} malformed: {', '.join(seeded.poison)})"
            if seeded.poison
            else ""
        ),
        highlight=False,
    )
    platform = ", ".join(f"{count} {status}" for status, count in seeded.platform.items())
    console.print(
        f"platform records: {platform or 'none (the rules create them, or expect none)'}",
        highlight=False,
    )
    console.print(f"config row: saved (group {group})", highlight=False)
    if seeded.faults:
        listed = ", ".join(f"{name}={value:g}" for name, value in seeded.faults.items())
        console.print(f"faults for {client_id}: {listed}", highlight=False)
    console.print(f"next: jobkit try {job_type} --client {client_id}", highlight=False)
