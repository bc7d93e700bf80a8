"""A contacts change feed: every contact carries the sequence number of its last change.

`GET /v1/clients/{id}/contacts?cursor=<seq>&limit=n` returns the contacts changed after the
cursor, oldest change first, and `position`: where the next sync resumes. Touching a contact
changes its content and moves it to the end of the feed; resending keeps the content.
"""

import threading
from dataclasses import dataclass

from pydantic import BaseModel, Field

from external_system.models import Token
from external_system.state import NotFoundError


class Contact(BaseModel):
    id: str
    client_id: str
    version: int = Field(description="The feed sequence number of its last change.")
    name: str
    email: str
    phone: str


class ContactsPage(BaseModel):
    contacts: list[Contact]
    next_cursor: str | None
    position: str


class SeedContacts(BaseModel):
    count: int = Field(ge=0, le=99_999)
    # Becomes the client's one active token; never echoed back.
    credential: Token | None = None


class SeededContacts(BaseModel):
    count: int


@dataclass
class _Book:
    contacts: dict[str, Contact]
    seq: int


class ContactBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}

    def reset(self) -> None:
        with self._lock:
            self._books = {}

    def seed(self, client_id: str, count: int) -> int:
        contacts = {
            f"{client_id}-c{n:05d}": Contact(
                id=f"{client_id}-c{n:05d}",
                client_id=client_id,
                version=n,
                name=f"Contact {n}",
                email=f"contact{n}@{client_id}.example",
                phone=f"+1555{n:07d}",
            )
            for n in range(1, count + 1)
        }
        with self._lock:
            self._books[client_id] = _Book(contacts, count)
        return count

    def _book(self, client_id: str) -> _Book:
        book = self._books.get(client_id)
        if book is None:
            raise NotFoundError(f"unknown client {client_id} (no contacts)")
        return book

    def check(self, client_id: str) -> None:
        with self._lock:
            self._book(client_id)

    def page(self, client_id: str, cursor: int, limit: int) -> ContactsPage:
        with self._lock:
            changed = sorted(
                (c for c in self._book(client_id).contacts.values() if c.version > cursor),
                key=lambda c: c.version,
            )
        page = changed[:limit]
        position = str(page[-1].version if page else cursor)
        return ContactsPage(
            contacts=page, position=position, next_cursor=position if len(changed) > limit else None
        )

    def touch(self, client_id: str, contact_id: str, *, change: bool) -> Contact:
        with self._lock:
            book = self._book(client_id)
            contact = book.contacts.get(contact_id)
            if contact is None:
                raise NotFoundError(f"unknown contact {contact_id}")
            book.seq += 1
            email = f"changed{book.seq}@{client_id}.example" if change else contact.email
            book.contacts[contact_id] = contact.model_copy(
                update={"version": book.seq, "email": email}
            )
            return book.contacts[contact_id]
