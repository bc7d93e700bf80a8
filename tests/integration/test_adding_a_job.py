"""docs/adding-a-job.md's walk, taken as written: scaffold a job type, write its rules (the
module the page shows), deploy it, seed a client, preview the rules, run them, and find the
run's totals, the acknowledgements and the dead letter the preview foretold.

The commands run as a user runs them: the `jobkit` CLI, in a copy of the checkout. The copy
is deployed as its own stack beside the session's (`make up` in the copy would start a
second local stack; `localstack.deploy` is the deploy step `make up` takes).
"""

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobkit.adapters.records import STATE, record_pk
from jobkit_cli import localstack
from jobkit_cli.api_client import ApiClient
from jobkit_cli.runs_view import run_store
from jobkit_cli.stack import Stack, load_local_state
from tests.integration.conftest import acks, wait_for_run, wait_until
from tests.support import ROOT, copy_project

pytestmark = pytest.mark.integration
JOB = "sync-invoices"
STACK = "jobkit-walk"
RECORDS = 20


def walk_module() -> str:
    """The job module docs/adding-a-job.md shows in its step 2."""
    page = (ROOT / "docs" / "adding-a-job.md").read_text()
    found = re.search(r"<!-- walk:module -->\n```python\n(.*?)\n```", page, re.DOTALL)
    assert found, "docs/adding-a-job.md has no walk:module block"
    return found.group(1) + "\n"


