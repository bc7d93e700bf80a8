"""`jobkit demo`: the main job, end to end, on the local stack, checked as it goes.

3 clients x 200 records, one poison record, 5% transient 5xx on the external system; the job
is fired the way its schedule fires it; exits non-zero unless every run's totals close and the
external system saw exactly one acknowledgement per processed record.
"""

from datetime import UTC, datetime

from rich.panel import Panel

from jobkit.api.models import RunOut
from jobkit.runs.models import RunView
from jobkit_cli import localstack
from jobkit_cli.runs_view import (
    client_table,
    console,
    dead_letter_table,
    peek_dead_letters,
    watch,
)
from jobkit_cli.seed import external_admin, reset_data, seed_client
from jobkit_cli.stack import Stack

JOB_TYPE = "sync-completed-records"
CLIENTS = (("acme", "north"), ("globex", "south"), ("initech", "east"))
RECORDS_PER_CLIENT = 200
POISON = "globex-r00042"


def run_demo() -> bool:
    console.rule("jobkit demo")
    with console.status("bringing the local stack up (MiniStack, external system, sam deploy)"):
        localstack.up()
    stack = Stack.current()
    reset_data(stack)
    with external_admin(stack) as admin:
        admin.put("/_admin/faults", json={"seed": 7, "error_rate": 0.05}).raise_for_status()
    for client_id, group_id in CLIENTS:
        seed_client(
            stack,
            job_type=JOB_TYPE,
            client_id=client_id,
            group_id=group_id,
            records=RECORDS_PER_CLIENT,
            poison=[POISON] if POISON.startswith(client_id) else [],
            credentials=True,
        )
    console.print(
        f"seeded {len(CLIENTS)} clients x {RECORDS_PER_CLIENT} records, poison record "
        f"{POISON}, 5% transient 5xx on the external system; each client calls with its "
        "own bearer token, read from Secrets Manager"
    )

    scheduled = datetime.now(UTC).replace(second=0, microsecond=0)
    planned = stack.invoke(
        stack.planners[JOB_TYPE],
        {
            "trigger": "schedule",
            "scheduled_time": scheduled.isoformat(),
        },
    )
    run_id = planned["run_id"]
    console.print(f"fired {JOB_TYPE} for {scheduled.isoformat()} -> run {run_id}")
    view = watch(stack, run_id)

    with external_admin(stack) as admin:
        acks_body = admin.get("/_admin/acks").json()["clients"]
    acks = {client: int(info["acked"]) for client, info in acks_body.items()}
    console.print(client_table(RunOut.of(view), acks))
    letters = peek_dead_letters(stack)
    console.print(dead_letter_table(letters))
    return _verdict(view, acks, len(letters))


def _verdict(view: RunView, acks: dict[str, int], dead_letters: int) -> bool:
    problems = []
    totals = view.live_totals
    if totals["processed"] + totals["skipped"] + totals["failed"] != totals["received"]:
        problems.append(f"run totals do not close: {totals}")
    for row in view.clients:
        if row.processed + row.skipped + row.failed != row.received:
            problems.append(f"client {row.client_id}: totals do not close")
        if acks.get(row.client_id, 0) != row.processed:
            problems.append(
                f"client {row.client_id}: {acks.get(row.client_id, 0)} acks for "
                f"{row.processed} processed records"
            )
    if dead_letters != totals["dead_lettered"]:
        problems.append(f"{dead_letters} dead letters, run counted {totals['dead_lettered']}")
    if problems:
        console.print(Panel("\n".join(problems), title="demo FAILED", style="red"))
        return False
    console.print(
        Panel(
            f"run {view.header.run_id} closed as {view.header.status.value}: "
            f"{totals['received']} received = {totals['processed']} processed + "
            f"{totals['skipped']} skipped + {totals['failed']} dead-lettered; "
            f"acks equal processed records for every client",
            title="demo OK",
            style="green",
        )
    )
    return True
