"""sync-contacts on the real stack: change feed over HTTP, cursor on the config row."""

import uuid

import httpx
import pytest

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.runs.queries import RunQueries
from jobkit_cli.stack import Stack
from tests.integration.conftest import wait_for_run

pytestmark = pytest.mark.integration
CONTACTS = "sync-contacts"


def _run(stack: Stack, runs: RunQueries, client: str) -> tuple[int, int, int]:
    planned = stack.invoke(stack.planners[CONTACTS], {"trigger": "cli", "client_ids": [client]})
    header = wait_for_run(runs, planned["run_id"]).header
    return header.received, header.processed, header.skipped


def test_contacts_sync_resumes_and_processes_only_what_changed(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
) -> None:
    client = f"contacts-{uuid.uuid4().hex[:8]}"
    external.post(f"/_admin/clients/{client}/contacts", json={"count": 30}).raise_for_status()
    configs = ConfigStore(stack.table("ConfigTableName"))
    configs.put(ClientConfig(job_type=CONTACTS, client_id=client, group_id="north", page_size=10))
    assert _run(stack, runs, client) == (30, 30, 0)
    assert configs.get(CONTACTS, client).cursor == "30"
    # A second run after no changes has nothing to fetch
    assert _run(stack, runs, client) == (0, 0, 0)
    # A change to 3 contacts processes exactly those 3; 2 resent unchanged are skipped
    for n in (4, 17, 29):
        external.post(f"/_admin/clients/{client}/contacts/{client}-c{n:05d}/touch")
    for n in (8, 9):
        external.post(f"/_admin/clients/{client}/contacts/{client}-c{n:05d}/resend")
    assert _run(stack, runs, client) == (5, 3, 2)
