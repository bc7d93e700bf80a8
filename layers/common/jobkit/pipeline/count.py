"""Settle: count pages and outcomes on their runs, once per envelope.

Outcomes are counted only after the batch's acknowledgements settled (``count_outcomes`` takes
what ``acknowledge`` decided): an item is counted, and its run may close, only once its
acknowledgement is done, so a closed run has no acknowledgement left in flight. Counting is
idempotent per envelope: what failed to count is retried, not lost, and a message received
before is looked up before it is counted again.
"""

from collections import defaultdict
from typing import NamedTuple

from jobkit.adapters.queue import receive_count
from jobkit.domain.envelope import PageItem
from jobkit.observability import logger
from jobkit.pipeline.acknowledge import Acknowledged
from jobkit.pipeline.batch import CountedItem, Failure, FetchedPage
from jobkit.runs.counting import OutcomeCounting
from jobkit.runs.models import ItemOutcome, Outcome


class Counted(NamedTuple):
    counted: frozenset[str]  # messages whose outcome is on its run now
    unsettled: frozenset[str]  # messages whose counting failed: retried


def count_pages(
    pages: list[FetchedPage], dead: list[Failure], runs: OutcomeCounting
) -> frozenset[str]:
    """Each fetched page's records, and each page given up on; returns the messages whose
    counting failed."""
    unsettled: set[str] = set()
    for page in pages:
        try:
            _count_page(page, runs)
        except Exception:  # noqa: BLE001 - retried: counting is idempotent per envelope
            logger.exception("counting a page failed", extra={"run_id": page.item.run_id})
            unsettled.add(page.message.message_id)
    for failure in dead:
        item = failure.item
        if not isinstance(item, PageItem):
            continue
        try:
            runs.fail_page(
                item.run_id, item.client_id, item.envelope_id, item.page_number, failure.reason
            )
        except Exception:  # noqa: BLE001
            logger.exception("counting a failed page failed")
            unsettled.add(failure.message.message_id)
    return frozenset(unsettled)


def _count_page(page: FetchedPage, runs: OutcomeCounting) -> None:
    item = page.item
    runs.count_page(
        item.run_id, item.client_id, item.envelope_id, item.page_number, page.result.records
    )
    if page.result.oversized:
        too_large = [
            ItemOutcome(
                envelope, Outcome.FAILED, record, key, "record too large for the work queue"
            )
            for envelope, record, key in page.result.oversized
        ]
        again = frozenset(o.envelope_id for o in too_large) if _seen_before(page) else frozenset()
        runs.count_outcomes(item.run_id, item.client_id, too_large, again)


def count_outcomes(
    outcomes: list[CountedItem],
    acknowledged: Acknowledged,
    held: frozenset[str],
    runs: OutcomeCounting,
) -> Counted:
    """Count outcomes, one run at a time (its clients together): all but those held back
    (retried, or put back on the queue) by the phases before."""
    held = held | acknowledged.unsettled | acknowledged.deferred
    counted: set[str] = set()
    unsettled: set[str] = set()
    for run_id, by_client in _by_run(outcomes, held).items():
        entries = [e for client_entries in by_client.values() for e in client_entries]
        messages = {e.message.message_id for e in entries}
        again = frozenset(e.outcome.envelope_id for e in entries if _seen_before(e))
        try:
            runs.count_run_outcomes(
                run_id,
                {client: [e.outcome for e in items] for client, items in by_client.items()},
                again,
            )
        except Exception:  # noqa: BLE001 - retried: counting is idempotent per envelope
            logger.exception("counting outcomes failed", extra={"run_id": run_id})
            unsettled |= messages
            continue
        counted |= messages
    return Counted(frozenset(counted), frozenset(unsettled))


def _by_run(
    outcomes: list[CountedItem], held: frozenset[str]
) -> dict[str, dict[str, list[CountedItem]]]:
    """The outcomes not held back, by run and client."""
    by_run: dict[str, dict[str, list[CountedItem]]] = defaultdict(lambda: defaultdict(list))
    for entry in outcomes:
        if entry.message.message_id not in held:
            by_run[entry.item.run_id][entry.item.client_id].append(entry)
    return by_run


def _seen_before(entry: CountedItem | FetchedPage) -> bool:
    """A message received before may have been counted before (SQS says how often)."""
    return receive_count(entry.message) > 1
