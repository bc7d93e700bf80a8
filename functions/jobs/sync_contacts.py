"""sync-contacts: keep the platform's copy of each client's contacts current.

A change feed: each run resumes from the client's cursor (saved once a page's items are
enqueued), and a contact whose content did not change since the last sync is skipped by its
content hash, with no write. The feed has no acknowledgement: nothing is acked.
"""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.external import ExternalSystem
from jobkit.domain.envelope import content_hash
from jobkit.domain.job import (
    NEW,
    AckRef,
    AckResult,
    ExternalRecord,
    FakeRecords,
    Job,
    Page,
    PageRequest,
    Skip,
    Transition,
)

SYNCED = "SYNCED"


class Contact(ExternalRecord):
    name: str
    email: str
    phone: str

    def content(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "phone": self.phone}


class _Feed(BaseModel):
    contacts: list[dict[str, Any]]
    next_cursor: str | None
    position: str


def fetch_page(external: ExternalSystem, client: ClientConfig, request: PageRequest) -> Page:
    params: dict[str, Any] = {"limit": client.page_size}
    if request.cursor is not None:
        params["cursor"] = request.cursor
    feed = external.get_as(_Feed, f"{client.route}/clients/{client.client_id}/contacts", params)
    return Page(records=feed.contacts, next_cursor=feed.next_cursor, resume_at=feed.position)


def process(contact: Contact, client: ClientConfig) -> Transition | Skip:
    content = contact.content()
    return Transition(
        to_status=SYNCED,
        allowed_from=frozenset({NEW, SYNCED}),
        reason=f"contact changed in the external system (change {contact.version})",
        fields=content,
        content_hash=content_hash(content),
    )


def acknowledge(
    external: ExternalSystem, client: ClientConfig, refs: Sequence[AckRef]
) -> AckResult:
    # The contacts feed is read by position: there is nothing to acknowledge.
    return AckResult(acknowledged=frozenset())


JOB = Job(
    name="sync-contacts",
    description="Keep the platform's copy of each client's contacts current (change feed).",
    record_model=Contact,
    fetch_page=fetch_page,
    process=process,
    acknowledge=acknowledge,
    fake_records=FakeRecords(feed="contacts"),
)
