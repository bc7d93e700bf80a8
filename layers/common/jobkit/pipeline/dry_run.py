"""A backfill's dry run: how many records each client has in the window, how many of them
were already processed, and so how many a backfill would process. It writes nothing.

It pages the window as a backfill would (the job's own ``fetch_page``, through the client's
circuit and the provider's rate limit), and asks Powertools' idempotency store whether each
record's work (its key in the backfill's mode) is done. A window bigger than the answer's time
allows is reported as not complete, with what was counted so far.
"""

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig, InvalidClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.external import ExternalSystem
from jobkit.domain.envelope import content_hash, record_item_key
from jobkit.domain.job import Job, PageRequest, raw_record_id
from jobkit.domain.replay import BackfillSpec


@dataclass(frozen=True)
class ClientCount:
    client_id: str
    in_window: int = 0
    already_processed: int = 0
    complete: bool = True  # every page of the window was read
    error: str | None = None  # why the client could not be counted

    @property
    def would_process(self) -> int:
        return self.in_window - self.already_processed


class ProcessedWork:
    """Whether a record item's work is done, read from the processor's idempotency records
    (the same key prefix and key path), never written."""

    def __init__(self, persistence: BasePersistenceLayer, key_prefix: str) -> None:
        persistence.configure(
            IdempotencyConfig(event_key_jmespath="item_key"), key_prefix=key_prefix
        )
        self._persistence = persistence

    def done(self, item_key: str) -> bool:
        try:
            record = self._persistence.get_record({"item_key": item_key})
        except IdempotencyItemNotFoundError:
            return False
        return record is not None and record.status == STATUS_CONSTANTS["COMPLETED"]


class WindowCounter:
    def __init__(
        self,
        jobs: Mapping[str, Job[Any]],
        configs: ConfigStore,
        external: Callable[[ClientConfig], ExternalSystem],
        circuits: Circuits,
        processed: ProcessedWork,
        seconds: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs = jobs
        self._configs = configs
        self._external = external
        self._circuits = circuits
        self._processed = processed
        self._seconds = seconds  # the answer's time for every client, within API Gateway's 29 s
        self._clock = clock

    def count(
        self, job_type: str, client_ids: list[str], spec: BackfillSpec, run_id: str
    ) -> list[ClientCount]:
        """One count per client named, in order; ``run_id`` is the backfill's the request
        would start (its generation, in mode ``all``)."""
        deadline = self._clock() + self._seconds
        named = list(dict.fromkeys(client_ids))
        found = self._configs.get_many(job_type, named)
        return [
            self._one(job_type, client_id, found.get(client_id), spec, run_id, deadline)
            for client_id in named
        ]

    def _one(
        self,
        job_type: str,
        client_id: str,
        config: ClientConfig | InvalidClientConfig | None,
        spec: BackfillSpec,
        run_id: str,
        deadline: float,
    ) -> ClientCount:
        if config is None:
            return ClientCount(client_id, error=f"not configured for {job_type}")
        if isinstance(config, InvalidClientConfig):
            return ClientCount(client_id, error=f"invalid configuration: {config.reason}")
        if not config.enabled:
            return ClientCount(client_id, error="disabled")
        try:
            return self._page_through(job_type, config, spec, run_id, deadline)
        except Exception as exc:  # noqa: BLE001 - one client's failure is its row's, not the answer's
            return ClientCount(client_id, error=f"{type(exc).__name__}: {exc}")

    def _page_through(
        self,
        job_type: str,
        config: ClientConfig,
        spec: BackfillSpec,
        run_id: str,
        deadline: float,
    ) -> ClientCount:
        job = self._jobs[job_type]
        replay = spec.replay(run_id)
        external = self._external(config)
        cursor: str | None = None
        seen: set[str] = set()
        done = 0
        while True:
            if self._clock() >= deadline:
                return ClientCount(config.client_id, len(seen), done, complete=False)
            request = PageRequest(cursor, datetime.now(UTC), spec.window)
            page = self._circuits.call(
                config.client_id, functools.partial(job.fetch_page, external, config, request)
            )
            for raw in page.records:
                record_id = raw_record_id(raw) or f"unidentified-{content_hash(raw)[:12]}"
                if record_id in seen:
                    continue
                seen.add(record_id)
                key = record_item_key(job_type, config.client_id, record_id, raw, replay)
                done += self._processed.done(key)
            if page.next_cursor is None or page.next_cursor == cursor:
                return ClientCount(config.client_id, len(seen), done)
            cursor = page.next_cursor