class Checkout:
    """The `jobkit` command inside a copy of the checkout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "COLUMNS": "250", "JOBKIT_TARGET": "local"}

    def jobkit(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).parent / "jobkit"), *args]
        done = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        if ok:
            assert done.returncode == 0, f"jobkit {' '.join(args)}: {done.stdout}{done.stderr}"
        return done


@pytest.fixture
def checkout(stack: Stack, tmp_path: Path) -> Iterator[Checkout]:
    """A copy of the checkout whose local stack is the session's, under another stack name;
    the stack is deleted afterwards, so its pollers load no later test."""
    copy_project(tmp_path)
    state = load_local_state()
    assert state is not None
    (tmp_path / ".jobkit").mkdir(exist_ok=True)
    copied = state.model_copy(update={"stack_name": STACK})
    (tmp_path / ".jobkit" / "local.json").write_text(copied.model_dump_json())
    yield Checkout(tmp_path)
    cloudformation = stack.client("cloudformation")
    cloudformation.delete_stack(StackName=STACK)

    def deleted() -> bool:
        try:
            [described] = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
        except cloudformation.exceptions.ClientError:
            return True
        return str(described["StackStatus"]) == "DELETE_COMPLETE"

    wait_until(deleted, timeout=180, what=f"the stack {STACK} to be deleted")


def test_the_walk_from_scaffold_to_a_green_run(
    stack: Stack, checkout: Checkout, external: httpx.Client
) -> None:
    # 1. Scaffold: the generated job's own test passes as generated
    scaffolded = checkout.jobkit("new", JOB)
    assert "wrote functions/jobs/sync_invoices.py" in scaffolded.stdout
    generated_test = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["tests/unit/test_job_sync_invoices.py"],
        cwd=checkout.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert generated_test.returncode == 0, generated_test.stdout[-2000:]
    # 2. The rules, as the page writes them; 3. deployed
    (checkout.root / "functions" / "jobs" / "sync_invoices.py").write_text(walk_module())
    state = load_local_state()
    assert state is not None
    localstack.deploy(state, root=checkout.root, stack_name=STACK)
    deployed = Stack(STACK, stack.region, stack.endpoint_url, stack.external_url)
    # 4. Seed a client: 20 records, 1 malformed; the rules skip every tenth
    client = f"acme-{uuid.uuid4().hex[:6]}"
    seeded = checkout.jobkit("seed", JOB, client, "--records", str(RECORDS), "--poison", "1")
    poison = f"{client}-r00001"
    assert f"1 malformed: {poison}" in seeded.stdout
    assert "platform records: 17 APPROVED" in seeded.stdout
    # 5. Preview: one row per record, as the rules say, and nothing written
    created = checkout.jobkit("keys", "create", "--name", "walk", "--scope", "trigger")
    checkout.env["JOBKIT_API_KEY"] = created.stdout.strip().splitlines()[-1]
    shown = checkout.jobkit("try", JOB, "--client", client, "--limit", "12")
    assert "APPROVED -> INVOICED" in shown.stdout and "nothing to invoice" in shown.stdout
    preview = ApiClient(deployed, checkout.env["JOBKIT_API_KEY"]).preview(JOB, client, 100)
    expected: dict[str, tuple[str, str | None, bool]] = {poison: ("error", None, False)}
    for n in range(2, RECORDS + 1):
        reason = "nothing to invoice" if n % 10 == 0 else f"invoiced {100 * n} EUR"
        expected[f"{client}-r{n:05d}"] = ("skip" if n % 10 == 0 else "transition", reason, True)
    assert {
        row.record_id: (
            row.decision,
            None if row.decision == "error" else row.reason,
            row.acknowledged,
        )
        for row in preview.records
    } == expected
    assert "version: Input should be a valid integer" in preview.records[0].reason
    records = deployed.table("RecordsTableName")
    state_of = {"pk": record_pk(client, f"{client}-r00002"), "sk": STATE}
    assert records.get_item(Key=state_of)["Item"]["status"] == "APPROVED"
    assert acks(external, client) == 0
    # 6. Run: what the preview said, the run did
    ran = checkout.jobkit("run", JOB, "--client", client, "--wait")
    run_id = re.search(r"run (\S+) accepted", ran.stdout).group(1)  # type: ignore[union-attr]
    header = wait_for_run(run_store(deployed), run_id).header
    totals = (header.received, header.processed, header.skipped, header.dead_lettered)
    assert totals == (RECORDS, 17, 2, 1)
    assert acks(external, client) == header.processed + header.skipped
    assert records.get_item(Key=state_of)["Item"]["status"] == "INVOICED"
    # 7. The dead letter, with its reason
    dead = checkout.jobkit("dlq", "list")
    assert poison in dead.stdout and "InvalidPayloadError" in dead.stdout


def test_a_preview_of_a_client_whose_endpoint_is_down_is_the_http_error(
    stack: Stack, external: httpx.Client
) -> None:
    # Given a client of the deployed stack's change feed, seeded with its endpoint failing
    checkout = Checkout(ROOT)
    client = f"down-{uuid.uuid4().hex[:6]}"
    seeded = checkout.jobkit("seed", "sync-contacts", client, "--records", "3", "--faults", "5xx=1")
    assert "platform records: none" in seeded.stdout  # the rules create contacts (NEW)
    created = checkout.jobkit("keys", "create", "--name", "down", "--scope", "trigger")
    checkout.env["JOBKIT_API_KEY"] = created.stdout.strip().splitlines()[-1]
    # When its rules are previewed
    shown = checkout.jobkit("try", "sync-contacts", "--client", client, ok=False)
    # Then the answer is the external error, and nothing was written
    assert shown.returncode == 1
    assert "HTTP 502" in shown.stdout and "HTTP 503" in shown.stdout
    written = stack.table("RecordsTableName").get_item(
        Key={"pk": record_pk(client, f"{client}-c00001"), "sk": STATE}
    )
    assert "Item" not in written
    # And once the endpoint is back, every contact is one the rules would create
    external.put("/_admin/faults", json={}).raise_for_status()
    shown = checkout.jobkit("try", "sync-contacts", "--client", client)
    assert shown.stdout.count("NEW -> SYNCED") == 3
    # An unknown client is named
    missing = checkout.jobkit("try", "sync-contacts", "--client", "nobody-here", ok=False)
    assert "client nobody-here is not configured for job sync-contacts" in missing.stdout
