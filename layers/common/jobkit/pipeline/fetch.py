"""Fetching one page of a client's records: the page item's idempotent unit.

One page from the external system (through the client's circuit), then one record item per
record and the next page item on the work queue. The page is snapshotted on the run first,
so a page fetched again after a crash counts and pages on from what the first fetch saw.
"""

import functools
from collections.abc import Callable
from typing import Any

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.external import ExternalSystem
from jobkit.adapters.queue import MAX_MESSAGE_BYTES, WorkQueue
from jobkit.domain.envelope import (
    PageItem,
    RecordItem,
    content_hash,
    new_page_item,
    new_record_item,
)
from jobkit.domain.errors import PermanentError
from jobkit.domain.job import Page, PageRequest, raw_record_id
from jobkit.pipeline.batch import PageResult
from jobkit.pipeline.lookup import Lookups
from jobkit.runs.counting import OutcomeCounting
from jobkit.runs.models import PageSnapshot

_MAX_PAGES = 100_000


class PageFetcher:
    def __init__(
        self,
        lookups: Lookups,
        external: Callable[[ClientConfig], ExternalSystem],
        circuits: Circuits,
        runs: OutcomeCounting,
        queue: WorkQueue,
        configs: ConfigStore,
    ) -> None:
        self._lookups = lookups
        self._external = external
        self._circuits = circuits
        self._runs = runs
        self._queue = queue
        self._configs = configs

    def fetch_once(self, item: PageItem) -> PageResult:
        """Run by Powertools' idempotent_function: once per page item."""
        page = self._fetch(item)
        fetched = {
            raw_record_id(raw) or f"unidentified-{content_hash(raw)[:12]}": raw
            for raw in page.records
        }
        snapshot = self._runs.snapshot_page(
            item.run_id,
            item.client_id,
            item.envelope_id,
            PageSnapshot(tuple(fetched), page.next_cursor, page.resume_at),
        )
        records, oversized = _record_items(item, snapshot, fetched)
        outgoing: list[PageItem | RecordItem] = list(records)
        if snapshot.next_cursor is not None:
            outgoing.append(_next_page(item, snapshot.next_cursor))
        self._queue.send(outgoing)
        if snapshot.resume_at is not None and item.replay is None:
            # Only now: a crash before this line re-fetches from the old cursor (duplicates
            # are skipped downstream), never skips data. A backfill pages on its own cursor
            # and never moves the live one.
            self._configs.save_cursor(item.job_type, item.client_id, snapshot.resume_at)
        return PageResult(
            run_id=item.run_id,
            envelope_id=item.envelope_id,
            records=len(snapshot.record_ids),
            has_next=snapshot.next_cursor is not None,
            oversized=oversized,
        )

    def _fetch(self, item: PageItem) -> Page:
        job = self._lookups.job(item.job_type)
        client = self._lookups.client(item.job_type, item.client_id)
        external = self._external(client)
        window = item.replay.window if item.replay is not None else None
        request = PageRequest(item.cursor, item.query_time, window)
        page = self._circuits.call(
            item.client_id, functools.partial(job.fetch_page, external, client, request)
        )
        if page.next_cursor is not None and (
            page.next_cursor == item.cursor or item.page_number >= _MAX_PAGES
        ):
            raise PermanentError(
                f"external system paging does not advance (page {item.page_number}, "
                f"cursor {page.next_cursor!r})"
            )
        return page


def _record_items(
    item: PageItem, snapshot: PageSnapshot, fetched: dict[str, dict[str, Any]]
) -> tuple[list[RecordItem], list[tuple[str, str, str]]]:
    """The page's record items as first snapshotted, and those too large for the queue."""
    records: list[RecordItem] = []
    oversized: list[tuple[str, str, str]] = []
    for record_id in snapshot.record_ids:
        if record_id not in fetched:
            continue  # acknowledged since: it was enqueued by the first fetch
        record_item = new_record_item(item, record_id, fetched[record_id])
        if len(record_item.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
            oversized.append((record_item.envelope_id, record_id, record_item.item_key))
        else:
            records.append(record_item)
    return records, oversized


def _next_page(item: PageItem, cursor: str) -> PageItem:
    return new_page_item(
        job_type=item.job_type,
        run_id=item.run_id,
        client_id=item.client_id,
        group_id=item.group_id,
        correlation_id=item.correlation_id,
        cursor=cursor,
        page_number=item.page_number + 1,
        attempt=item.attempt,
        as_of=item.query_time,
        replay=item.replay,
    )
