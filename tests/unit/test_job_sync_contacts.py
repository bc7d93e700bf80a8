"""sync-contacts: resumes from its cursor, skips unchanged contacts, loses nothing on a crash."""

from typing import Any

import pytest

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.external import ExternalSystem
from jobkit.runs.models import RunStatus
from jobs import JOBS
from jobs.sync_contacts import JOB
from tests.unit.pipeline import Pipeline

CONTACTS = "sync-contacts"


class ContactsFeed(ExternalSystem):
    """The contacts feed in memory (the HTTP one is tested in tests/unit/external_system)."""

    def __init__(self, client_id: str, count: int) -> None:  # no HTTP client: get is faked
        self.seq = count
        self.contacts = {
            f"{client_id}-c{n:05d}": {
                "id": f"{client_id}-c{n:05d}",
                "client_id": client_id,
                "version": n,
                "name": f"Contact {n}",
                "email": f"c{n}@x.example",
                "phone": f"{n}",
            }
            for n in range(1, count + 1)
        }

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        cursor, limit = int((params or {}).get("cursor") or 0), int((params or {})["limit"])
        changed = sorted(
            (c for c in self.contacts.values() if int(str(c["version"])) > cursor),
            key=lambda c: int(str(c["version"])),
        )
        page = changed[:limit]
        position = str(page[-1]["version"] if page else cursor)
        return {
            "contacts": page,
            "position": position,
            "next_cursor": position if len(changed) > limit else None,
        }

    def touch(self, contact_id: str, change: bool = True) -> None:
        self.seq += 1
        contact = self.contacts[contact_id]
        contact["version"] = self.seq
        if change:
            contact["email"] = f"changed{self.seq}@x.example"


@pytest.fixture
def contacts(pipeline: Pipeline) -> Any:

    feed = ContactsFeed("acme", 25)
    pipeline.external = feed
    pipeline.configs.put(
        ClientConfig(job_type=CONTACTS, client_id="acme", group_id="north", page_size=10)
    )
    pipeline.planner = pipeline.planner_for(CONTACTS)
    return feed


def _run(pipeline: Pipeline) -> Any:
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    return pipeline.view(run.run_id).header


def test_sync_contacts_is_registered() -> None:
    assert JOBS[CONTACTS] is JOB


def test_first_run_syncs_every_contact_and_saves_the_cursor(
    pipeline: Pipeline, contacts: Any
) -> None:
    header = _run(pipeline)
    assert (header.status, header.received, header.processed) == (RunStatus.SUCCEEDED, 25, 25)
    assert pipeline.configs.get(CONTACTS, "acme").cursor == "25"
    assert pipeline.state("acme", "acme-c00007")["email"] == "c7@x.example"


def test_a_second_run_after_no_changes_has_nothing_to_do(pipeline: Pipeline, contacts: Any) -> None:
    _run(pipeline)
    header = _run(pipeline)
    assert (header.received, header.processed) == (0, 0)


def test_a_change_to_three_contacts_processes_exactly_those_three(
    pipeline: Pipeline, contacts: Any
) -> None:
    _run(pipeline)
    for contact_id in ("acme-c00002", "acme-c00011", "acme-c00020"):
        contacts.touch(contact_id)
    header = _run(pipeline)
    assert (header.received, header.processed, header.skipped) == (3, 3, 0)
    assert pipeline.state("acme", "acme-c00011")["email"].startswith("changed")
    assert len(pipeline.history("acme", "acme-c00011")) == 2


def test_resent_but_unchanged_contacts_are_skipped_without_a_write(
    pipeline: Pipeline, contacts: Any
) -> None:
    _run(pipeline)
    for contact_id in ("acme-c00003", "acme-c00004"):
        contacts.touch(contact_id, change=False)
    header = _run(pipeline)
    assert (header.received, header.processed, header.skipped) == (2, 0, 2)
    assert len(pipeline.history("acme", "acme-c00003")) == 1


def test_a_crash_between_enqueue_and_cursor_save_loses_nothing(
    pipeline: Pipeline, contacts: Any
) -> None:
    original = pipeline.configs.save_cursor
    calls = {"n": 0}

    def crash_once(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("crashed after enqueueing the first page")
        original(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.configs, "save_cursor", crash_once)
        header = _run(pipeline)
    # The first page was enqueued twice (crash, retry): the same envelopes, counted once, and
    # every contact synced exactly once
    assert (header.received, header.processed, header.skipped) == (25, 25, 0)
    assert all(len(pipeline.history("acme", f"acme-c{n:05d}")) == 1 for n in range(1, 26))
    assert pipeline.configs.get(CONTACTS, "acme").cursor == "25"
